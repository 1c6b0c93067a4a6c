"""A referral's state as a projection of its events, whatever order they arrive in."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from services.outcomes.domain import project
from shared.events import (Category, ContentGoneWithoutReply, ContentReappeared, ContentStillDown, Event,
                           InformationSupplied, NoActionReason, Outcome, Platform, ReferralAppealed, ReferralClosed,
                           ReferralDispatched, ReferralDispatchFailed, ReferralEscalated, ReferralOverdue,
                           ReferralSubmitted, ReferralWithdrawn, TakedownAcknowledged, TakedownDecided,
                           TakedownInformationRequested, Visibility)

RID = uuid4()
T0 = datetime(2020, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(data, minutes: float, who: str = "service:dispatcher") -> Event:
    return Event(source="/test", actor=who, time=at(minutes), data=data)


def submitted(m=0):
    return event(ReferralSubmitted(referral_id=RID, agency="NCA", url="https://fb.com/g?fbclid=1",
                                   canonical_url="https://fb.com/g", platform=Platform.facebook,
                                   category=Category.people_smuggling, case_reference="OP-1", submitted_at=at(m)),
                 m, "agency:NCA")


def again(dispatch: int) -> ReferralSubmitted:
    return submitted().data.model_copy(update={"dispatch": dispatch})


def dispatched(m=1, ticket="FB-1"):
    return event(ReferralDispatched(referral_id=RID, platform=Platform.facebook, adapter="meta", ticket_id=ticket), m)


def failed(m=1, reason="HTTP 503"):
    return event(ReferralDispatchFailed(referral_id=RID, platform=Platform.facebook, adapter="meta", reason=reason), m)


def removed(m=120, ticket="FB-1"):
    return event(TakedownDecided(referral_id=RID, platform=Platform.facebook, ticket_id=ticket, outcome=Outcome.removed,
                                 decision_visibility=[Visibility.content_removed]), m, "platform:facebook")


def rejected(m=120):
    return event(TakedownDecided(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1",
                                 outcome=Outcome.rejected, no_action_reason=NoActionReason.no_violation),
                 m, "platform:facebook")


def asked(m=60):
    return event(TakedownInformationRequested(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1",
                                              question="Which post?"), m, "platform:facebook")


def overdue(m=90):
    return event(ReferralOverdue(referral_id=RID, deadline=at(m)), m, "service:outcomes")


def gone(m=100):
    return event(ContentGoneWithoutReply(referral_id=RID, url="https://fb.com/g", checked_at=at(m)), m,
                 "service:outcomes")


LIFECYCLES = [
    [submitted(), dispatched(), removed()],
    [submitted(), failed(1), dispatched(5), asked(60), overdue(90), removed(120),
     event(ContentStillDown(referral_id=RID, url="https://fb.com/g", checked_at=at(1500)), 1500),
     event(ContentReappeared(referral_id=RID, url="https://fb.com/g", checked_at=at(9000)), 9000)],
    [submitted(), dispatched(), rejected(),
     event(ReferralAppealed(referral_id=RID, reason="new evidence", referral=again(2)), 200, "agency:NCA"),
     dispatched(201, "FB-2"), removed(300, "FB-2"),
     event(ReferralClosed(referral_id=RID), 400, "agency:NCA")],
    [submitted(), dispatched(), overdue(90), gone(100), removed(120)],
]


@settings(max_examples=200, deadline=None)
@given(lifecycle=st.sampled_from(LIFECYCLES), data=st.data())
def test_any_arrival_order_gives_the_same_state_and_the_same_complete_history(lifecycle, data):
    arrived = data.draw(st.permutations(lifecycle))

    state = project(arrived)

    assert state == project(lifecycle)
    assert state["anomalies"] == []
    assert [t["event_id"] for t in state["transitions"]] == \
        [str(e.id) for e in lifecycle if e.type not in ("referral.overdue", "content.still_down")]


def test_a_lifecycle_records_every_fact_and_timestamped_transition():
    state = project(LIFECYCLES[1])

    assert state["status"] == "reopened" and state["outcome"] == "removed" and state["reachable"] is True
    assert (state["agency"], state["platform"], state["category"]) == ("NCA", "facebook", "people_smuggling")
    assert state["submitted_at"] == at(0) and state["dispatched_at"] == at(5) and state["decided_at"] == at(120)
    assert state["information_requested_at"] == at(60) and state["overdue"] is False
    assert [(t["from"], t["to"]) for t in state["transitions"]] == [
        (None, "submitted"), ("submitted", "dispatch_failed"), ("dispatch_failed", "dispatched"),
        ("dispatched", "information_requested"), ("information_requested", "decided"), ("decided", "reopened")]
    assert state["transitions"][4]["at"] == at(120).isoformat()


def test_a_referral_waiting_past_its_deadline_is_overdue_until_decided():
    assert project([submitted(), dispatched(), overdue(90)])["overdue"] is True
    assert project([submitted(), dispatched(), overdue(90), removed(120)])["overdue"] is False


def test_an_appeal_dispatches_again_and_both_decisions_stay_in_one_history():
    state = project(LIFECYCLES[2])

    assert state["status"] == "closed" and state["outcome"] == "removed" and state["dispatches"] == 2
    assert state["ticket_id"] == "FB-2"
    assert [t["to"] for t in state["transitions"]].count("decided") == 2


def test_an_impossible_transition_is_an_anomaly_that_leaves_the_status_alone():
    withdrawal = event(ReferralWithdrawn(referral_id=RID, reason="duplicate of OP-2"), 30, "agency:NCA")

    state = project([submitted(), dispatched(), withdrawal, removed(120)])

    assert state["status"] == "withdrawn"
    [anomaly] = state["anomalies"]
    assert anomaly["event_type"] == "takedown.decided" and anomaly["why"] == "withdrawn cannot become decided"


def test_only_a_rejection_can_be_appealed():
    appeal = event(ReferralAppealed(referral_id=RID, reason="please", referral=again(2)), 200, "agency:NCA")

    state = project([submitted(), dispatched(), removed(), appeal])

    assert state["status"] == "decided" and state["anomalies"][0]["why"] == "only a rejection can be appealed"


def test_events_of_a_referral_whose_submission_has_not_arrived_yet_are_kept_and_flagged():
    state = project([dispatched(), removed()])

    assert state["status"] == "decided"
    assert state["anomalies"][0]["why"] == "no submission recorded before it"
    assert project([dispatched(), removed(), submitted()])["anomalies"] == []


def test_a_dispatch_failure_after_the_dispatch_is_recorded_without_moving_the_status_back():
    state = project([submitted(), dispatched(1), failed(2, "late duplicate")])

    assert state["status"] == "dispatched" and state["anomalies"][0]["why"] == "dispatched cannot become dispatch_failed"


def test_a_dispatch_recorded_after_the_platform_answered_on_its_ticket_is_late_not_an_anomaly():
    """A dispatcher restarted after the platform took the report reports it again; the platform
    answers the replay with the ticket it had, already decided: our dispatch is stamped later."""
    state = project([submitted(0), removed(2, ticket="FB-1"), dispatched(3, ticket="FB-1")])
    assert state["status"] == "decided" and state["outcome"] == "removed"
    assert state["anomalies"] == []
    assert state["dispatched_at"] == at(3) and state["dispatches"] == 1
    assert [t["to"] for t in state["transitions"]] == ["submitted", "decided"]


def test_a_dispatch_on_another_ticket_after_a_decision_is_still_an_anomaly():
    state = project([submitted(0), dispatched(1, ticket="FB-1"), removed(2, ticket="FB-1"),
                     dispatched(3, ticket="FB-2")])
    assert state["status"] == "decided"
    assert [a["why"] for a in state["anomalies"]] == ["decided cannot become dispatched"]


def test_content_found_gone_before_any_reply_is_its_own_status_and_a_later_decision_still_lands():
    found_gone = project([submitted(), dispatched(), gone(100)])
    decided = project([submitted(), dispatched(), gone(100), removed(120)])

    assert (found_gone["status"], found_gone["outcome"], found_gone["decided_at"]) == ("gone_without_reply", None, None)
    assert (decided["status"], decided["outcome"], decided["decided_at"]) == ("decided", "removed", at(120))
    assert [(t["from"], t["to"]) for t in decided["transitions"]][-2:] == [
        ("dispatched", "gone_without_reply"), ("gone_without_reply", "decided")]
    assert decided["anomalies"] == [] and decided["reachable"] is None  # reachable: stays-down checks only


def test_content_gone_while_the_platform_reviews_or_asks_for_information_is_gone_without_reply_too():
    acknowledged = event(TakedownAcknowledged(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1"), 30)

    assert project([submitted(), dispatched(), acknowledged, gone(100)])["status"] == "gone_without_reply"
    assert project([submitted(), dispatched(), asked(60), gone(100)])["status"] == "gone_without_reply"


def test_the_platforms_acknowledgement_or_question_after_the_content_is_gone_is_recorded_without_moving_the_status():
    acknowledged = event(TakedownAcknowledged(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1"), 110)
    answer = event(InformationSupplied(referral_id=RID, answer="s.2"), 130, "agency:NCA")

    state = project([submitted(), dispatched(), gone(100), acknowledged, asked(120), answer])

    assert state["status"] == "gone_without_reply" and state["anomalies"] == []
    assert (state["acknowledged_at"], state["information_requested_at"]) == (at(110), at(120))
    assert project([submitted(), dispatched(), gone(100), asked(120), removed(150)])["status"] == "decided"


def test_a_deadline_missed_after_the_content_is_gone_does_not_flag_the_referral_overdue():
    assert project([submitted(), dispatched(), gone(80), overdue(90)])["overdue"] is False
    assert project([submitted(), dispatched(), overdue(90), gone(100)])["overdue"] is True  # missed while it was up


def test_a_check_that_found_the_content_gone_after_the_decision_is_kept_in_the_history_but_is_no_transition():
    withdrawal = event(ReferralWithdrawn(referral_id=RID), 110, "agency:NCA")

    after_decision = project([submitted(), dispatched(), removed(100), gone(101)])
    after_withdrawal = project([submitted(), dispatched(), withdrawal, gone(120)])

    assert (after_decision["status"], after_withdrawal["status"]) == ("decided", "withdrawn")
    assert after_decision["anomalies"] == after_withdrawal["anomalies"] == []
    transitions = after_decision["transitions"] + after_withdrawal["transitions"]
    assert "gone_without_reply" not in [t["to"] for t in transitions]


def test_the_agency_may_still_escalate_or_close_a_referral_whose_content_is_gone():
    escalation = event(ReferralEscalated(referral_id=RID, reason="copies elsewhere", referral=again(2)), 200,
                       "agency:NCA")
    closing = event(ReferralClosed(referral_id=RID), 200, "agency:NCA")

    assert project([submitted(), dispatched(), gone(100), escalation])["status"] == "escalated"
    assert project([submitted(), dispatched(), gone(100), closing])["status"] == "closed"
