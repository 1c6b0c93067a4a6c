"""Per-platform protections: a circuit breaker and a token-bucket rate limiter.

Both are plain state machines over an injected clock: they say how long to wait, and the
lane does the waiting. That keeps them testable without sleeping.
"""

import time
from collections.abc import Callable
from enum import StrEnum

Clock = Callable[[], float]


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    """Opens after consecutive failures; after a cool-down lets one probe through to decide.

    Each failed probe doubles the cool-down (up to max_reset_s); a success closes the circuit.
    """

    def __init__(self, failure_threshold: int = 5, reset_after_s: float = 5.0, max_reset_s: float = 60.0,
                 clock: Clock = time.monotonic):
        self.failure_threshold, self.base_reset_s, self.max_reset_s = failure_threshold, reset_after_s, max_reset_s
        self.clock = clock
        self.state = BreakerState.closed
        self.failures = 0
        self.reset_s = reset_after_s
        self.opened_at = 0.0
        self.probing = False

    def wait_s(self) -> float:
        """0 if a call may go now (taking the probe slot when half-open), else seconds to wait."""
        if self.state is BreakerState.closed:
            return 0.0
        if self.state is BreakerState.open:
            remaining = self.opened_at + self.reset_s - self.clock()
            if remaining > 0:
                return remaining
            self.state = BreakerState.half_open
        if self.probing:
            return min(1.0, self.reset_s)
        self.probing = True
        return 0.0

    def cooling(self) -> bool:
        """Open, and its cool-down not over: nothing should be sent (a probe may go once it is)."""
        return self.state is BreakerState.open and self.clock() < self.opened_at + self.reset_s

    def record_success(self) -> None:
        self.state, self.failures, self.reset_s, self.probing = BreakerState.closed, 0, self.base_reset_s, False

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.half_open:
            self.reset_s = min(self.reset_s * 2, self.max_reset_s)
            self._open()
        elif self.failures >= self.failure_threshold and self.state is BreakerState.closed:
            self._open()

    def _open(self) -> None:
        self.state, self.opened_at, self.probing = BreakerState.open, self.clock(), False


class TokenBucket:
    """`per_second` requests sustained, `burst` at once; a platform's Retry-After blocks it."""

    def __init__(self, per_second: float, burst: int, clock: Clock = time.monotonic):
        self.rate, self.capacity, self.clock = per_second, float(burst), clock
        self.tokens = float(burst)
        self.updated = clock()
        self.blocked_until = 0.0

    def wait_s(self) -> float:
        """0 if a request may go now (and takes a token), else seconds until one may."""
        now = self.clock()
        if now < self.blocked_until:
            return self.blocked_until - now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def block_for(self, seconds: float) -> None:
        """Send nothing for `seconds` (the platform said Retry-After)."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)
