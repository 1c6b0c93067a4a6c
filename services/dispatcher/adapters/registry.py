"""Looks adapters up by slug and by the platform they serve."""

import json
import logging
from urllib.parse import urlsplit

from pydantic import SecretStr

from services.dispatcher.adapters import CATALOGUE, load
from services.dispatcher.adapters.base import AdapterConfig, PlatformAdapter
from shared.events import Platform

log = logging.getLogger(__name__)


class UnknownPlatform(LookupError):
    """No adapter is registered for a platform."""


class SandboxSecretOutsideSandbox(ValueError):
    """An adapter talks to a real platform with a secret shipped for the sandbox: start-up is refused."""


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


# -- no sandbox secret outside the sandbox --------------------------------------------------------------

def refuse_sandbox_secrets(registry: AdapterRegistry, sandbox_url: str) -> None:
    """Raise SandboxSecretOutsideSandbox naming every adapter whose base_url is not under sandbox_url
    and which still holds a secret's shipped default (the sandbox's, which anyone can read)."""
    problems = [problem for adapter in registry for problem in sandbox_secrets_in(adapter.slug, adapter.config,
                                                                                   sandbox_url)]
    if problems:
        raise SandboxSecretOutsideSandbox("refusing to start: " + "; ".join(problems))


def sandbox_secrets_in(slug: str, config: AdapterConfig, sandbox_url: str) -> list[str]:
    """Why config may not be used: each secret left at its sandbox default while base_url is elsewhere."""
    if is_under(config.base_url, sandbox_url):
        return []
    url = without_credentials(config.base_url)
    return [f"adapter {slug}: {name} is the sandbox's default but base_url {url} is not the sandbox "
            f"({without_credentials(sandbox_url)}); set ADAPTERS__{slug.upper()}__{name.upper()}"
            for name, field in type(config).model_fields.items()
            if isinstance(field.default, SecretStr) and getattr(config, name) == field.default]


def is_under(url: str, root: str) -> bool:
    """Whether url is root or below it: same scheme, host and port, and a path under root's."""
    u, r = urlsplit(url.strip()), urlsplit(root.strip())
    ports = {"http": 80, "https": 443}
    try:
        same_origin = (u.scheme.lower(), u.hostname, u.port or ports.get(u.scheme.lower())) == (
            r.scheme.lower(), r.hostname, r.port or ports.get(r.scheme.lower()))
    except ValueError:  # a port that is not a number: not the sandbox's
        return False
    return same_origin and (u.path.rstrip("/") + "/").startswith(r.path.rstrip("/") + "/")


def without_credentials(url: str) -> str:
    """url without any user:password@ in it, for messages."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
