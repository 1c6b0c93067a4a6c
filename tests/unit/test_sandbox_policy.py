"""The sandbox's decision policy: parsing, validation, settings and each report's deterministic fate."""

from collections import Counter

import pytest
from pydantic import ValidationError

from services.sandbox.config import SandboxSettings
from services.sandbox.domain import (OUTCOMES, InvalidPolicy, choose_outcome, fraction, parse_policy,
                                     parse_weights)

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
    ("deleted=1,removed=1", "unknown outcome 'deleted'"),
])
def test_an_invalid_policy_is_refused_with_the_reason(text, message):
    with pytest.raises(InvalidPolicy, match=message):
        parse_policy(text)


def test_every_named_outcome_of_a_persona_may_be_weighted():
    policy = parse_policy(",".join(f"{name}=1" for name in OUTCOMES))
    assert set(policy) == {"removed", "restricted", "account_suspended", "rejected", "insufficient_information",
                           "content_not_found", "information_request", "none"}
    assert sum(policy.values()) == pytest.approx(1)


def test_weights_may_come_as_a_mapping_of_numbers():
    assert parse_weights({"removed": 2, "information_request": 2.0}) == {"removed": 0.5, "information_request": 0.5}


@pytest.mark.parametrize(("weights", "message"), [
    ({}, "non-empty mapping"),
    ([("removed", 1)], "non-empty mapping"),
    ({"removed": True}, "not a number"),
    ({"removed": None}, "not a number"),
    ({"removed": "lots"}, "not a number"),
    ({"removed": -1}, "finite number >= 0"),
    ({"banned": 1}, "unknown outcome 'banned'"),
    ({"removed": 0}, "above 0"),
])
def test_invalid_weights_are_refused_with_the_reason(weights, message):
    with pytest.raises(InvalidPolicy, match=message):
        parse_weights(weights)


def test_settings_refuse_an_invalid_policy_at_load(monkeypatch):
    monkeypatch.setenv("SANDBOX_POLICY", "removed=0.5,banned=0.5")
    with pytest.raises(ValidationError, match="unknown outcome 'banned'"):
        SandboxSettings()


def test_settings_read_the_sandbox_variables_from_the_environment(monkeypatch, tmp_path):
    personas = tmp_path / "personas.yaml"
    personas.write_text("default: {decision_delay_s: 1}\n")
    monkeypatch.setenv("SANDBOX_POLICY", "restricted=1")
    monkeypatch.setenv("SANDBOX_PORT", "9099")
    monkeypatch.setenv("SANDBOX_DECISION_DELAY_S", "0.05")
    monkeypatch.setenv("SANDBOX_SEED", "replay")
    monkeypatch.setenv("SANDBOX_PERSONAS", str(personas))
    monkeypatch.setenv("SANDBOX_WEBHOOK_SECRET", "whsec_czNjcmV0LXMzY3JldC1zM2NyZXQ=")
    settings = SandboxSettings()
    assert (settings.sandbox_policy, settings.sandbox_port) == ("restricted=1", 9099)
    assert (settings.sandbox_decision_delay_s, settings.sandbox_seed) == (0.05, "replay")
    assert (settings.sandbox_personas, settings.sandbox_webhook_secret) == (personas,
                                                                           "whsec_czNjcmV0LXMzY3JldC1zM2NyZXQ=")


def test_without_policy_or_delay_in_the_environment_the_personas_decide(monkeypatch):
    for name in ("SANDBOX_POLICY", "SANDBOX_DECISION_DELAY_S", "SANDBOX_PERSONAS"):
        monkeypatch.delenv(name, raising=False)
    settings = SandboxSettings(_env_file=None)
    assert (settings.sandbox_policy, settings.sandbox_decision_delay_s, settings.sandbox_personas) == (
        None, None, None)


def test_an_empty_policy_or_delay_variable_means_not_set(monkeypatch):
    monkeypatch.setenv("SANDBOX_POLICY", "")
    monkeypatch.setenv("SANDBOX_DECISION_DELAY_S", " ")
    settings = SandboxSettings()
    assert (settings.sandbox_policy, settings.sandbox_decision_delay_s) == (None, None)


def test_the_credentials_default_to_those_of_the_contract(monkeypatch):
    for name in ("META_CLIENT_ID", "META_CLIENT_SECRET", "META_APP_SECRET", "X_CLIENT_ID", "X_CLIENT_SECRET",
                 "X_CONSUMER_SECRET", "YOUTUBE_API_KEY", "TIKTOK_API_KEY", "WEBHOOK_SECRET"):
        monkeypatch.delenv(f"SANDBOX_{name}", raising=False)
    settings = SandboxSettings(_env_file=None)
    assert (settings.sandbox_meta_client_id, settings.sandbox_meta_client_secret,
            settings.sandbox_meta_app_secret) == ("sandbox-meta", "sandbox-meta-secret", "sandbox-meta-app-secret")
    assert (settings.sandbox_x_client_id, settings.sandbox_x_client_secret,
            settings.sandbox_x_consumer_secret) == ("sandbox-x", "sandbox-x-secret", "sandbox-x-consumer-secret")
    assert (settings.sandbox_youtube_api_key, settings.sandbox_tiktok_api_key,
            settings.sandbox_webhook_secret) == ("sandbox-youtube-key", "sandbox-tiktok-key",
                                                 "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA==")


def test_settings_refuse_a_webhook_secret_that_is_not_whsec_without_repeating_it(monkeypatch):
    monkeypatch.setenv("SANDBOX_WEBHOOK_SECRET", "hunter2-hunter2-hunter2")
    with pytest.raises(ValidationError, match="starts with 'whsec_'") as refused:
        SandboxSettings(_env_file=None)
    assert "hunter2" not in str(refused.value)


def test_settings_refuse_a_persona_file_that_does_not_load(monkeypatch, tmp_path):
    bad = tmp_path / "personas.yaml"
    bad.write_text("myspace: {}\n")
    monkeypatch.setenv("SANDBOX_PERSONAS", str(bad))
    with pytest.raises(ValidationError, match="unknown platform 'myspace'"):
        SandboxSettings()


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


def test_the_original_outcomes_keep_their_fates_now_that_there_are_more():
    # The four outcomes of the first sandbox keep their relative order in OUTCOMES, so a policy
    # over them gives every reference the fate it had before.
    legacy = ("removed", "restricted", "rejected", "none")
    assert [o for o in OUTCOMES if o in legacy] == list(legacy)
