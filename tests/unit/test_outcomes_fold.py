"""Folding events into a stored state, batch by batch, gives the state projected from all of them."""

import json
from datetime import timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from services.outcomes.domain import fold, folds_onto, initial, project
from shared.events import Event, InformationSupplied, ReferralWithdrawn
from tests.unit.test_outcomes_state import (LIFECYCLES, RID, asked, dispatched, event, failed, gone, overdue, removed,
                                            submitted)

PARIS = timezone(timedelta(hours=1))
# Beyond the usual lifecycles: ties in time (broken by event type, then by id), anomalies, and
# events sent with another offset than UTC.
ODD = [
    [submitted(0), dispatched(0), removed(0), overdue(0), overdue(0), gone(0)],
    [dispatched(), removed(), submitted(), failed(2, "late duplicate"),
     event(ReferralWithdrawn(referral_id=RID, reason="duplicate"), 30, "agency:NCA")],
    [submitted(), dispatched(), gone(100), asked(120), event(InformationSupplied(referral_id=RID, answer="s.2"), 130),
     removed(150)],
    [e.model_copy(update={"time": e.time.astimezone(PARIS)}) for e in LIFECYCLES[1]],
]


def stored(state: dict) -> dict:
    """state as it reads back from its row: its JSON columns written and parsed again."""
    return {**state, "transitions": json.loads(json.dumps(state["transitions"])),
            "anomalies": json.loads(json.dumps(state["anomalies"]))}


def record(batches: list[list[Event]]) -> dict:
    """What the service does with each batch: fold it onto the stored state when it comes after
    it, else project everything recorded so far."""
    state, recorded = None, []
    for batch in batches:
        recorded += batch
        state = state or initial()
        state = stored(fold(state, batch) if folds_onto(state, batch) else project(recorded))
    return state


@settings(max_examples=400, deadline=None)
@given(lifecycle=st.sampled_from(LIFECYCLES + ODD), data=st.data())
def test_events_in_any_order_and_any_batches_fold_into_the_state_projected_from_all_of_them(lifecycle, data):
    arrived = data.draw(st.permutations(lifecycle))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(arrived) - 1), max_size=len(arrived) - 1)))
    batches = [arrived[start:end] for start, end in zip([0, *cuts], [*cuts, len(arrived)], strict=True)]

    assert record(batches) == stored(project(lifecycle))


def test_events_after_the_last_one_folded_fold_onto_the_state_and_an_earlier_one_does_not():
    state = project([submitted(0), dispatched(1), overdue(90)])

    assert folds_onto(state, [removed(120), gone(130)])
    assert not folds_onto(state, [removed(120), asked(60)])
    assert folds_onto(initial(), [removed(120), submitted(0)])


def test_of_events_at_the_same_moment_the_event_type_and_then_the_id_decide_which_comes_after():
    first, second = sorted([overdue(90), overdue(90)], key=lambda e: e.id.int)
    decided_then = project([submitted(0), dispatched(1), removed(90)])  # a decision ranks before overdue

    assert folds_onto(project([submitted(0), first]), [second])
    assert not folds_onto(project([submitted(0), second]), [first])
    assert folds_onto(decided_then, [first]) and not folds_onto(project([submitted(0), first]), [removed(90)])


def test_a_state_folded_before_it_kept_its_last_event_is_projected_again():
    state = {**project([submitted(0), dispatched(1)]), "last_event_id": None, "last_event_type": None}

    assert not folds_onto(state, [removed(120)])


def test_times_given_with_another_offset_are_folded_in_utc():
    paris = [e.model_copy(update={"time": e.time.astimezone(PARIS)}) for e in LIFECYCLES[0]]

    state = project(paris)

    assert state == project(LIFECYCLES[0])
    assert all(t["at"].endswith("+00:00") for t in state["transitions"])
    assert state["last_event_at"].utcoffset() == timedelta(0)
