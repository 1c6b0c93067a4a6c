"""Outcomes' domain: a referral's state as a projection of its events. No I/O.

Events are folded in the order they happened (time, then a fixed rank of event types, then
event id), never in the order they arrived, so any arrival order gives the same state. A state
keeps the last event folded into it (last_event_at, _id, _type): events that all come after it
are folded onto it as they arrive; one that comes before it needs the whole history again. An event
that is not a legal move from the status at that moment leaves the status alone and is listed
as an anomaly; nothing stops. See docs/lifecycle.md.

Content found gone before the platform decided (gone_without_reply) is not a decision: a later
decision still moves the referral to decided. Until then the platform's other answers
(acknowledgement, a request for information) and the agency's reply to one are recorded as facts
and the status stays: nothing more is chased for content that is gone.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.events import EVENT_TYPES, Event


class Status(StrEnum):
    submitted = "submitted"
    dispatch_failed = "dispatch_failed"
    dispatched = "dispatched"
    acknowledged = "acknowledged"
    information_requested = "information_requested"
    decided = "decided"
    escalated = "escalated"
    appealed = "appealed"
    gone_without_reply = "gone_without_reply"
    reopened = "reopened"
    expired = "expired"
    withdrawn = "withdrawn"
    closed = "closed"


S = Status
_STATUS = {status.value: status for status in Status}
# The status each event type moves a referral to; None: it records facts only.
TARGET: dict[str, Status | None] = {
    "referral.submitted": S.submitted, "referral.dispatch_failed": S.dispatch_failed,
    "referral.dispatched": S.dispatched, "takedown.acknowledged": S.acknowledged,
    "takedown.information_requested": S.information_requested, "referral.information_supplied": S.acknowledged,
    "content.gone_without_reply": S.gone_without_reply, "takedown.decided": S.decided,
    "referral.escalated": S.escalated, "referral.appealed": S.appealed,
    "content.reappeared": S.reopened, "referral.expired": S.expired, "referral.withdrawn": S.withdrawn,
    "referral.closed": S.closed, "referral.overdue": None, "content.still_down": None,
    "referral.information_forwarded": None, "referral.information_forward_failed": None,
}
ORDER = list(TARGET)  # ties in time are broken in this order: causes before effects
RANK = {event_type: rank for rank, event_type in enumerate(ORDER)}
WITH_PLATFORM = frozenset(t for t, model in EVENT_TYPES.items() if "platform" in model.model_fields)
AWAITING_PLATFORM = {S.dispatched, S.acknowledged, S.information_requested, S.escalated, S.appealed}
# Platform answers may carry clocks a little behind ours, so they may seem to come before the
# dispatch: that is allowed from submitted and dispatch_failed, not flagged.
PLATFORM_ANSWERS = {S.acknowledged, S.information_requested, S.decided}
# Liveness checks run while the platform is awaited; a check that raced an expiry may land after it.
GONE_FROM = {*AWAITING_PLATFORM, S.expired}
# While the content is gone without a reply these only add facts: the platform has still not decided.
WHILE_GONE = {S.acknowledged, S.information_requested}
ALLOWED: dict[Status, set[Status]] = {
    S.submitted: {S.dispatched, S.dispatch_failed, S.withdrawn, S.expired, S.escalated, *PLATFORM_ANSWERS},
    S.dispatch_failed: {S.dispatch_failed, S.dispatched, S.withdrawn, S.closed, S.escalated, *PLATFORM_ANSWERS},
    S.dispatched: {S.dispatched, S.acknowledged, S.information_requested, S.decided, S.expired, S.withdrawn,
                   S.escalated, S.gone_without_reply},
    S.acknowledged: {S.acknowledged, S.information_requested, S.decided, S.expired, S.withdrawn, S.escalated,
                     S.gone_without_reply},
    S.information_requested: {S.information_requested, S.acknowledged, S.decided, S.expired, S.withdrawn,
                              S.gone_without_reply},
    S.decided: {S.decided, S.appealed, S.reopened, S.closed},
    S.escalated: {S.dispatched, S.dispatch_failed, S.acknowledged, S.information_requested, S.decided, S.withdrawn,
                  S.gone_without_reply},
    S.appealed: {S.dispatched, S.dispatch_failed, S.acknowledged, S.information_requested, S.decided, S.withdrawn,
                 S.gone_without_reply},
    S.gone_without_reply: {S.decided, S.escalated, S.withdrawn, S.closed},
    S.reopened: {S.escalated, S.closed},
    S.expired: {S.decided, S.closed, S.gone_without_reply},
    S.withdrawn: {S.closed},
    S.closed: set(),
}
FIELDS = ("agency", "platform", "category", "url", "canonical_url", "priority", "case_reference", "status",
          "outcome", "reason", "ticket_id", "failure_reason", "submitted_at", "dispatched_at", "acknowledged_at",
          "information_requested_at", "decided_at", "closed_at", "last_event_at", "overdue", "deadline",
          "dispatches", "reachable", "transitions", "anomalies")
CURSOR = ("last_event_id", "last_event_type")  # with last_event_at: the last event folded in


def order_key(event: Event) -> tuple:
    # The id as a number orders as its text does (fixed-width hex), without making the text.
    return event.time, RANK[event.type], event.id.int


def initial() -> dict[str, Any]:
    """The state of a referral before any event."""
    state: dict[str, Any] = {f: None for f in (*FIELDS, *CURSOR)}
    state.update(overdue=False, dispatches=0, transitions=[], anomalies=[])
    return state


def project(events: Iterable[Event]) -> dict[str, Any]:
    """The state of one referral after all its events, folded in the order they happened."""
    return fold(initial(), events)


def fold(state: dict[str, Any], events: Iterable[Event]) -> dict[str, Any]:
    """state (changed in place) with events folded in, in the order they happened.

    The same as project(all events) only when every event comes after the state's last one
    (see folds_onto); otherwise project the whole history.
    """
    for event in sorted(events, key=order_key):
        _apply(state, event)
    return state


def folds_onto(state: dict[str, Any], events: Iterable[Event]) -> bool:
    """Whether every event comes after the last one folded into state, so fold gives project(all)."""
    if state["last_event_at"] is None:
        return True  # nothing folded in yet
    rank = RANK.get(state["last_event_type"])
    if state["last_event_id"] is None or rank is None:
        return False  # folded before the state kept its last event: project the history again
    last = (state["last_event_at"], rank, state["last_event_id"].int)
    return all(order_key(event) > last for event in events)


def _apply(state: dict[str, Any], event: Event) -> None:
    at = event.time
    if at.utcoffset():  # the same moment, in UTC: transitions read alike whatever offset it came in
        at = at.astimezone(UTC)
    state["referral_id"] = event.referral_id
    state.update(last_event_at=at, last_event_id=event.id, last_event_type=event.type)
    target, current = TARGET[event.type], _STATUS[state["status"]] if state["status"] else None
    if _facts_only(event, current, state):
        _record_facts(state, event, at)
        return
    if target is not None:
        why = _refusal(current, target, state)
        if why:
            state["anomalies"].append({"at": at.isoformat(), "event_type": event.type,
                                       "event_id": str(event.id), "status": state["status"], "why": why})
            if current is not None:
                return
        state["transitions"].append({"from": state["status"], "to": target.value, "at": at.isoformat(),
                                     "event_type": event.type, "event_id": str(event.id)})
        state["status"] = target.value
    _record_facts(state, event, at)


def _facts_only(event: Event, current: Status | None, state: dict[str, Any]) -> bool:
    """Whether event adds facts without moving the status, and without being an anomaly."""
    if event.type == "referral.dispatched" and current in PLATFORM_ANSWERS:
        # The platform had answered on this very ticket first: its clock is behind ours, or the
        # dispatch was written down late (a dispatcher restarted and reported again, and the
        # platform answered the replay with the ticket it had). A late record, not a step back.
        return state["ticket_id"] == event.data.ticket_id
    if event.type == "content.gone_without_reply":
        # A check that raced the platform's decision or the agency's last word: it only saw their effect.
        return current is not None and current not in GONE_FROM
    return current is S.gone_without_reply and TARGET[event.type] in WHILE_GONE


def _refusal(current: Status | None, target: Status, state: dict[str, Any]) -> str | None:
    if current is None:
        return None if target is S.submitted else "no submission recorded before it"
    if target not in ALLOWED[current]:
        return f"{current} cannot become {target}"
    if target is S.appealed and state["outcome"] != "rejected":
        return "only a rejection can be appealed"
    if target is S.reopened and state["outcome"] not in ("removed", "restricted"):
        return "only removed or restricted content can reappear"
    return None


def _record_facts(state: dict[str, Any], event: Event, at: datetime) -> None:
    data = event.data
    match event.type:
        case "referral.submitted":
            state.update(agency=data.agency, platform=data.platform.value, category=data.category.value,
                         url=data.url, canonical_url=data.canonical_url, priority=data.priority.value,
                         case_reference=data.case_reference, submitted_at=at)
        case "referral.dispatched":
            state.update(ticket_id=data.ticket_id, dispatched_at=at, failure_reason=None,
                         dispatches=max(state["dispatches"], 1))
        case "referral.dispatch_failed":
            state.update(failure_reason=data.reason)
        case "takedown.acknowledged":
            state.update(ticket_id=data.ticket_id, acknowledged_at=at)
        case "takedown.information_requested":
            state.update(ticket_id=data.ticket_id, information_requested_at=at)
        case "takedown.decided":
            reason = data.no_action_reason.value if data.no_action_reason else None
            state.update(ticket_id=data.ticket_id, outcome=data.outcome.value, reason=reason, decided_at=at,
                         overdue=False)
        case "referral.escalated" | "referral.appealed":
            state.update(dispatches=max(state["dispatches"], data.referral.dispatch), outcome=None, reason=None,
                         decided_at=None)
        case "referral.overdue":
            if state["status"] in AWAITING_PLATFORM | {S.submitted, S.dispatch_failed}:
                state.update(overdue=True, deadline=data.deadline)
        case "content.still_down":
            state.update(reachable=False)
        case "content.reappeared":
            state.update(reachable=True)
        case "referral.closed":
            state.update(closed_at=at)
    if event.type in WITH_PLATFORM and state["platform"] is None:
        state["platform"] = data.platform.value
