"""Stays-down checks: which re-check of removed content is due, and the event recording it. No I/O.

After a platform decided to remove or restrict content, its canonical URL is checked again at
configured offsets from the decision. Check n (1-based) is due once the decision is offsets[n-1]
old and n-1 checks of this decision are recorded; a later check that was missed (the service was
down) is done late, once, not skipped. A reappearance reopens the referral, and reopened
referrals are not checked any more. See docs/lifecycle.md.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.outcomes.deadlines import SERVICE, SOURCE, stable_id
from shared.events import ContentReappeared, ContentStillDown, Event

CHECKED_STATUS = "decided"
CHECKED_OUTCOMES = ("removed", "restricted")
CHECK_EVENTS = (ContentStillDown.event_type, ContentReappeared.event_type)


def due_check(state: Mapping[str, Any], offsets_s: Sequence[float], done: int, now: datetime) -> int | None:
    """The number of the check due now (1-based), given `done` checks recorded since the decision."""
    if state.get("status") != CHECKED_STATUS or state.get("outcome") not in CHECKED_OUTCOMES:
        return None
    decided_at = state.get("decided_at")
    if decided_at is None or not state.get("canonical_url") or done >= len(offsets_s):
        return None
    return done + 1 if now >= decided_at + timedelta(seconds=offsets_s[done]) else None


def check_id(referral_id: UUID, decided_at: datetime, number: int) -> UUID:
    """The event id of check `number` of the decision made at decided_at, whoever makes the check."""
    return stable_id(referral_id, "stays-down", decided_at.astimezone(UTC).isoformat(), number)


def check_event(referral_id: UUID, url: str, decided_at: datetime, number: int, reachable: bool,
                checked_at: datetime) -> Event:
    """content.reappeared or content.still_down for check `number`; two instances record it once."""
    data_type = ContentReappeared if reachable else ContentStillDown
    return Event(id=check_id(referral_id, decided_at, number), source=SOURCE, actor=SERVICE, time=checked_at,
                 data=data_type(referral_id=referral_id, url=url, checked_at=checked_at))
