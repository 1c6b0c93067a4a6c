"""Liveness checks: which check of a referral waiting for a decision is due, and the event recording content gone."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.outcomes.config import OutcomesSettings
from services.outcomes.liveness import UpChecks, due_liveness, gone_event, gone_id, liveness_id

RID = uuid4()
URL = "https://youtube.com/watch?v=abc"
DISPATCHED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
HOUR, DAY = 3600.0, 86_400.0
OFFSETS = OutcomesSettings().liveness_checks_s  # the documented defaults


def waiting(status: str = "dispatched", **values) -> dict:
    return {"referral_id": RID, "status": status, "dispatched_at": DISPATCHED, "canonical_url": URL, **values}


def later(seconds: float) -> datetime:
    return DISPATCHED + timedelta(seconds=seconds)


def test_by_default_a_waiting_referral_is_checked_an_hour_a_day_and_three_seven_and_fourteen_days_after_dispatch():
    assert OFFSETS == [HOUR, DAY, 3 * DAY, 7 * DAY, 14 * DAY]


def test_no_check_is_due_before_the_first_offset_and_the_first_is_due_from_then():
    assert due_liveness(waiting(), OFFSETS, 0, later(HOUR - 1)) is None
    assert due_liveness(waiting(), OFFSETS, 0, later(HOUR)) == 1


def test_the_next_check_is_due_once_its_offset_has_passed_after_one_that_found_the_content_up():
    assert due_liveness(waiting(), OFFSETS, 1, later(DAY - 1)) is None
    assert due_liveness(waiting(), OFFSETS, 1, later(DAY)) == 2


def test_checks_missed_while_the_service_was_down_are_one_check_made_late_the_latest_due():
    assert due_liveness(waiting(), OFFSETS, 0, later(4 * DAY)) == 3
    assert due_liveness(waiting(), OFFSETS, 3, later(4 * DAY)) is None


def test_no_check_is_due_once_every_configured_check_found_the_content_up_or_when_none_is_configured():
    assert due_liveness(waiting(), OFFSETS, 5, later(100 * DAY)) is None
    assert due_liveness(waiting(), [], 0, later(100 * DAY)) is None


@pytest.mark.parametrize("status", ["dispatched", "acknowledged", "information_requested", "escalated", "appealed"])
def test_a_referral_is_checked_in_every_status_that_waits_for_the_platforms_decision(status):
    assert due_liveness(waiting(status), OFFSETS, 0, later(HOUR)) == 1


@pytest.mark.parametrize("state", [waiting("gone_without_reply"), waiting("decided"), waiting("submitted"),
                                   waiting("dispatch_failed"), waiting("expired"), waiting("withdrawn"),
                                   waiting("closed"), waiting(canonical_url=None), waiting(dispatched_at=None)],
                         ids=["gone without reply", "decided", "submitted", "dispatch failed", "expired", "withdrawn",
                              "closed", "no canonical URL", "no dispatch time"])
def test_nothing_is_checked_unless_the_referral_was_dispatched_and_waits_for_a_decision(state):
    assert due_liveness(state, OFFSETS, 0, later(DAY)) is None


def test_content_found_gone_is_recorded_once_per_referral_whichever_check_or_instance_finds_it():
    first = gone_event(RID, URL, later(HOUR))
    again = gone_event(RID, URL, later(3 * DAY))

    assert first.id == again.id == gone_id(RID) != gone_id(uuid4())
    assert (first.type, first.data.url, first.data.checked_at, first.time) == (
        "content.gone_without_reply", URL, later(HOUR), later(HOUR))
    assert (first.actor, first.source) == ("service:outcomes", "/takedown/outcomes")


def test_each_check_of_each_dispatch_waits_on_its_own_after_a_failure():
    assert liveness_id(RID, DISPATCHED, 1) == liveness_id(RID, DISPATCHED, 1)
    assert len({liveness_id(RID, DISPATCHED, 1), liveness_id(RID, DISPATCHED, 2),
                liveness_id(RID, later(DAY), 1)}) == 3


def test_the_checks_that_found_content_up_are_known_per_dispatch_so_a_new_dispatch_starts_again():
    up = UpChecks()
    assert up.done(RID, DISPATCHED) == 0

    up.found_up(RID, DISPATCHED, 2)

    assert up.done(RID, DISPATCHED) == 2
    assert up.done(RID, later(DAY)) == 0 and up.done(uuid4(), DISPATCHED) == 0


def test_past_its_limit_the_memory_forgets_the_referral_checked_longest_ago_which_is_merely_checked_again():
    up, first, second, third = UpChecks(remembered=2), uuid4(), uuid4(), uuid4()
    up.found_up(first, DISPATCHED, 1)
    up.found_up(second, DISPATCHED, 1)
    up.found_up(first, DISPATCHED, 2)

    up.found_up(third, DISPATCHED, 1)

    assert (up.done(first, DISPATCHED), up.done(second, DISPATCHED), up.done(third, DISPATCHED)) == (2, 0, 1)


def test_liveness_checks_are_read_from_the_environment_can_be_switched_off_and_must_increase(monkeypatch):
    monkeypatch.setenv("LIVENESS_CHECKS_S", "[0.5, 2]")
    assert OutcomesSettings().liveness_checks_s == [0.5, 2.0]
    monkeypatch.setenv("LIVENESS_CHECKS_S", "[]")
    assert OutcomesSettings().liveness_checks_s == []
    with pytest.raises(ValidationError):
        OutcomesSettings(liveness_checks_s=[2.0, 1.0])
