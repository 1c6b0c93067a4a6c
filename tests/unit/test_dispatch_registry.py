"""The dispatcher's adapter registry."""

import pytest

from services.dispatcher.adapters.registry import AdapterRegistry, UnknownPlatform, build_registry, parse_platforms
from services.dispatcher.config import DispatcherSettings
from shared.events import Platform
from tests.fakes import FakeAdapter

# --- AdapterRegistry -------------------------------------------------------------------------


def test_the_registry_finds_the_adapter_serving_a_platform():
    registry = AdapterRegistry()
    meta = FakeAdapter("meta", (Platform.facebook, Platform.instagram))
    tube = FakeAdapter("tube", (Platform.youtube,))
    registry.register(meta)
    registry.register(tube)

    assert registry.for_platform(Platform.instagram) is meta
    assert registry.for_platform(Platform.youtube) is tube
    assert registry.by_slug("meta") is meta
    assert list(registry) == [meta, tube]


def test_a_platform_served_by_two_adapters_is_a_configuration_error():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("first", (Platform.x,)))

    with pytest.raises(ValueError, match="already served by first"):
        registry.register(FakeAdapter("second", (Platform.x,)))


def test_an_adapter_slug_registered_twice_is_a_configuration_error():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("same", (Platform.x,)))

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(FakeAdapter("same", (Platform.tiktok,)))


def test_a_refused_adapter_leaves_the_registry_as_it_was():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("tube", (Platform.youtube,)))

    with pytest.raises(ValueError):
        registry.register(FakeAdapter("greedy", (Platform.facebook, Platform.youtube)))

    with pytest.raises(UnknownPlatform):
        registry.for_platform(Platform.facebook)
    assert [a.slug for a in registry] == ["tube"]


def test_a_platform_nobody_serves_raises_unknown_platform():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("tube", (Platform.youtube,)))

    with pytest.raises(UnknownPlatform, match="telegram"):
        registry.for_platform(Platform.telegram)


def test_the_platforms_an_adapter_serves_can_be_set_from_the_environment(monkeypatch):
    monkeypatch.setenv("ADAPTERS__EMAIL__PLATFORMS", '["other"]')
    monkeypatch.setenv("ADAPTERS__WEBHOOK__ENABLED", "false")
    registry = build_registry(DispatcherSettings().adapter_settings)

    assert registry.for_platform(Platform.other).slug == "email"
    assert registry.for_platform(Platform.facebook).slug == "meta"


def test_a_comma_separated_platforms_setting_is_a_list():
    assert parse_platforms("other, telegram") == ["other", "telegram"]
    assert parse_platforms(["x"]) == ["x"] and parse_platforms(None) is None


def test_an_environment_variable_changes_one_nested_setting_and_keeps_the_files_others(monkeypatch, tmp_path):
    adapters = tmp_path / "adapters.yaml"
    adapters.write_text("meta:\n  rate_limit: {per_second: 5, burst: 50}\n")
    monkeypatch.setenv("ADAPTERS__META__RATE_LIMIT__PER_SECOND", "2")

    settings = DispatcherSettings(adapters_file=adapters).adapter_settings("meta")

    assert settings["rate_limit"] == {"per_second": 2, "burst": 50}
