"""Dispatcher's settings, from the environment (and an optional adapters file)."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import OutboxSettings

# Where the sandbox serves an adapter's dialect, below SANDBOX_URL (docs/platform-apis.md).
SANDBOX_PATHS = {"webhook": "/platforms/other"}


class DispatcherSettings(OutboxSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_nested_delimiter="__")

    dispatcher_host: str = "127.0.0.1"
    dispatcher_port: int = 8002
    dispatcher_callback_base_url: str = Field(
        "http://127.0.0.1:8002", description="Base URL platforms call back with decisions."
    )
    sandbox_url: str = Field(
        "http://127.0.0.1:8090", description="Default base URL of every platform API (the sandbox)."
    )
    adapters_file: Path | None = Field(None, description="YAML: adapter slug -> its settings.")
    adapters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-adapter settings from the environment, e.g. ADAPTERS__META__CLIENT_SECRET."
    )
    delivery_attempts: int = Field(6, ge=1, description="Attempts per report before it is dead-lettered.")
    delivery_backoff_base_s: float = Field(1.0, gt=0, description="First retry delay; doubles, with jitter.")
    delivery_backoff_cap_s: float = Field(120.0, gt=0)
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open a platform's circuit.")
    breaker_reset_s: float = Field(5.0, gt=0, description="First cool-down of an open circuit; doubles per failed probe.")
    breaker_max_reset_s: float = Field(60.0, gt=0)
    limit_lease_s: float = Field(
        0.2, gt=0, le=5, description="A lane leases its platform's shared rate limit in blocks of what it will send in "
        "this long; a leased token not sent within it lapses (in any t seconds all processes together send at most "
        "rate * (t + this) + burst).")
    limit_sync_s: float = Field(
        1.0, gt=0, description="How often each dispatcher process reads the circuits and Retry-Afters the others "
        "shared (a lease reads them too).")
    lane_batch: int = Field(64, ge=1, description="Most records a lane takes from Kafka at once.")
    poll_tick_s: float = Field(1.0, gt=0, description="How often due tickets are looked for.")
    webhook_poll_after_s: float = Field(
        600.0, gt=0, description="A ticket of a platform that calls back (and has a status API) with no decision this "
        "long after the report is polled from then on, so that a callback the platform gave up on is not lost.")
    poll_interval_s: float | None = Field(
        None, gt=0, description="Every polling adapter's interval unless set per adapter (development: short).")

    def adapter_settings(self, slug: str) -> dict[str, Any]:
        """One adapter's settings: defaults, then the adapters file, then the environment."""
        from_file = {}
        if self.adapters_file is not None:
            from_file = (yaml.safe_load(self.adapters_file.read_text()) or {}).get(slug, {})
        defaults = {"base_url": self.sandbox_url.rstrip("/") + SANDBOX_PATHS.get(slug, ""),
                    "callback_base_url": self.dispatcher_callback_base_url}
        if self.poll_interval_s is not None:
            defaults["poll_interval_s"] = self.poll_interval_s
        return deep_merge(deep_merge(defaults, from_file), self.adapters.get(slug, {}))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """base with over laid on top, nested settings merged key by key (rate_limit.burst survives
    an environment variable that sets only rate_limit.per_second)."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged
