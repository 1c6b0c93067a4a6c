"""Deadlines from a referral's projected state: allowed time, pauses, overrides, overdue and expiry."""

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.outcomes.config import OutcomesSettings
from services.outcomes.deadlines import Policy, clock, due
from services.outcomes.domain import project
from shared.events import (Category, ContentGoneWithoutReply, Event, InformationSupplied, NoActionReason, Outcome,
                           Platform, ReferralAppealed, ReferralDispatched, ReferralDispatchFailed, ReferralEscalated,
                           ReferralSubmitted, TakedownDecided, TakedownInformationRequested)

RID = uuid4()
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = OutcomesSettings().deadline_policy()  # the documented defaults


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def event(data, hours: float) -> Event:
    return Event(source="/test", actor="service:test", time=at(hours), data=data)


def submitted(category: Category = Category.terrorism, platform: Platform = Platform.facebook) -> Event:
    return event(ReferralSubmitted(referral_id=RID, agency="NCA", url="https://fb.com/p/1", canonical_url="https://fb.com/p/1",
                                   platform=platform, category=category, submitted_at=T0), 0)


def again(dispatch: int) -> ReferralSubmitted:
    return submitted().data.model_copy(update={"dispatch": dispatch})


def dispatched(hours: float = 0.01) -> Event:
    return event(ReferralDispatched(referral_id=RID, platform=Platform.facebook, adapter="meta", ticket_id="FB-1"), hours)


def asked(hours: float) -> Event:
    return event(TakedownInformationRequested(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1",
                                              question="Which statute?"), hours)


def answered(hours: float) -> Event:
    return event(InformationSupplied(referral_id=RID, answer="Terrorism Act 2006, s.3"), hours)


def rejected(hours: float) -> Event:
    return event(TakedownDecided(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1",
                                 outcome=Outcome.rejected, no_action_reason=NoActionReason.no_violation), hours)


def state_of(*events: Event) -> dict:
    return project(list(events))


def deadline_of(*events: Event, now: datetime, policy: Policy = POLICY) -> datetime:
    return clock(state_of(*events), policy, now).deadline


def types_due(*events: Event, now: datetime, policy: Policy = POLICY) -> list[str]:
    return [e.type for e in due(state_of(*events), policy, now)]


def test_every_category_has_its_documented_default_in_hours():
    assert POLICY.hours == {"terrorism": 1, "violent_extremism": 24, "people_smuggling": 72, "human_trafficking": 72,
                            "illegal_goods": 168, "fraud": 168, "other": 336}
    assert set(POLICY.hours) == {c.value for c in Category}
    assert POLICY.expire_after_factor == 4


def test_a_terrorism_referral_is_due_an_hour_after_submission_and_overdue_only_after_that():
    assert deadline_of(submitted(), dispatched(), now=at(0.5)) == at(1)
    assert types_due(submitted(), dispatched(), now=at(1)) == []
    assert types_due(submitted(), dispatched(), now=at(1.01)) == ["referral.overdue"]


def test_the_overdue_event_carries_the_deadline_is_dated_at_it_and_has_the_same_id_whenever_derived():
    [first] = due(state_of(submitted(), dispatched()), POLICY, at(1.5))
    [later] = due(state_of(submitted(), dispatched()), POLICY, at(2.5))
    assert first.data.deadline == first.time == at(1)
    assert (first.actor, first.source) == ("service:outcomes", "/takedown/outcomes")
    assert first.id == later.id and first == later


def test_a_referral_already_flagged_overdue_is_not_flagged_again_but_still_expires():
    state = {**state_of(submitted(), dispatched()), "overdue": True}
    assert [e.type for e in due(state, POLICY, at(2))] == []
    assert [e.type for e in due(state, POLICY, at(4.01))] == ["referral.expired"]


def test_a_referral_expires_after_four_times_its_allowed_time_and_both_events_are_due_if_both_were_missed():
    [overdue, expired] = due(state_of(submitted(), dispatched()), POLICY, at(5))
    assert (overdue.type, expired.type) == ("referral.overdue", "referral.expired")
    assert expired.time == at(4) and overdue.time == at(1)
    assert expired.id != overdue.id
    assert types_due(submitted(), dispatched(), now=at(3.99)) == ["referral.overdue"]


def test_the_expire_factor_comes_from_the_settings():
    policy = OutcomesSettings(expire_after_factor=2).deadline_policy()
    assert clock(state_of(submitted(), dispatched()), policy, at(0)).expires_at == at(2)


def test_time_spent_waiting_for_information_the_platform_asked_for_is_added_to_the_deadline():
    events = (submitted(), dispatched(), asked(0.5), answered(2.5))
    assert deadline_of(*events, now=at(3)) == at(3)
    assert types_due(*events, now=at(2.9)) == []
    assert types_due(*events, now=at(3.1)) == ["referral.overdue"]


def test_while_the_platform_still_waits_for_information_the_clock_stands_still_and_nothing_is_due():
    events = (submitted(), dispatched(), asked(0.5))
    assert deadline_of(*events, now=at(2)) == at(2.5)
    assert deadline_of(*events, now=at(10)) == at(10.5)
    assert types_due(*events, now=at(100)) == []


def test_two_requests_for_information_each_pause_the_clock():
    events = (submitted(), dispatched(), asked(0.25), answered(0.5), asked(0.75), answered(1.75))
    assert deadline_of(*events, now=at(3)) == at(1 + 0.25 + 1)


def test_asking_again_before_the_first_question_is_answered_pauses_the_clock_once_from_the_first_question():
    events = (submitted(), dispatched(), asked(0.25), asked(0.5), answered(1.25))
    assert deadline_of(*events, now=at(3)) == at(2)


def test_a_request_for_information_after_the_deadline_does_not_move_it():
    events = (submitted(), dispatched(), asked(1.5), answered(3))
    assert deadline_of(*events, now=at(4)) == at(1)
    assert due(state_of(submitted(), dispatched()), POLICY, at(1.2))[0].id == due(state_of(*events), POLICY, at(3.5))[0].id


def test_an_override_for_the_category_and_platform_wins_over_the_category():
    policy = OutcomesSettings(deadline_overrides={"terrorism/facebook": 0.5}).deadline_policy()
    assert deadline_of(submitted(), dispatched(), now=at(0), policy=policy) == at(0.5)
    on_youtube = (submitted(platform=Platform.youtube), dispatched())
    assert deadline_of(*on_youtube, now=at(0), policy=policy) == at(1)


def test_deadlines_and_overrides_are_read_from_the_environment_in_hours(monkeypatch):
    monkeypatch.setenv("DEADLINES__FRAUD", "48")
    monkeypatch.setenv("DEADLINE_OVERRIDES__TERRORISM/FACEBOOK", "0.5")
    monkeypatch.setenv("DEADLINE_OVERRIDES__FRAUD__TIKTOK", "12")
    policy = OutcomesSettings().deadline_policy()
    assert policy.hours["fraud"] == 48 and policy.hours["terrorism"] == 1
    assert policy.overrides == {("terrorism", "facebook"): 0.5, ("fraud", "tiktok"): 12}
    assert policy.allowed("fraud", "tiktok") == 12 * HOUR and policy.allowed("fraud", "x") == 48 * HOUR


@pytest.mark.parametrize("overrides", [{"terrorism/myspace": 1}, {"piracy/facebook": 1}, {"terrorism": 1},
                                       {"terrorism/facebook": 0}],
                         ids=["unknown platform", "unknown category", "no platform", "no time at all"])
def test_an_override_that_names_no_known_category_and_platform_or_allows_no_time_is_refused(overrides):
    with pytest.raises(ValidationError):
        OutcomesSettings(deadline_overrides=overrides)


def test_a_decided_withdrawn_or_unsubmitted_referral_has_nothing_due():
    assert types_due(submitted(), dispatched(), rejected(0.5), now=at(10)) == []
    assert types_due(dispatched(), now=at(10)) == []  # no submission recorded: no clock


def test_a_referral_whose_content_is_gone_without_a_reply_is_neither_overdue_nor_expires_until_escalated():
    gone = event(ContentGoneWithoutReply(referral_id=RID, url="https://fb.com/p/1", checked_at=at(0.5)), 0.5)
    escalated = event(ReferralEscalated(referral_id=RID, reason="copies elsewhere", referral=again(2)), 6)
    assert types_due(submitted(), dispatched(), gone, now=at(100)) == []
    assert types_due(submitted(), dispatched(), gone, answered(2), now=at(100)) == []  # still gone: status unchanged
    assert types_due(submitted(), dispatched(), gone, escalated, dispatched(6.1), now=at(7)) == [
        "referral.overdue", "referral.expired"]  # the agency asked again: chased again, on the first deadline


def test_a_referral_whose_dispatch_failed_becomes_overdue_but_does_not_expire():
    failed = event(ReferralDispatchFailed(referral_id=RID, platform=Platform.facebook, adapter="meta",
                                          reason="HTTP 503"), 0.01)
    assert types_due(submitted(), failed, now=at(10)) == ["referral.overdue"]


def test_an_escalated_referral_keeps_its_deadline_and_expires_once_dispatched_again():
    escalated = event(ReferralEscalated(referral_id=RID, reason="no answer", referral=again(2)), 1.5)
    assert deadline_of(submitted(), dispatched(), escalated, now=at(2)) == at(1)
    assert types_due(submitted(), dispatched(), escalated, now=at(5)) == ["referral.overdue"]
    assert types_due(submitted(), dispatched(), escalated, dispatched(1.6), now=at(5)) == [
        "referral.overdue", "referral.expired"]


def test_an_appeal_starts_the_clock_again_with_a_new_deadline():
    appealed = event(ReferralAppealed(referral_id=RID, reason="new evidence", referral=again(2)), 3)
    events = (submitted(), dispatched(), rejected(0.5), appealed, dispatched(3.01))
    assert deadline_of(*events, now=at(3.5)) == at(4)
    [overdue] = due(state_of(*events), POLICY, at(4.5))
    assert overdue.data.deadline == at(4)
    assert overdue.id != due(state_of(submitted(), dispatched()), POLICY, at(1.5))[0].id


def test_the_deadline_and_its_event_id_do_not_depend_on_the_offset_the_platform_dated_its_question_in():
    paris = timezone(timedelta(hours=1))
    in_utc = (submitted(), dispatched(), asked(0.5), answered(2.5))
    in_paris = (submitted(), dispatched(), asked(0.5).model_copy(update={"time": at(0.5).astimezone(paris)}),
                answered(2.5).model_copy(update={"time": at(2.5).astimezone(paris)}))
    [a], [b] = due(state_of(*in_utc), POLICY, at(4)), due(state_of(*in_paris), POLICY, at(4))
    assert a.id == b.id and b.data.deadline == at(3) and b.data.deadline.utcoffset() == timedelta(0)
