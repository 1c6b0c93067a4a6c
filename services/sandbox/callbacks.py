"""Deciding tickets after their persona's delay, and calling the decisions back (posting.py posts them).

A ticket's fate is drawn from its platform's persona (deterministic per seed and reference):
a decision, a question (information request: decided as `removed` one more delay after the
agency's first answer arrived, never without one) or silence. Each step that changes the ticket
is handed to its dialect's notifier, which says what to post where and how to sign it; youtube
and tiktok have none (their clients poll). A persona's drop_callbacks withholds every callback of
that share of tickets (chosen per reference): the platform gave up on them, and only its status
API tells.

A restarted sandbox takes up what it had under way (resume): a ticket still open is decided when
its delay, counted from its report, is over; one answered while waiting for an answer, its delay
after the answer; a step whose callback was neither delivered nor abandoned is called back again.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services.sandbox import domain
from services.sandbox.personas import Persona
from services.sandbox.posting import Callback, Poster
from services.sandbox.state import TAKES_DOWN, Store, Ticket
from shared.events import Platform

log = logging.getLogger(__name__)


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
        self.tasks: set[asyncio.Task] = set()
        self.deciding: set[str] = set()  # tickets answered and waiting out their delay before the decision
        self.poster = Poster(self._start)  # its joined posts run among self.tasks

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
            await self.poster.deliver(ticket.ticket_id, callback)
        else:
            await self.poster.deliver_joined(ticket.ticket_id, callback)
        if ticket.called_back != "decided":  # a question's callback may end after its decision's
            ticket.called_back = step
            self.store.changed(ticket)

    async def cancel_pending(self) -> None:
        """Cancel every decision and delivery not yet done and wait for the tasks to end."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.deciding.clear()
        self.poster.forget_pending()
