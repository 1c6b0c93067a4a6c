"""Stays-down checks: which re-check of removed content is due, and the event recording it. No I/O.

After a platform decided to remove or restrict content, its canonical URL is checked again at
configured offsets from the decision. Check n (1-based) is due once the decision is offsets[n-1]
old and n-1 checks of this decision are recorded; a later check that was missed (the service was
down) is done late, once, not skipped. A reappearance reopens the referral, and reopened
referrals are not checked any more. A check that fails is tried again after a delay that grows
with each failure (Retries). See docs/lifecycle.md.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.outcomes.deadlines import SERVICE, SOURCE, stable_id
from shared.events import ContentReappeared, ContentStillDown, Event
from shared.reliability import spaced_backoff

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


class Retries:
    """When each failed check may be tried again: a delay per check that doubles with each failure, capped.

    Kept in memory, not in a column: it only paces retries, so what a restart loses is one early
    retry per failing check (which then backs off again), and it costs no write per failure.
    Each scheduler instance paces its own. A refused check (its URL is not a public address)
    waits the longest delay at once: only a change of configuration can make it succeed.
    """

    def __init__(self, base_s: float, cap_s: float, remembered: int = 100_000):
        self.base_s, self.cap_s, self.remembered = base_s, cap_s, remembered
        self._failing: dict[UUID, tuple[int, float]] = {}  # check id: (failures in a row, not before)

    def ready(self, check: UUID, now: float) -> bool:
        """Whether check may be made at now (seconds on a monotonic clock)."""
        return check not in self._failing or now >= self._failing[check][1]

    def failed(self, check: UUID, now: float, refused: bool = False) -> float:
        """Record that check failed (or was refused) at now; the seconds until it may be tried again."""
        failures = self._failing.pop(check, (0, now))[0] + 1
        delay = self.cap_s if refused else spaced_backoff(failures, base=self.base_s, cap=self.cap_s)
        self._failing[check] = (failures, now + delay)
        if len(self._failing) > self.remembered:  # forget the longest-quiet one: it is merely tried sooner
            del self._failing[next(iter(self._failing))]
        return delay

    def succeeded(self, check: UUID) -> None:
        """Forget check's failures."""
        self._failing.pop(check, None)
