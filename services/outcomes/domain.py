"""Outcomes' domain: a referral's current state from its events, in any order. No I/O.

Status only moves forward (submitted < dispatch_failed < dispatched < information_requested <
decided), so a late event fills in its facts without moving the status back.
"""

from enum import StrEnum
from typing import Any

from shared.events import (Event, ReferralDispatched, ReferralDispatchFailed, ReferralSubmitted,
                           TakedownDecided, TakedownInformationRequested)


class Status(StrEnum):
    submitted = "submitted"
    dispatch_failed = "dispatch_failed"
    dispatched = "dispatched"
    information_requested = "information_requested"
    decided = "decided"


RANK = {Status.submitted: 0, Status.dispatch_failed: 1, Status.dispatched: 2, Status.information_requested: 3,
        Status.decided: 4}


def apply(state: dict[str, Any], event: Event) -> dict[str, Any]:
    """The referral's state after event; state is {} for a referral not seen before."""
    data, new = event.data, dict(state)
    new.setdefault("referral_id", data.referral_id)
    new.setdefault("platform", getattr(data, "platform", None))
    match data:
        case ReferralSubmitted():
            new.update(agency=data.agency, platform=data.platform.value, category=data.category.value,
                       url=data.url, canonical_url=data.canonical_url, priority=data.priority.value,
                       case_reference=data.case_reference, submitted_at=event.time)
            status = Status.submitted
        case ReferralDispatched():
            new.update(ticket_id=data.ticket_id, dispatched_at=event.time, failure_reason=None)
            status = Status.dispatched
        case ReferralDispatchFailed():
            new.update(failure_reason=data.reason)
            status = Status.dispatch_failed
        case TakedownDecided():
            reason = data.no_action_reason.value if data.no_action_reason else None
            new.update(ticket_id=data.ticket_id, outcome=data.outcome.value, reason=reason, decided_at=event.time)
            status = Status.decided
        case TakedownInformationRequested():
            new.update(ticket_id=data.ticket_id)
            status = Status.information_requested
        case _:
            raise TypeError(f"no rule for {event.type}")
    if isinstance(new.get("platform"), StrEnum):
        new["platform"] = new["platform"].value
    current = Status(state["status"]) if state.get("status") else None
    if current is None or RANK[status] >= RANK[current]:
        new["status"] = status.value
    last = state.get("last_event_at")
    new["last_event_at"] = event.time if last is None or event.time > last else last
    return new
