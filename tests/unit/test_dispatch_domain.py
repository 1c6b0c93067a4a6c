"""Platform answers as lifecycle events, with ids that make repeats harmless."""

from datetime import UTC, datetime
from uuid import uuid4

from services.dispatcher import domain
from services.dispatcher.adapters.base import Decision, InformationRequest
from shared.events import (AccountAction, Ground, NoActionReason, Outcome, Platform, TakedownDecided,
                           TakedownInformationRequested, Visibility)

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_the_same_inputs_always_give_the_same_event_id_and_different_ones_differ():
    rid = uuid4()

    assert domain.stable_id(rid, "dispatched", "T1") == domain.stable_id(rid, "dispatched", "T1")
    assert domain.stable_id(rid, "dispatched", "T1") != domain.stable_id(rid, "dispatched", "T2")
    assert domain.stable_id(rid, "dispatched", "T1") != domain.stable_id(uuid4(), "dispatched", "T1")


def test_a_decision_becomes_takedown_decided_by_the_platform_at_the_time_it_decided():
    rid = uuid4()
    decision = Decision("T1", rid, AT, visibility=(Visibility.content_removed,), ground=Ground.illegal_content,
                        territorial_scope=("GB",), explanation="smuggling advert")

    event = domain.answered(Platform.youtube, decision)

    assert isinstance(event.data, TakedownDecided)
    assert (event.actor, event.time, event.referral_id) == ("platform:youtube", AT, rid)
    assert event.data.outcome is Outcome.removed
    assert event.data.decision_visibility == [Visibility.content_removed]
    assert event.data.decision_ground is Ground.illegal_content and event.data.territorial_scope == ["GB"]
    assert event.data.platform_explanation == "smuggling advert"
    assert domain.answered(Platform.youtube, decision).id == event.id


def test_a_refusal_is_summarised_as_rejected_with_its_reason():
    event = domain.answered(Platform.facebook, Decision("T1", uuid4(), AT, no_action_reason=NoActionReason.no_violation))

    assert event.data.outcome is Outcome.rejected and event.data.no_action_reason is NoActionReason.no_violation


def test_a_suspended_account_counts_as_removed_and_a_demotion_as_restricted():
    suspended = Decision("T1", uuid4(), AT, account=AccountAction.account_suspended)
    demoted = Decision("T2", uuid4(), AT, visibility=(Visibility.content_demoted,))

    assert domain.answered(Platform.x, suspended).data.outcome is Outcome.removed
    assert domain.answered(Platform.x, demoted).data.outcome is Outcome.restricted


def test_a_request_for_information_is_an_event_of_its_own():
    rid = uuid4()

    event = domain.answered(Platform.tiktok, InformationRequest("T9", rid, AT, "Which account?"))

    assert isinstance(event.data, TakedownInformationRequested)
    assert event.type == "takedown.information_requested" and event.data.question == "Which account?"
    assert event.time == AT and event.actor == "platform:tiktok"
