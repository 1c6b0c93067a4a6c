"""Persona files: the shipped defaults, how entries lay over `default`, and the errors for bad files."""

from collections import Counter

import pytest
import yaml

from services.sandbox.app import effective_personas
from services.sandbox.config import SandboxSettings
from services.sandbox.domain import choose_outcome, parse_policy
from services.sandbox.personas import (DEFAULT_PERSONAS, Persona, PersonaError, describe, load_personas,
                                       parse_personas, with_overrides)
from shared.events import Platform

PLATFORMS = set(Platform)


@pytest.fixture(scope="module")
def shipped():
    return load_personas()


def test_the_shipped_file_is_package_data_next_to_the_sandbox():
    assert DEFAULT_PERSONAS.name == "personas.yaml" and DEFAULT_PERSONAS.parent.name == "sandbox"
    data = yaml.safe_load(DEFAULT_PERSONAS.read_text())
    assert set(data) == {"default", *(p.value for p in Platform)}


def test_the_shipped_personas_cover_every_platform(shipped):
    assert set(shipped) == PLATFORMS
    assert all(isinstance(persona, Persona) for persona in shipped.values())


@pytest.mark.parametrize("platform", [Platform.facebook, Platform.youtube])
def test_the_shipped_facebook_and_youtube_reproduce_the_nca_2020_shares_over_ten_thousand_references(
        shipped, platform):
    counts = Counter(choose_outcome(shipped[platform].decisions, "takedown", f"referral-{i}") for i in range(10_000))
    shares = {outcome: counts[outcome] / 10_000 for outcome in ("removed", "rejected", "none")}
    assert shares == pytest.approx({"removed": 0.48, "rejected": 0.40, "none": 0.12}, abs=0.02)
    assert sum(counts.values()) == counts["removed"] + counts["rejected"] + counts["none"]


def test_the_shipped_personas_keep_development_and_tests_fast_and_deterministic(shipped):
    for platform, persona in shipped.items():
        assert persona.latency_ms.mean + persona.latency_ms.jitter <= 10, platform
        assert persona.error_rate == 0, platform
        assert persona.outages == (), platform
        assert persona.rate_limit is None or persona.rate_limit.per_second >= 500, platform
        assert persona.rate_limit is None or persona.rate_limit.burst >= 500, platform


def test_the_other_shipped_platforms_have_profiles_of_their_own(shipped):
    facebook, x, tiktok, telegram = (shipped[p] for p in (Platform.facebook, Platform.x, Platform.tiktok,
                                                            Platform.telegram))
    assert shipped[Platform.instagram].decisions == facebook.decisions
    assert x.decision_delay_s > facebook.decision_delay_s
    assert x.decisions["rejected"] > facebook.decisions["rejected"]
    assert x.latency_ms.mean > facebook.latency_ms.mean
    assert tiktok.decision_delay_s == 0
    assert telegram.decisions["none"] > 0.5


def test_an_entry_lays_over_the_default_key_by_key():
    personas = parse_personas({
        "default": {"error_rate": 0.1, "decision_delay_s": 2, "decisions": {"removed": 1, "none": 1}},
        "x": {"decision_delay_s": 5, "decisions": {"rejected": 1}},
    })
    x, facebook = personas[Platform.x], personas[Platform.facebook]
    assert (x.error_rate, x.decision_delay_s, x.decisions) == (0.1, 5, {"rejected": 1.0})
    assert (facebook.error_rate, facebook.decision_delay_s, facebook.decisions) == (
        0.1, 2, {"removed": 0.5, "none": 0.5})


def test_platforms_left_out_and_an_empty_file_get_the_built_in_persona():
    assert parse_personas({}) == parse_personas(None) == {p: Persona() for p in Platform}
    assert Persona().decisions == {"removed": 0.48, "rejected": 0.40, "none": 0.12}
    assert Persona().rate_limit is None and Persona().outages == ()


def test_a_persona_reads_every_setting_of_the_schema():
    persona = parse_personas({"telegram": {
        "latency_ms": {"mean": 40, "jitter": 10}, "error_rate": 0.05,
        "rate_limit": {"per_second": 2, "burst": 5, "retry_after_s": 7},
        "outages": [{"start_s": 10, "end_s": 20}, {"start_s": 60, "end_s": 61.5}],
        "decision_delay_s": 3, "decisions": {"information_request": 1, "content_not_found": 3},
    }})[Platform.telegram]
    assert (persona.latency_ms.mean, persona.latency_ms.jitter, persona.error_rate) == (40, 10, 0.05)
    assert (persona.rate_limit.per_second, persona.rate_limit.burst, persona.rate_limit.retry_after_s) == (2, 5, 7)
    assert [(w.start_s, w.end_s) for w in persona.outages] == [(10, 20), (60, 61.5)]
    assert persona.decisions == {"content_not_found": 0.75, "information_request": 0.25}


