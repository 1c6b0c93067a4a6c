"""Liveness checks: whether referred content went away before the platform decided. No I/O.

While a referral waits for the platform's decision (dispatched, acknowledged, information
requested, escalated or appealed), its canonical URL is checked at configured offsets after its
latest dispatch. Content found gone is recorded once, as content.gone_without_reply, and the
referral is never checked again; content found up records nothing, so the history holds only
what changed. Which check is due comes from the time since the dispatch and, for the checks that
found the content up, from UpChecks. See docs/lifecycle.md.
"""

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.outcomes.deadlines import SERVICE, SOURCE, stable_id
from services.outcomes.domain import AWAITING_PLATFORM
from shared.events import ContentGoneWithoutReply, Event

CHECKED_STATUSES = frozenset(AWAITING_PLATFORM)
GONE_EVENT = ContentGoneWithoutReply.event_type


def due_liveness(state: Mapping[str, Any], offsets_s: Sequence[float], done: int, now: datetime) -> int | None:
    """The number of the liveness check due now (1-based), given that checks up to `done` were made.

    It is the latest check whose offset after the dispatch has passed: checks missed meanwhile
    (the service was down) are not made one by one, as only whether the content is gone now
    matters. None when no check is due, or the referral is not waiting for a decision.
    """
    if state.get("status") not in CHECKED_STATUSES or not state.get("canonical_url"):
        return None
    dispatched_at = state.get("dispatched_at")
    if dispatched_at is None:
        return None
    passed = bisect_right(offsets_s, (now - dispatched_at).total_seconds())
    return passed if passed > done else None


def liveness_id(referral_id: UUID, dispatched_at: datetime, number: int) -> UUID:
    """Check `number` after the dispatch made at dispatched_at, as the retries of a failing check know it."""
    return stable_id(referral_id, "liveness", dispatched_at.astimezone(UTC).isoformat(), number)


def gone_id(referral_id: UUID) -> UUID:
    """The id of the referral's content.gone_without_reply: one per referral, whichever check or instance finds it."""
    return stable_id(referral_id, "gone-without-reply")


def gone_event(referral_id: UUID, url: str, checked_at: datetime) -> Event:
    """content.gone_without_reply, dated when the check found the content gone."""
    return Event(id=gone_id(referral_id), source=SOURCE, actor=SERVICE, time=checked_at,
                 data=ContentGoneWithoutReply(referral_id=referral_id, url=url, checked_at=checked_at))


class UpChecks:
    """The last liveness check of each referral's latest dispatch that found its content up.

    Kept in memory, not in the audit trail or a table of its own: a check that finds the content
    up changes nothing about the referral, so it is no event, and it is not worth a write per
    check either. What a restart loses is which checks were made: each waiting referral then has
    its latest due check made once more, one extra request per referral, at the concurrency of
    every check; a restart never makes a check be skipped. Two instances each make every check (as with stays-down
    checks); what they find is recorded once, under one event id. A referral is known by its
    dispatch time too, so a new dispatch (after an escalation or an appeal) starts its checks
    again. Beyond `remembered` referrals the longest-unchecked is forgotten: merely checked again.
    """

    def __init__(self, remembered: int = 100_000):
        self.remembered = remembered
        self._done: dict[UUID, tuple[datetime, int]] = {}  # referral id: (dispatched_at, check number)

    def done(self, referral_id: UUID, dispatched_at: datetime) -> int:
        """The last check of this dispatch that found the content up; 0 if none is known."""
        at, number = self._done.get(referral_id, (None, 0))
        return number if at == dispatched_at else 0

    def found_up(self, referral_id: UUID, dispatched_at: datetime, number: int) -> None:
        """Check `number` of this dispatch found the content up."""
        self._done.pop(referral_id, None)  # to the end: the oldest is forgotten first
        self._done[referral_id] = (dispatched_at, number)
        if len(self._done) > self.remembered:
            del self._done[next(iter(self._done))]
