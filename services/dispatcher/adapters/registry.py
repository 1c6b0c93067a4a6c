"""Looks adapters up by slug and by the platform they serve."""

from services.dispatcher.adapters.base import PlatformAdapter
from shared.events import Platform


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

    def __iter__(self):
        return iter(self._by_slug.values())
