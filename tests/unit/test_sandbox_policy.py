"""The sandbox's decision policy: parsing, validation and each report's deterministic fate."""

from collections import Counter

import pytest
from pydantic import ValidationError

from services.sandbox.config import SandboxSettings
from services.sandbox.domain import (InvalidPolicy, choose_outcome, fraction, parse_policy,
                                     reason_for)

DEFAULT = "removed=0.48,rejected=0.40,none=0.12"


def test_the_default_policy_parses_into_its_weights():
    assert parse_policy(DEFAULT) == pytest.approx({"removed": 0.48, "rejected": 0.40, "none": 0.12})


def test_weights_are_relative_and_normalised_to_sum_to_one():
    assert parse_policy("removed=3, restricted=1") == pytest.approx({"removed": 0.75, "restricted": 0.25})


def test_spaces_and_upper_case_names_are_tolerated():
    assert parse_policy(" Removed = 1 ") == {"removed": 1.0}


@pytest.mark.parametrize(("text", "message"), [
    ("", "not outcome=weight"),
    ("removed", "not outcome=weight"),
    ("=1", "not outcome=weight"),
    ("deleted=1", "unknown outcome 'deleted'"),
    ("removed=lots", "not a number"),
    ("removed=-0.1,none=1", "must be a finite number >= 0"),
    ("removed=nan", "must be a finite number >= 0"),
    ("removed=inf", "must be a finite number >= 0"),
    ("removed=0.5,removed=0.5", "appears twice"),
    ("removed=0,none=0", "above 0"),
    ("removed=1,", "not outcome=weight"),
])
def test_an_invalid_policy_is_refused_with_the_reason(text, message):
    with pytest.raises(InvalidPolicy, match=message):
        parse_policy(text)


def test_settings_refuse_an_invalid_policy_at_load(monkeypatch):
    monkeypatch.setenv("SANDBOX_POLICY", "removed=0.5,banned=0.5")
    with pytest.raises(ValidationError, match="unknown outcome 'banned'"):
        SandboxSettings()


def test_settings_read_the_sandbox_variables_from_the_environment(monkeypatch):
    monkeypatch.setenv("SANDBOX_POLICY", "restricted=1")
    monkeypatch.setenv("SANDBOX_PORT", "9099")
    monkeypatch.setenv("SANDBOX_DECISION_DELAY_S", "0.05")
    monkeypatch.setenv("SANDBOX_SEED", "replay")
    settings = SandboxSettings()
    assert (settings.sandbox_policy, settings.sandbox_port) == ("restricted=1", 9099)
    assert (settings.sandbox_decision_delay_s, settings.sandbox_seed) == (0.05, "replay")


def test_the_draw_lies_in_the_unit_interval_and_is_stable():
    draws = [fraction("takedown", f"ref-{i}") for i in range(1000)]
    assert all(0 <= d < 1 for d in draws)
    assert draws == [fraction("takedown", f"ref-{i}") for i in range(1000)]


def test_a_replayed_reference_gets_the_same_outcome():
    policy = parse_policy(DEFAULT)
    for i in range(500):
        first = choose_outcome(policy, "takedown", f"ref-{i}")
        assert choose_outcome(policy, "takedown", f"ref-{i}") == first


def test_another_seed_gives_other_fates():
    policy = parse_policy(DEFAULT)
    refs = [f"ref-{i}" for i in range(500)]
    one = [choose_outcome(policy, "takedown", r) for r in refs]
    other = [choose_outcome(policy, "another seed", r) for r in refs]
    assert one != other


def test_the_order_of_the_policy_string_does_not_change_any_fate():
    a = parse_policy("removed=0.48,rejected=0.40,none=0.12")
    b = parse_policy("none=0.12,rejected=0.40,removed=0.48")
    assert all(choose_outcome(a, "s", f"r{i}") == choose_outcome(b, "s", f"r{i}") for i in range(500))


def test_over_ten_thousand_references_the_shares_match_the_weights():
    policy = parse_policy("removed=0.4,restricted=0.1,rejected=0.3,none=0.2")
    counts = Counter(choose_outcome(policy, "takedown", f"referral-{i}") for i in range(10_000))
    for outcome, weight in policy.items():
        assert counts[outcome] / 10_000 == pytest.approx(weight, abs=0.02), outcome


def test_a_policy_of_removed_only_always_removes():
    policy = parse_policy("removed=1")
    assert {choose_outcome(policy, "takedown", f"r{i}") for i in range(2000)} == {"removed"}


def test_an_outcome_of_weight_zero_is_never_chosen():
    policy = parse_policy("removed=1,rejected=0")
    assert {choose_outcome(policy, "takedown", f"r{i}") for i in range(2000)} == {"removed"}


def test_only_a_rejection_carries_a_reason():
    assert reason_for("rejected") == "no_violation"
    assert reason_for("removed") is None
    assert reason_for("restricted") is None
