"""Deadlines: when a referral is overdue and when it expires, from its projected state. No I/O.

Each category allows the platform so long to decide (overridable per category and platform).
The clock starts at submission, or again at the latest appeal (a new request to decide), and it
stands still while the platform waits for information the agency must supply (status
information_requested): each such pause that begins before the clock runs out pushes the
deadline back by its length, an open one up to now. A referral still waiting for the platform is
overdue past its deadline, and expires once the clock has run `expire_after_factor` times the
allowed time. See docs/lifecycle.md.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from services.outcomes.domain import ALLOWED, Status
from shared.events import Event, ReferralExpired, ReferralOverdue, actor

SOURCE = "/takedown/outcomes"
SERVICE = actor("service", "outcomes")
# Waiting for the platform with the clock running (information_requested: the clock is paused).
# Not gone_without_reply: content found gone is not chased, though the platform has not decided.
WAITING = frozenset({Status.submitted, Status.dispatch_failed, Status.dispatched, Status.acknowledged,
                     Status.escalated, Status.appealed})
PAUSED = Status.information_requested
RESTARTS = Status.appealed


@dataclass(frozen=True)
class Policy:
    """Hours allowed per category, overrides per (category, platform), and when to give up."""

    hours: Mapping[str, float]
    overrides: Mapping[tuple[str, str], float] = field(default_factory=dict)
    expire_after_factor: float = 4.0

    def allowed(self, category: str, platform: str | None) -> timedelta:
        hours = self.overrides.get((category, platform or ""), self.hours[category])
        return timedelta(hours=hours)

    def shortest(self) -> timedelta:
        """No deadline comes sooner than this after submission (a cheap filter for candidates)."""
        return timedelta(hours=min([*self.hours.values(), *self.overrides.values()]))


@dataclass(frozen=True)
class Clock:
    """A referral's deadline and expiry, as far as its state tells now."""

    deadline: datetime
    expires_at: datetime


def stable_id(*parts: object) -> UUID:
    """The same event id for the same facts, whichever instance or run derives it."""
    return uuid5(NAMESPACE_URL, "takedown:" + ":".join(str(p) for p in parts))


def clock_start(state: Mapping[str, Any]) -> datetime | None:
    """Submission, or the latest appeal: when the platform was last asked to decide afresh."""
    start = state.get("submitted_at")
    for t in state.get("transitions") or ():
        if t["to"] == RESTARTS:
            start = _at(t)
    return start


def pauses(transitions: list[dict], now: datetime) -> list[tuple[datetime, datetime]]:
    """Each stretch spent in information_requested, in order; an open one ends now.

    Asking again while already asking extends the same pause.
    """
    found, began = [], None
    for t in transitions:
        if t["to"] == PAUSED and began is None:
            began = _at(t)
        elif t["to"] != PAUSED and began is not None:
            found.append((began, _at(t)))
            began = None
    if began is not None:
        found.append((began, max(began, now)))
    return found


def runs_out(start: datetime, budget: timedelta, paused: list[tuple[datetime, datetime]]) -> datetime:
    """When a clock started at start has run for budget, standing still during the pauses."""
    at, left = start, budget
    for begin, end in paused:
        if end <= at:
            continue
        begin = max(begin, at)
        if begin - at >= left:
            break
        left -= begin - at
        at = end
    return at + left


def clock(state: Mapping[str, Any], policy: Policy, now: datetime) -> Clock | None:
    """The referral's deadline and expiry; None without a submission or a category to go by."""
    start, category = clock_start(state), state.get("category")
    if start is None or category is None:
        return None
    allowed = policy.allowed(category, state.get("platform"))
    paused = pauses(state.get("transitions") or [], now)
    return Clock(deadline=runs_out(start, allowed, paused).astimezone(UTC),
                 expires_at=runs_out(start, allowed * policy.expire_after_factor, paused).astimezone(UTC))


def due(state: Mapping[str, Any], policy: Policy, now: datetime) -> list[Event]:
    """The referral.overdue and referral.expired events due now (already flagged overdue: not again)."""
    status = Status(state["status"]) if state.get("status") else None
    if status not in WAITING:
        return []
    found = clock(state, policy, now)
    if found is None:
        return []
    events = []
    if now > found.deadline and not state.get("overdue"):
        events.append(overdue(state["referral_id"], found.deadline))
    if now > found.expires_at and Status.expired in ALLOWED[status]:
        events.append(expired(state["referral_id"], found.deadline, found.expires_at))
    return events


def overdue(referral_id: UUID, deadline: datetime) -> Event:
    """referral.overdue, dated at the deadline it missed; one id per referral and deadline."""
    return Event(id=stable_id(referral_id, "overdue", deadline.isoformat()), source=SOURCE, actor=SERVICE,
                 time=deadline, data=ReferralOverdue(referral_id=referral_id, deadline=deadline))


def expired(referral_id: UUID, deadline: datetime, at: datetime) -> Event:
    """referral.expired, dated when the clock ran out; one id per referral and deadline."""
    return Event(id=stable_id(referral_id, "expired", deadline.isoformat()), source=SOURCE, actor=SERVICE,
                 time=at, data=ReferralExpired(referral_id=referral_id))


def _at(transition: dict) -> datetime:
    return datetime.fromisoformat(transition["at"])
