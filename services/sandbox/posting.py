"""Posting callbacks, signed, with retries, joined when their dialect can join them.

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
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

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


Start = Callable[[Coroutine[Any, Any, None], str], None]  # runs a step as a named task of its owner's


class Poster:
    """Posts callbacks with client, as the module says; start runs the joined posts as tasks of the caller's,
    which cancels them with its own."""

    def __init__(self, start: Start):
        self.start = start
        self.client: aiohttp.ClientSession | None = None
        self.posting = asyncio.Semaphore(CALLBACK_CONNECTIONS)  # callbacks wait here, not in the client's pool
        self.due: dict[str, list[Due]] = {}  # joinable callbacks not posted yet, by url
        self.per_url: dict[str, asyncio.Semaphore] = {}  # joined posts under way to each url

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

    async def deliver_joined(self, ticket_id: str, callback: Callback) -> bool:
        """deliver(), callback joined with the others due to its url by the time a post to it can start."""
        future = asyncio.get_running_loop().create_future()
        due = self.due.setdefault(callback.url, [])
        due.append(Due(ticket_id, callback, future))
        if len(due) == 1:  # the first one due starts the post that takes them all
            self.start(self._post_due(callback.url), f"callbacks-to-{callback.url}")
        return await future

    async def _post_due(self, url: str) -> None:
        """Post what is due to url, joined, once a post to it can start; tell each waiting whether it went."""
        due: list[Due] = []
        try:
            async with self.per_url.setdefault(url, asyncio.Semaphore(JOINED_POSTS_PER_URL)), self.posting:
                due = self._take_due(url)
                if not due:  # forgotten by forget_pending()
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
            self.start(self._post_due(url), f"callbacks-to-{url}")
        return due[:CALLBACK_ENTRIES_MAX]

    async def _after_failure(self, due: list[Due], joined: Callback, answered: bool, problem: str) -> list[bool]:
        """Whether each callback of a joined post that failed was delivered after all (the module says how)."""
        if answered and len(due) > 1:
            log.warning("tickets %s: joined callback to %s refused (%s): each posted again alone", _ids(due),
                        joined.url, problem)
            return list(await asyncio.gather(*(self.deliver(d.ticket_id, d.callback) for d in due)))
        delivered = await self.deliver(_ids(due), joined, failed=problem)
        return [delivered] * len(due)

    def forget_pending(self) -> None:
        """Forget the joinable callbacks not posted yet (their posts' tasks cancelled by the caller)."""
        self.due.clear()
