"""Looks adapters up by slug and by the platform they serve."""

import json
import logging

from services.dispatcher.adapters import CATALOGUE, load
from services.dispatcher.adapters.base import PlatformAdapter
from shared.events import Platform

log = logging.getLogger(__name__)


class UnknownPlatform(LookupError):
    """No adapter is registered for a platform."""


class AdapterRegistry:
    def __init__(self) -> None:
        self._by_slug: dict[str, PlatformAdapter] = {}
        self._by_platform: dict[Platform, PlatformAdapter] = {}

    def register(self, adapter: PlatformAdapter) -> None:
        """Add an adapter; a platform served by two adapters is a configuration error."""
        if adapter.slug in self._by_slug:
            raise ValueError(f"adapter {adapter.slug!r} registered twice")
        for platform in adapter.platforms:
            if platform in self._by_platform:
                raise ValueError(f"platform {platform} already served by {self._by_platform[platform].slug}")
        for platform in adapter.platforms:
            self._by_platform[platform] = adapter
        self._by_slug[adapter.slug] = adapter

    def for_platform(self, platform: Platform) -> PlatformAdapter:
        try:
            return self._by_platform[platform]
        except KeyError:
            raise UnknownPlatform(f"no adapter delivers to {platform}") from None

    def by_slug(self, slug: str) -> PlatformAdapter:
        return self._by_slug[slug]

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return tuple(self._by_platform)

    def __iter__(self):
        return iter(self._by_slug.values())


def build_registry(settings_for) -> AdapterRegistry:
    """Every catalogued adapter, configured by settings_for(slug); `enabled: false` leaves one out.

    A `platforms` setting overrides the platforms an adapter serves (e.g. route `other` to e-mail).
    """
    registry = AdapterRegistry()
    for slug in CATALOGUE:
        raw = dict(settings_for(slug))
        if str(raw.pop("enabled", True)).lower() in ("false", "0", "no"):
            continue
        platforms = parse_platforms(raw.pop("platforms", None))
        cls = load(slug)
        chosen = tuple(Platform(p) for p in platforms) if platforms is not None else None
        adapter = cls(cls.Config.model_validate(raw), platforms=chosen)
        if adapter.platforms:
            registry.register(adapter)
            log.info("adapter %s serves %s", slug, ", ".join(p.value for p in adapter.platforms))
    return registry


def parse_platforms(value) -> list[str] | None:
    """A platforms setting as a list: from YAML it is one; from the environment it is text,
    a JSON list ('["other"]') or comma-separated ('other,telegram')."""
    if value is None or isinstance(value, list | tuple):
        return value
    text = str(value).strip()
    if text.startswith("["):
        return [str(p) for p in json.loads(text)]
    return [p.strip() for p in text.split(",") if p.strip()]
