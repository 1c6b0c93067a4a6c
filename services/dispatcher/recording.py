"""What the dispatcher writes down, in its caller's transaction, a batch at a time: what came of a
lane batch's deliveries (tickets, delivery states and their events), and platforms' answers.

Every write is one array-bound statement for any number of rows (shared.db.insert_arrays), so a
batch costs the same few round trips whatever its size. A state change and its event are written
in the same transaction; a delivery not due any more (another copy got there) is not stepped back.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.dispatcher import db, domain
from services.dispatcher.adapters.base import Decision, PlatformAnswer
from services.dispatcher.deliveries import DELIVERED, REPORTED, Executor
from services.dispatcher.lanes import Delivered, GaveUp, Result, RetryLater
from services.dispatcher.outbound import Record, message
from shared.auth.principal import Principal
from shared.events import Event, InformationSupplied, Platform
from shared.outbox import Message
from shared.topics import REFERRALS_DISPATCH, TAKEDOWN_DECISIONS


@dataclass(frozen=True)
class Attempt:
    """One delivery of a lane batch (a report or an answer) and what came of it, to be recorded."""

    event: Event
    record: Record
    result: Result
    adapter: str  # the adapter's slug; "none" when no platform was reached
    platform: Platform | None  # where it went; None for an answer whose report has no ticket yet
    ticket_id: str | None = None  # the ticket an answer was forwarded to
    poll_after_s: float | None = None  # when a reported referral's new ticket is first polled, if ever

    @property
    def is_answer(self) -> bool:
        return isinstance(self.event.data, InformationSupplied)

    @property
    def reported(self) -> bool:
        """A report the platform took (its ticket is in the receipt)."""
        return isinstance(self.result, Delivered) and not self.is_answer

    def delivered_event(self) -> Message:
        """referral.dispatched, or information_forwarded for an answer."""
        if self.is_answer:
            return message(TAKEDOWN_DECISIONS, domain.forwarded(self.event, self.platform, self.adapter,
                                                                self.ticket_id, self.record.attempt))
        referral, result = self.event.data, self.result
        return message(REFERRALS_DISPATCH, domain.dispatched(
            referral.referral_id, referral.platform, self.adapter, result.receipt.ticket_id, self.record.attempt,
            referral.dispatch, at=result.sent_at))

    def failed_event(self, reason: str, permanent: bool) -> Message:
        """dispatch_failed, or information_forward_failed for an answer."""
        if self.is_answer:
            return message(TAKEDOWN_DECISIONS, domain.forward_failed(
                self.event.referral_id, self.event.id, self.platform, self.adapter, reason, self.record.attempt,
                permanent))
        referral = self.event.data
        return message(REFERRALS_DISPATCH, domain.dispatch_failed(
            referral.referral_id, referral.platform, self.adapter, reason, self.record.attempt, permanent,
            referral.dispatch))


async def store(conn: Executor, attempts: Sequence[Attempt], redrive_after_s: float) -> None:
    """Record what came of a lane batch: tickets opened, deliveries reported or delivered, retries
    parked (not stuck before their next attempt is due, plus the bound), give-ups failed (those still
    due), their events queued, and answers a platform gave with its receipt."""
    delivered = [a for a in attempts if isinstance(a.result, Delivered)]
    reported = [a for a in delivered if not a.is_answer]
    await db.open_tickets(conn, [db.NewTicket(a.platform.value, a.result.receipt.ticket_id, a.event.data.referral_id,
                                              a.adapter, a.poll_after_s) for a in reported])
    await db.DELIVERIES.delivered(conn, [(a.event.id, DELIVERED if a.is_answer else REPORTED,
                                          a.result.receipt.ticket_id) for a in delivered])
    now = time.time()
    await db.DELIVERIES.retry_at(conn, [(a.event.id, a.record.attempt + 1,
                                         max(0.0, a.result.not_before - now) + redrive_after_s)
                                        for a in attempts if isinstance(a.result, RetryLater)])
    gave_up = [a for a in attempts if isinstance(a.result, GaveUp)]
    failed = await db.DELIVERIES.fail(conn, [a.event.id for a in gave_up])
    events = [a.delivered_event() for a in delivered]
    events += [a.failed_event(a.result.reason, a.result.permanent) for a in gave_up if a.event.id in failed]
    await record_answers(conn, [(a.platform, a.result.receipt.answer, None) for a in reported
                                if a.result.receipt.answer is not None], events)


async def record_answers(conn: Executor, answers: Sequence[tuple[Platform, PlatformAnswer, Principal | None]],
                         before: Sequence[Message] = ()) -> None:
    """Queue each answer's event (after the events `before`), and note it on its ticket and, for a
    decision, on its delivery, in the caller's transaction; each answer is (platform, answer, who told us:
    None for the platform itself)."""
    await db.OUTBOX.queue(conn, [*before, *(message(TAKEDOWN_DECISIONS, domain.answered(platform, answer, by))
                                            for platform, answer, by in answers)])
    statuses = {(platform.value, answer.ticket_id): db.DECIDED if isinstance(answer, Decision)
                else db.INFORMATION_REQUESTED for platform, answer, _ in answers}  # the last of a ticket's wins
    await db.set_statuses(conn, statuses)
    await db.DELIVERIES.decided(conn, [(platform.value, answer.ticket_id) for platform, answer, _ in answers
                                       if isinstance(answer, Decision)])
