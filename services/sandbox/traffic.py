"""How each platform's API treats traffic: outages, rate limits, latency and injected errors.

Plain state over an injected clock and random source, so it is testable without sleeping.
An outage is of one kind: `unavailable` (503 with Retry-After, as persona windows are), `error`
(500, no Retry-After) or `timeout` (each request is held `hang_s` before it is served, so a client
with a shorter timeout gives up on a report the platform then takes).
"""

import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Literal

from services.sandbox.personas import Persona, RateLimit
from shared.events import Platform

Clock = Callable[[], float]
OutageKind = Literal["unavailable", "error", "timeout"]


class TokenBucket:
    """Holds up to burst tokens, refilled at per_second; each request takes one."""

    def __init__(self, limit: RateLimit, clock: Clock):
        self.limit, self.clock = limit, clock
        self.tokens, self.last = float(limit.burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.limit.burst, self.tokens + (now - self.last) * self.limit.per_second)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Traffic:
    """Per-platform outages (persona windows and admin ones), rate limits, latency and errors."""

    def __init__(self, personas: Mapping[Platform, Persona], clock: Clock = time.monotonic,
                 rng: random.Random | None = None):
        self.personas, self.clock, self.rng = personas, clock, rng or random.Random()
        self.started = clock()
        self.buckets: dict[Platform, TokenBucket] = {}
        self.outage_until: dict[Platform, float] = {}  # admin outages, in clock time
        self.outage_kind: dict[Platform, tuple[OutageKind, float]] = {}  # admin outages' kind and hang_s
        self.cleared_at: dict[Platform, float] = {}    # when an admin last ended an outage

    def elapsed(self) -> float:
        """Seconds since the sandbox started: the time line of the personas' outage windows."""
        return self.clock() - self.started

    def outage_remaining_s(self, platform: Platform) -> float | None:
        """Seconds until platform's current outage ends; None when it is up."""
        now = self.clock()
        elapsed = now - self.started
        remaining = [self.outage_until.get(platform, now) - now]
        cleared = self.cleared_at.get(platform)
        for window in self.personas[platform].outages:
            ended_by_admin = cleared is not None and window.start_s <= cleared - self.started <= elapsed
            if window.start_s <= elapsed < window.end_s and not ended_by_admin:
                remaining.append(window.end_s - elapsed)
        longest = max(remaining)
        return longest if longest > 0 else None

    def start_outage(self, platform: Platform, seconds: float, kind: OutageKind = "unavailable",
                     hang_s: float = 30.0) -> float | None:
        """An outage of platform from now for seconds; 0 ends any outage now. Returns what remains."""
        now = self.clock()
        if seconds > 0:
            self.outage_until[platform] = now + seconds
            self.outage_kind[platform] = (kind, hang_s)
        else:
            self.outage_until.pop(platform, None)
            self.outage_kind.pop(platform, None)
            self.cleared_at[platform] = now
        return self.outage_remaining_s(platform)

    def outage(self, platform: Platform) -> tuple[OutageKind, float] | None:
        """The kind (and hang_s) of platform's current outage; None when it is up.

        An admin outage in effect gives its kind; a persona window is always `unavailable`."""
        if self.outage_remaining_s(platform) is None:
            return None
        if self.outage_until.get(platform, 0) > self.clock():
            return self.outage_kind.get(platform, ("unavailable", 0.0))
        return "unavailable", 0.0

    def admit(self, platform: Platform) -> bool:
        """Whether platform's rate limit lets one more request through now."""
        limit = self.personas[platform].rate_limit
        if limit is None:
            return True
        bucket = self.buckets.get(platform)
        if bucket is None:
            bucket = self.buckets[platform] = TokenBucket(limit, self.clock)
        return bucket.take()

    def retry_after_s(self, platform: Platform) -> int:
        limit = self.personas[platform].rate_limit
        return limit.retry_after_s if limit else 1

    def latency_s(self, platform: Platform) -> float:
        """How long this answer waits: mean ± jitter milliseconds, never below 0."""
        latency = self.personas[platform].latency_ms
        return max(0.0, self.rng.uniform(latency.mean - latency.jitter, latency.mean + latency.jitter)) / 1000

    def fails(self, platform: Platform) -> bool:
        """Whether this report request is answered 500, at the persona's error rate."""
        rate = self.personas[platform].error_rate
        return rate > 0 and self.rng.random() < rate

    def reset(self) -> None:
        """Refill every rate limit and end every admin-started outage (persona windows stay)."""
        self.buckets.clear()
        self.outage_until.clear()
        self.outage_kind.clear()


def whole_seconds(seconds: float) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))