@pytest.mark.parametrize(("data", "message"), [
    ({"myspace": {}}, "unknown platform 'myspace'"),
    ({"Facebook": {}}, "unknown platform 'Facebook'"),
    ({"defaults": {}}, "unknown platform 'defaults'"),
    (["facebook"], "must map platform names to personas"),
    ({"x": "fast"}, "x: must be a mapping"),
    ({"x": {"decisions": {"deleted": 1}}}, "x: decisions: unknown outcome 'deleted'"),
    ({"x": {"decisions": {"removed": -1}}}, "x: decisions: weight of 'removed' must be a finite number >= 0"),
    ({"x": {"decisions": {"removed": 0, "none": 0}}}, "x: decisions: at least one outcome needs a weight above 0"),
    ({"x": {"decisions": {"removed": "most"}}}, "x: decisions: weight of 'removed' is not a number"),
    ({"x": {"decisions": {}}}, "x: decisions: weights must be a non-empty mapping"),
    ({"default": {"decisions": {"banned": 1}}}, "default: decisions: unknown outcome 'banned'"),
    ({"tiktok": {"error_rate": 1.5}}, "tiktok: error_rate"),
    ({"tiktok": {"decision_delay_s": -1}}, "tiktok: decision_delay_s"),
    ({"tiktok": {"latency_ms": {"mean": -5}}}, "tiktok: latency_ms.mean"),
    ({"tiktok": {"rate_limit": {"per_second": 0, "burst": 1}}}, "tiktok: rate_limit.per_second"),
    ({"tiktok": {"rate_limit": {"per_second": 1}}}, "tiktok: rate_limit.burst"),
    ({"tiktok": {"outages": [{"start_s": 30, "end_s": 10}]}}, "must end after it starts"),
    ({"tiktok": {"latency": 5}}, "tiktok: latency: Extra inputs are not permitted"),
])
def test_an_invalid_persona_file_is_refused_with_the_platform_and_the_reason(data, message):
    with pytest.raises(PersonaError, match=message):
        parse_personas(data, "test.yaml")


def test_a_missing_or_malformed_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(PersonaError, match="nothing.yaml: cannot be read"):
        load_personas(tmp_path / "nothing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("x: {decisions: [\n")
    with pytest.raises(PersonaError, match="broken.yaml: is not valid YAML"):
        load_personas(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("myspace: {}\n")
    with pytest.raises(PersonaError, match=r"wrong.yaml: unknown platform 'myspace'; allowed: default, facebook"):
        load_personas(wrong)


def test_overrides_impose_one_decision_mix_and_delay_on_every_platform_and_keep_the_rest(shipped):
    overridden = with_overrides(shipped, parse_policy("removed=1"), 0.2)
    for platform, persona in overridden.items():
        assert (persona.decisions, persona.decision_delay_s) == ({"removed": 1.0}, 0.2)
        assert persona.latency_ms == shipped[platform].latency_ms
    assert with_overrides(shipped) == shipped


def test_the_settings_pick_the_persona_file_and_the_overrides(tmp_path):
    path = tmp_path / "personas.yaml"
    path.write_text("default: {decision_delay_s: 9}\nx: {decisions: {rejected: 1}}\n")
    mine = effective_personas(SandboxSettings(sandbox_personas=path, sandbox_policy=None,
                                              sandbox_decision_delay_s=None))
    assert (mine[Platform.x].decisions, mine[Platform.x].decision_delay_s) == ({"rejected": 1.0}, 9)
    overridden = effective_personas(SandboxSettings(sandbox_personas=path, sandbox_policy="none=1",
                                                    sandbox_decision_delay_s=0))
    assert (overridden[Platform.x].decisions, overridden[Platform.x].decision_delay_s) == ({"none": 1.0}, 0)


def test_the_personas_describe_themselves_as_json_ready_data(shipped):
    described = describe(shipped)
    assert set(described) == {p.value for p in Platform}
    assert set(described["x"]) == {"latency_ms", "error_rate", "rate_limit", "outages", "decision_delay_s",
                                   "decisions", "drop_callbacks"}
    assert described["facebook"]["outages"] == []
