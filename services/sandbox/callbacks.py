"""Deciding tickets after their persona's delay, and calling the decisions back, signed, with retries.

A ticket's fate is drawn from its platform's persona (deterministic per seed and reference):
a decision, a question (information request: decided as `removed` one more delay after the
agency's first answer arrived, never without one) or silence. Each step that changes the ticket
is handed to its dialect's notifier, which says what to post where and how to sign it; youtube
and tiktok have none (their clients poll). A persona's drop_callbacks withholds every callback of
that share of tickets (chosen per reference): the platform gave up on them, and only its status
API tells.

A callback that is not answered 2xx is posted again, spaced, for CALLBACK_GIVE_UP_S, as real
platforms do for hours (Meta's webhooks: 36): an outage of the receiver's database answers 503
for as long as it lasts, and a decision must not be lost to it.

Callbacks a dialect can join (meta's: one webhook carries several `entry` items, as Meta's do)
are posted together when several are due to one URL: a few posts to a URL at a time
(JOINED_POSTS_PER_URL), and what falls due meanwhile goes in the next one, up to
CALLBACK_ENTRIES_MAX. A joined post the receiver refuses (the dispatcher takes a callback's
entries all or none: one ticket it does not hold yet refuses them all) is split, each entry
posted again alone, so that none holds back another; one that got no answer at all may have
been taken, and is posted again as it was, the same bytes, which the receiver knows as a replay.

A restarted sandbox takes up what it had under way (resume): a ticket still open is decided when
its delay, counted from its report, is over; one answered while waiting for an answer, its delay
after the answer; a step whose callback was neither delivered nor abandoned is called back again.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from services.sandbox import domain
from services.sandbox.personas import Persona
from services.sandbox.state import TAKES_DOWN, Store, Ticket
from shared.events import Platform
from shared.reliability import spaced_backoff

log = logging.getLogger(__name__)

CALLBACK_GIVE_UP_S = 600.0  # how long a callback is retried before it is abandoned
CALLBACK_BACKOFF_CAP_S = 5.0
CALLBACK_TIMEOUT_S = 5.0
# Callbacks posted at once, and connections kept alive for them; the others wait their turn.
CALLBACK_CONNECTIONS = 16
JOINED_POSTS_PER_URL = 4  # joinable callbacks posted to one URL at once; those due meanwhile wait and join
CALLBACK_ENTRIES_MAX = 100  # callbacks joined into one post at most


def callback_session() -> aiohttp.ClientSession:
    """The client callbacks are posted with: aiohttp's, as the dispatcher's adapters use (httpx's pool
    walks all its connections whenever a request comes or goes: most of the sandbox's CPU went there).
    No redirect is followed (deliver() says so per post), no cookie kept."""
    wait = CALLBACK_TIMEOUT_S
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CALLBACK_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=None, connect=wait, sock_connect=wait, sock_read=wait),
        cookie_jar=aiohttp.DummyCookieJar())


@dataclass(frozen=True)
class Callback:
    """A body to post to url; headers(body) signs it afresh for each attempt."""

    url: str
    body: bytes
    headers: Callable[[bytes], dict[str, str]]
    # Joins callbacks due to the same url (this one among them) into one; None: posted alone.
    join: Callable[[list["Callback"]], "Callback"] | None = None
    parts: tuple[bytes, ...] = ()  # what join puts together (meta: the raw entries)


@dataclass(frozen=True)
class Due:
    """A joinable callback waiting to be posted; future: whether it was delivered."""

    ticket_id: str
    callback: Callback
    future: asyncio.Future


def _ids(due: list[Due]) -> str:
    return due[0].ticket_id if len(due) == 1 else f"{due[0].ticket_id} and {len(due) - 1} more"


Notifier = Callable[[Ticket], Callback | None]


def decide(ticket: Ticket, outcome: str, now: datetime | None = None) -> None:
    """Apply outcome to ticket: a decision, an information request, or nothing (never answers)."""
    now = now or datetime.now(UTC)
    ticket.outcome = outcome
    if outcome == domain.NEVER_ANSWERS:
        return
    if outcome == domain.ASKS_FOR_INFORMATION:
        ticket.status, ticket.information_request = "information_requested", domain.information_request(now)
        return
    ticket.decision = domain.decision_object(outcome, now)
    ticket.status, ticket.reason = "decided", ticket.decision["no_action_reason"]
    ticket.decided_at = now


class Decider:
    """Decides each new ticket after its persona's delay and delivers what its dialect calls back."""

    def __init__(self, personas: Mapping[Platform, Persona], seed: str, notifiers: Mapping[str, Notifier],
                 store: Store | None = None):
        self.personas, self.seed, self.notifiers = personas, seed, notifiers
        self.store = store if store is not None else Store()
        self.client: aiohttp.ClientSession | None = None
        self.posting = asyncio.Semaphore(CALLBACK_CONNECTIONS)  # callbacks wait here, not in the client's pool
        self.tasks: set[asyncio.Task] = set()
        self.deciding: set[str] = set()  # tickets answered and waiting out their delay before the decision
        self.due: dict[str, list[Due]] = {}  # joinable callbacks not posted yet, by url
        self.per_url: dict[str, asyncio.Semaphore] = {}  # joined posts under way to each url

    def outcome_of(self, ticket: Ticket) -> str:
        return domain.choose_outcome(self.personas[ticket.platform].decisions, self.seed, ticket.reference)

    def decide(self, ticket: Ticket, outcome: str) -> None:
        """decide(), and a decision taking the content down takes its URL down (GET /content: 410)."""
        decide(ticket, outcome)
        if ticket.status == "decided" and outcome in TAKES_DOWN:
            self.store.take_down(ticket.url)
        self.store.changed(ticket)

    def open(self, ticket: Ticket) -> None:
        """Start ticket's course; with a delay of 0 its first step is taken before this returns."""
        delay = self.personas[ticket.platform].decision_delay_s
        decided_now = delay == 0
        if decided_now:
            self.decide(ticket, self.outcome_of(ticket))
            if ticket.status == "open" or ticket.dialect not in self.notifiers:  # never answers, or is polled
                log.info("ticket %s: %s", ticket.ticket_id, ticket.outcome)  # nothing more will happen now
                return
        self._start(self._follow(ticket, delay, decided_now), f"decide-{ticket.ticket_id}")

    def answered(self, ticket: Ticket) -> None:
        """An answer arrived on ticket: if it was waiting for one, it is decided after its persona's delay
        (before this returns when the delay is 0). Later answers change nothing."""
        if ticket.status != "information_requested" or ticket.ticket_id in self.deciding:
            return
        self.deciding.add(ticket.ticket_id)
        delay = self.personas[ticket.platform].decision_delay_s
        if delay == 0:
            self._decide_after_information(ticket)
        self._start(self._after_answer(ticket, delay), f"answered-{ticket.ticket_id}")

    def resume(self, ticket: Ticket, now: datetime | None = None) -> bool:
        """Take up ticket's course after a restart, as the module says; whether anything is under way again."""
        now = now or datetime.now(UTC)
        delay = timedelta(seconds=self.personas[ticket.platform].decision_delay_s)
        if ticket.status == "open" and ticket.outcome is None:
            left = max(0.0, (ticket.received_at + delay - now).total_seconds())
            self._start(self._follow(ticket, left, False), f"decide-{ticket.ticket_id}")
        elif ticket.status == "information_requested" and ticket.answers:
            self.deciding.add(ticket.ticket_id)
            left = max(0.0, (ticket.answers[0].received_at + delay - now).total_seconds())
            self._start(self._after_answer(ticket, left), f"answered-{ticket.ticket_id}")
        elif (ticket.status != "open" and ticket.called_back != ticket.status and not ticket.callbacks_dropped
              and self._callback(ticket) is not None):
            self._start(self._call_back_again(ticket), f"callback-{ticket.ticket_id}")
        else:
            return False
        return True

    def _start(self, step: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(step, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _follow(self, ticket: Ticket, delay: float, decided_now: bool) -> None:
        try:
            if not decided_now:
                await asyncio.sleep(delay)
                self.decide(ticket, self.outcome_of(ticket))
            log.info("ticket %s: %s", ticket.ticket_id, ticket.outcome)
            if ticket.status != "open":  # else the platform never answers
                await self._notify(ticket)  # a question waits for an answer: answered() takes it on
        except Exception:  # noqa: BLE001 - a task's error would otherwise surface only at GC
            log.exception("ticket %s: decision failed", ticket.ticket_id)

    async def _after_answer(self, ticket: Ticket, delay: float) -> None:
        try:
            if ticket.status == "information_requested":
                await asyncio.sleep(delay)
                self._decide_after_information(ticket)
            await self._notify(ticket)
        except Exception:  # noqa: BLE001 - a task's error would otherwise surface only at GC
            log.exception("ticket %s: decision after the answer failed", ticket.ticket_id)

    async def _call_back_again(self, ticket: Ticket) -> None:
        try:
            await self._notify(ticket)
        except Exception:  # noqa: BLE001 - a task's error would otherwise surface only at GC
            log.exception("ticket %s: callback after the restart failed", ticket.ticket_id)

    def _decide_after_information(self, ticket: Ticket) -> None:
        self.decide(ticket, domain.AFTER_INFORMATION)
        self.deciding.discard(ticket.ticket_id)
        log.info("ticket %s: decided %s after the agency's answer", ticket.ticket_id, ticket.outcome)

    def drops_callbacks(self, ticket: Ticket) -> bool:
        """Whether ticket's persona withholds its callbacks for good."""
        share = self.personas[ticket.platform].drop_callbacks
        return domain.drops_callbacks(share, self.seed, ticket.reference)

    def _callback(self, ticket: Ticket) -> Callback | None:
        """What ticket's dialect calls back for its latest step; None if it calls nothing back (polled)."""
        notifier = self.notifiers.get(ticket.dialect)
        return notifier(ticket) if notifier else None

    async def _notify(self, ticket: Ticket) -> None:
        step = ticket.status
        callback = self._callback(ticket)
        if callback is None:
            return
        if self.drops_callbacks(ticket):
            ticket.callbacks_dropped = True
            self.store.changed(ticket)
            log.info("ticket %s: callback dropped for good (persona drop_callbacks)", ticket.ticket_id)
            return
        if callback.join is None:
            await self.deliver(ticket.ticket_id, callback)
        else:
            await self._deliver_joined(ticket.ticket_id, callback)
        if ticket.called_back != "decided":  # a question's callback may end after its decision's
            ticket.called_back = step
            self.store.changed(ticket)

    async def deliver(self, ticket_id: str, callback: Callback, give_up_s: float = CALLBACK_GIVE_UP_S,
                      failed: str | None = None) -> bool:
        """Post callback until it is answered 2xx, spaced, for give_up_s; False if it never is.
        failed: what went wrong with an attempt already made (the next one is spaced from it)."""
        if self.client is None:
            log.error("ticket %s: sandbox not started, callback dropped", ticket_id)
            return False
        deadline, attempt, problem = time.monotonic() + give_up_s, int(failed is not None), failed
        while True:
            if problem is not None:
                log.warning("ticket %s: callback to %s failed (attempt %s): %s", ticket_id, callback.url, attempt,
                            problem)
                pause = spaced_backoff(attempt, cap=CALLBACK_BACKOFF_CAP_S)
                if time.monotonic() + pause > deadline:
                    break
                await asyncio.sleep(pause)
            attempt += 1
            async with self.posting:
                _, problem = await self._post(callback)
            if problem is None:
                log.info("ticket %s: callback delivered to %s", ticket_id, callback.url)
                return True
        log.error("ticket %s: callback to %s abandoned after %s attempts in %ss", ticket_id, callback.url,
                  attempt, give_up_s)
        return False

    async def _post(self, callback: Callback) -> tuple[bool, str | None]:
        """Post callback once: whether an answer came, and what went wrong (None if it was 2xx)."""
        headers = {"Content-Type": "application/json", **callback.headers(callback.body)}
        try:
            async with self.client.post(callback.url, data=callback.body, headers=headers,
                                        allow_redirects=False) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, repr(exc)
        return True, None if 200 <= response.status < 300 else f"HTTP {response.status}"

    async def _deliver_joined(self, ticket_id: str, callback: Callback) -> bool:
        """deliver(), callback joined with the others due to its url by the time a post to it can start."""
        future = asyncio.get_running_loop().create_future()
        due = self.due.setdefault(callback.url, [])
        due.append(Due(ticket_id, callback, future))
        if len(due) == 1:  # the first one due starts the post that takes them all
            self._start(self._post_due(callback.url), f"callbacks-to-{callback.url}")
        return await future

    async def _post_due(self, url: str) -> None:
        """Post what is due to url, joined, once a post to it can start; tell each waiting whether it went."""
        due: list[Due] = []
        try:
            async with self.per_url.setdefault(url, asyncio.Semaphore(JOINED_POSTS_PER_URL)), self.posting:
                due = self._take_due(url)
                if not due:  # forgotten by cancel_pending()
                    return
                joined = due[0].callback.join([d.callback for d in due]) if len(due) > 1 else due[0].callback
                answered, problem = await self._post(joined)
            if problem is None:
                log.info("tickets %s: callback delivered to %s", _ids(due), url)
                delivered = [True] * len(due)
            else:
                delivered = await self._after_failure(due, joined, answered, problem)
            for d, ok in zip(due, delivered, strict=True):
                if not d.future.done():
                    d.future.set_result(ok)
        except Exception:  # noqa: BLE001 - a task's error would otherwise surface only at GC
            log.exception("tickets %s: callback to %s failed", _ids(due) if due else "(none)", url)
        finally:
            for d in due:  # the post failed or was cancelled: those waiting are not left waiting
                if not d.future.done():
                    d.future.cancel()

    def _take_due(self, url: str) -> list[Due]:
        """Up to CALLBACK_ENTRIES_MAX callbacks due to url, oldest first; another post is started for the rest."""
        due = self.due.pop(url, [])
        if len(due) > CALLBACK_ENTRIES_MAX:
            self.due[url] = due[CALLBACK_ENTRIES_MAX:]
            self._start(self._post_due(url), f"callbacks-to-{url}")
        return due[:CALLBACK_ENTRIES_MAX]

    async def _after_failure(self, due: list[Due], joined: Callback, answered: bool, problem: str) -> list[bool]:
        """Whether each callback of a joined post that failed was delivered after all (the module says how)."""
        if answered and len(due) > 1:
            log.warning("tickets %s: joined callback to %s refused (%s): each posted again alone", _ids(due),
                        joined.url, problem)
            return list(await asyncio.gather(*(self.deliver(d.ticket_id, d.callback) for d in due)))
        delivered = await self.deliver(_ids(due), joined, failed=problem)
        return [delivered] * len(due)

    async def cancel_pending(self) -> None:
        """Cancel every decision and delivery not yet done and wait for the tasks to end."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.deciding.clear()
        self.due.clear()
