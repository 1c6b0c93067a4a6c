"""Outcomes' fold of lifecycle events into a referral's state: pure, and indifferent to arrival order."""

import itertools
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import ClassVar
from uuid import uuid4

import pytest

from services.outcomes.domain import apply
from shared.events import (NoActionReason, Category, Event, EventData, Outcome, Platform, Priority, ReferralDispatched,
                           ReferralDispatchFailed, ReferralSubmitted, TakedownDecided)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RID = uuid4()


def submitted(at: datetime = T0, **overrides) -> Event:
    data = ReferralSubmitted(**{
        "referral_id": RID, "agency": "NCA", "url": "https://www.facebook.com/groups/smugglers?fbclid=abc",
        "canonical_url": "https://facebook.com/groups/smugglers", "platform": Platform.facebook,
        "category": Category.people_smuggling, "priority": Priority.high, "case_reference": "OP-1",
        "submitted_at": at, **overrides})
    return Event(source="/takedown/intake", actor="agency:NCA", time=at, data=data)


def dispatched(at: datetime = T0 + timedelta(minutes=1), ticket: str = "FB-1") -> Event:
    data = ReferralDispatched(referral_id=RID, platform=Platform.facebook, adapter="facebook", ticket_id=ticket)
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", time=at, data=data)


def failed(at: datetime = T0 + timedelta(minutes=1), reason: str = "platform unreachable") -> Event:
    data = ReferralDispatchFailed(referral_id=RID, platform=Platform.facebook, adapter="facebook", reason=reason)
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", time=at, data=data)


def decided(at: datetime = T0 + timedelta(hours=2), ticket: str = "FB-1") -> Event:
    data = TakedownDecided(referral_id=RID, platform=Platform.facebook, ticket_id=ticket,
                           outcome=Outcome.rejected, no_action_reason=NoActionReason.no_violation)
    return Event(source="/takedown/dispatcher", actor="platform:facebook", time=at, data=data)


def fold(events) -> dict:
    return reduce(apply, events, {})


LIFECYCLE = (submitted(), dispatched(), decided())


@pytest.mark.parametrize("order", list(itertools.permutations(LIFECYCLE)),
                         ids=lambda order: ">".join(e.type.split(".")[1] for e in order))
def test_every_arrival_order_of_a_lifecycle_folds_to_the_same_decided_state(order):
    assert fold(order) == fold(LIFECYCLE) == {
        "referral_id": RID, "status": "decided", "agency": "NCA", "platform": "facebook",
        "category": "people_smuggling", "url": "https://www.facebook.com/groups/smugglers?fbclid=abc",
        "canonical_url": "https://facebook.com/groups/smugglers", "priority": "high", "case_reference": "OP-1",
        "ticket_id": "FB-1", "outcome": "rejected", "reason": "no_violation", "failure_reason": None,
        "submitted_at": T0, "dispatched_at": T0 + timedelta(minutes=1), "decided_at": T0 + timedelta(hours=2),
        "last_event_at": T0 + timedelta(hours=2),
    }


def test_a_submitted_event_alone_gives_a_submitted_referral_with_its_details():
    state = fold([submitted()])

    assert state["status"] == "submitted"
    assert (state["agency"], state["platform"], state["canonical_url"]) == (
        "NCA", "facebook", "https://facebook.com/groups/smugglers")
    assert state["submitted_at"] == state["last_event_at"] == T0
    assert "ticket_id" not in state and "outcome" not in state


def test_a_dispatch_failed_alone_gives_status_dispatch_failed_with_its_reason_and_platform():
    state = fold([failed(reason="HTTP 503 from platform")])

    assert state["status"] == "dispatch_failed"
    assert state["failure_reason"] == "HTTP 503 from platform"
    assert state["platform"] == "facebook" and state["referral_id"] == RID
    assert state["last_event_at"] == T0 + timedelta(minutes=1)


def test_a_dispatched_after_a_dispatch_failed_gives_dispatched_and_clears_the_failure_reason():
    state = fold([submitted(), failed(at=T0 + timedelta(minutes=1)), dispatched(at=T0 + timedelta(minutes=5))])

    assert state["status"] == "dispatched"
    assert state["failure_reason"] is None
    assert state["ticket_id"] == "FB-1" and state["dispatched_at"] == T0 + timedelta(minutes=5)


def test_a_dispatch_failed_after_a_dispatched_keeps_status_dispatched_but_records_the_reason():
    state = fold([submitted(), dispatched(at=T0 + timedelta(minutes=1)), failed(at=T0 + timedelta(minutes=5))])

    assert state["status"] == "dispatched"
    assert state["failure_reason"] == "platform unreachable"
    assert state["ticket_id"] == "FB-1"


@pytest.mark.parametrize(("earlier", "later"), [
    (submitted(), failed()), (submitted(), dispatched()), (submitted(), decided()),
    (failed(), dispatched()), (failed(), decided()), (dispatched(), decided()),
], ids=lambda e: e.type.split(".")[1])
def test_a_late_arriving_earlier_stage_never_moves_the_status_back(earlier, later):
    assert fold([later, earlier])["status"] == fold([later])["status"] == fold([earlier, later])["status"]


def test_a_submitted_arriving_after_the_decision_fills_in_the_details_without_moving_the_status():
    decided_only = fold([decided()])
    state = apply(decided_only, submitted())

    assert decided_only["status"] == "decided" and "agency" not in decided_only
    assert decided_only["platform"] == "facebook"
    assert state["status"] == "decided" and state["outcome"] == "rejected"
    assert (state["agency"], state["category"], state["case_reference"]) == ("NCA", "people_smuggling", "OP-1")


def test_last_event_at_is_the_latest_event_time_whatever_the_arrival_order():
    # The platform's clock may put its decision before our own dispatch time: the latest still wins.
    events = (submitted(at=T0), dispatched(at=T0 + timedelta(hours=3)), decided(at=T0 + timedelta(hours=1)))

    for order in itertools.permutations(events):
        assert fold(order)["last_event_at"] == T0 + timedelta(hours=3)


def test_the_state_as_stored_and_reloaded_folds_on_like_the_state_in_memory():
    # The database hands back plain strings and leaves out columns that are null.
    def stored(state: dict) -> dict:
        return {k: (v.value if hasattr(v, "value") else v) for k, v in state.items() if v is not None}

    in_memory = fold([submitted(), dispatched()])

    assert stored(apply(stored(in_memory), decided())) == stored(apply(in_memory, decided()))


def test_apply_leaves_the_state_it_was_given_untouched():
    state = fold([submitted()])
    before = dict(state)

    after = apply(state, decided())

    assert state == before
    assert after is not state and after["status"] == "decided"


def test_an_event_type_it_has_no_rule_for_is_refused():
    class Withdrawn(EventData):
        event_type: ClassVar[str] = "referral.withdrawn"

    event = Event(source="/takedown/intake", actor="agency:NCA", data=Withdrawn(referral_id=RID))

    with pytest.raises(TypeError, match="no rule for referral.withdrawn"):
        apply(fold([submitted()]), event)
