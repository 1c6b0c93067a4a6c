"""Stays-down checks: which check of removed content is due, the events recording them, the check URL."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.outcomes.config import OutcomesSettings
from services.outcomes.domain import project
from services.outcomes.probe import check_url
from services.outcomes.staysdown import Retries, check_event, due_check
from shared.events import (Category, Event, Outcome, Platform, ReferralDispatched, ReferralSubmitted,
                           TakedownDecided, Visibility)

RID = uuid4()
URL = "https://facebook.com/groups/123?post=9"
DECIDED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DAY, WEEK = 86_400.0, 7 * 86_400.0
OFFSETS = OutcomesSettings().stays_down_checks_s  # the documented defaults


def decided(outcome: str = "removed", status: str = "decided") -> dict:
    return {"referral_id": RID, "status": status, "outcome": outcome, "decided_at": DECIDED, "canonical_url": URL}


def later(seconds: float) -> datetime:
    return DECIDED + timedelta(seconds=seconds)


def test_by_default_removed_content_is_checked_a_day_and_a_week_after_the_decision():
    assert OFFSETS == [DAY, WEEK]


def test_no_check_is_due_before_the_first_offset_and_the_first_is_due_from_then():
    assert due_check(decided(), OFFSETS, 0, later(DAY - 1)) is None
    assert due_check(decided(), OFFSETS, 0, later(DAY)) == 1


def test_the_second_check_is_due_once_the_first_is_recorded_and_the_second_offset_has_passed():
    assert due_check(decided(), OFFSETS, 1, later(2 * DAY)) is None
    assert due_check(decided(), OFFSETS, 1, later(WEEK)) == 2


def test_no_check_is_due_once_every_configured_check_is_recorded():
    assert due_check(decided(), OFFSETS, 2, later(100 * WEEK)) is None


def test_checks_missed_while_the_service_was_down_are_made_late_one_at_a_time():
    assert due_check(decided(), OFFSETS, 0, later(2 * WEEK)) == 1
    assert due_check(decided(), OFFSETS, 1, later(2 * WEEK)) == 2


def test_restricted_content_is_checked_too():
    assert due_check(decided("restricted"), OFFSETS, 0, later(DAY)) == 1


@pytest.mark.parametrize("state", [decided("rejected"), decided(status="reopened"), decided(status="closed"),
                                   {**decided(), "canonical_url": None}, {**decided(), "decided_at": None}],
                         ids=["rejected", "reopened", "closed", "no canonical URL", "no decision time"])
def test_nothing_is_checked_unless_the_referral_is_decided_removed_or_restricted(state):
    assert due_check(state, OFFSETS, 0, later(WEEK)) is None


def test_a_check_has_the_same_event_id_whoever_makes_it_and_whatever_it_finds():
    first = check_event(RID, URL, DECIDED, 1, False, later(DAY))
    again = check_event(RID, URL, DECIDED, 1, True, later(DAY + 60))
    assert first.id == again.id
    assert check_event(RID, URL, DECIDED, 2, False, later(WEEK)).id != first.id
    assert check_event(RID, URL, later(3 * WEEK), 1, False, later(4 * WEEK)).id != first.id


def test_content_found_gone_is_recorded_as_still_down_and_content_found_up_as_reappeared():
    down = check_event(RID, URL, DECIDED, 1, False, later(DAY))
    up = check_event(RID, URL, DECIDED, 2, True, later(WEEK))
    assert (down.type, up.type) == ("content.still_down", "content.reappeared")
    assert (up.data.url, up.data.checked_at, up.time) == (URL, later(WEEK), later(WEEK))
    assert (up.actor, up.source) == ("service:outcomes", "/takedown/outcomes")


def test_a_reappearance_reopens_the_referral_and_marks_its_content_reachable():
    data = ReferralSubmitted(referral_id=RID, agency="NCA", url=URL, canonical_url=URL, platform=Platform.facebook,
                             category=Category.fraud, submitted_at=DECIDED - timedelta(hours=2))
    events = [
        Event(source="/t", actor="agency:NCA", time=DECIDED - timedelta(hours=2), data=data),
        Event(source="/t", actor="service:dispatcher", time=DECIDED - timedelta(hours=1),
              data=ReferralDispatched(referral_id=RID, platform=Platform.facebook, adapter="meta", ticket_id="FB-1")),
        Event(source="/t", actor="platform:facebook", time=DECIDED,
              data=TakedownDecided(referral_id=RID, platform=Platform.facebook, ticket_id="FB-1",
                                   outcome=Outcome.removed, decision_visibility=[Visibility.content_removed])),
        check_event(RID, URL, DECIDED, 1, False, later(DAY)),
    ]
    still_down = project(events)
    reopened = project([*events, check_event(RID, URL, DECIDED, 2, True, later(WEEK))])
    assert (still_down["status"], still_down["reachable"]) == ("decided", False)
    assert (reopened["status"], reopened["reachable"]) == ("reopened", True)
    assert due_check(reopened, OFFSETS, 2, later(WEEK)) is None


def test_checks_must_be_configured_in_increasing_order():
    assert OutcomesSettings(stays_down_checks_s=[0.5, 1.0]).stays_down_checks_s == [0.5, 1.0]
    with pytest.raises(ValidationError):
        OutcomesSettings(stays_down_checks_s=[1.0, 0.5])


def test_the_check_url_is_the_url_itself_by_default_and_percent_encoded_into_a_template():
    assert check_url("{url}", URL) == URL
    assert check_url("http://127.0.0.1:8090/content?url={url}", URL) == \
        "http://127.0.0.1:8090/content?url=https%3A%2F%2Ffacebook.com%2Fgroups%2F123%3Fpost%3D9"


def test_checks_and_the_check_url_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("STAYS_DOWN_CHECKS_S", "[0.5, 1.0, 3]")
    monkeypatch.setenv("CONTENT_CHECK_URL", "http://127.0.0.1:8090/content?url={url}")
    settings = OutcomesSettings()
    assert settings.stays_down_checks_s == [0.5, 1.0, 3.0]
    assert check_url(settings.content_check_url, "https://x.com/a") == "http://127.0.0.1:8090/content?url=https%3A%2F%2Fx.com%2Fa"


def test_a_failed_check_waits_before_it_is_tried_again_and_about_twice_as_long_after_each_further_failure():
    retries, check = Retries(base_s=60, cap_s=3600), uuid4()
    assert retries.ready(check, 0)

    first = retries.failed(check, 0)
    second = retries.failed(check, first)
    third = retries.failed(check, first + second)

    assert 30 <= first <= 60 and 60 <= second <= 120 and 120 <= third <= 240  # jittered, never below half
    assert not retries.ready(check, first + second + third - 0.001)
    assert retries.ready(check, first + second + third)


def test_a_failing_check_never_waits_longer_than_the_cap_and_other_checks_do_not_wait_for_it():
    retries, check = Retries(base_s=60, cap_s=3600), uuid4()

    delays = [retries.failed(check, 0) for _ in range(20)]

    assert max(delays) <= 3600 and delays[-1] >= 1800
    assert retries.ready(uuid4(), 0)


def test_a_refused_check_waits_the_longest_delay_at_once():
    retries, check = Retries(base_s=60, cap_s=3600), uuid4()

    assert retries.failed(check, 100, refused=True) == 3600
    assert not retries.ready(check, 3699) and retries.ready(check, 3700)


def test_a_check_that_succeeds_is_forgotten_so_a_later_failure_starts_from_the_shortest_delay():
    retries, check = Retries(base_s=60, cap_s=3600), uuid4()
    for _ in range(5):
        retries.failed(check, 0)

    retries.succeeded(check)

    assert retries.ready(check, 0) and retries.failed(check, 0) <= 60


def test_failing_checks_remembered_are_bounded_and_the_longest_quiet_is_forgotten_first():
    retries, checks = Retries(base_s=60, cap_s=3600, remembered=2), [uuid4(), uuid4(), uuid4()]
    for check in checks:
        retries.failed(check, 0)

    assert [retries.ready(check, 1) for check in checks] == [True, False, False]


def test_the_allow_list_is_read_from_the_environment_comma_separated(monkeypatch):
    monkeypatch.setenv("FETCH_ALLOW", "127.0.0.1:8090, sandbox:8090")
    settings = OutcomesSettings()

    assert settings.fetch_allow == ["127.0.0.1:8090", "sandbox:8090"]
    assert settings.fetch_settings().allow == {("127.0.0.1", 8090), ("sandbox", 8090)}
    assert OutcomesSettings(fetch_allow=[]).fetch_settings().allow == frozenset()


def test_a_bad_allow_list_entry_fails_at_start_not_at_the_first_check(monkeypatch):
    monkeypatch.setenv("FETCH_ALLOW", "127.0.0.1")
    with pytest.raises(ValidationError, match="is not host:port"):
        OutcomesSettings()
