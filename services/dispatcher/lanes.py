"""A platform's delivery lane: its adapter behind a circuit breaker, a rate limit and a cap on
reports in flight. One platform's outage or slowness holds up only its own lane.

While the circuit is open the lane waits (records pile up in `dispatch.<platform>` and drain
when the platform recovers) without spending anyone's attempts. A report that fails on its own
goes to the platform's retry topic, so the records behind it keep moving.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from services.dispatcher.adapters.base import DeliveryError, PlatformAdapter, Receipt
from services.dispatcher.resilience import CircuitBreaker, TokenBucket
from shared.events import InformationSupplied, ReferralSubmitted
from shared.reliability import backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    receipt: Receipt
    sent_at: datetime | None = None  # when the report went out: no platform answer precedes it


@dataclass(frozen=True)
class RetryLater:
    reason: str
    not_before: float  # epoch seconds


@dataclass(frozen=True)
class GaveUp:
    reason: str
    permanent: bool


Result = Delivered | RetryLater | GaveUp


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 120.0

    def after_failure(self, error: DeliveryError, attempt: int, now: float) -> RetryLater | GaveUp:
        """What to do with a report whose attempt number `attempt` just failed."""
        if error.permanent:
            return GaveUp(error.reason, permanent=True)
        if attempt >= self.max_attempts:
            return GaveUp(f"gave up after {attempt} attempts: {error.reason}", permanent=False)
        delay = max(backoff(attempt, self.backoff_base_s, self.backoff_cap_s), error.retry_after or 0.0)
        return RetryLater(error.reason, not_before=now + delay)


class Lane:
    def __init__(self, adapter: PlatformAdapter, breaker: CircuitBreaker, bucket: TokenBucket,
                 policy: RetryPolicy, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 wall_clock: Callable[[], float] = time.time):
        self.adapter, self.breaker, self.bucket, self.policy = adapter, breaker, bucket, policy
        self.in_flight = asyncio.Semaphore(adapter.config.max_in_flight)
        self.sleep, self.wall_clock = sleep, wall_clock

    async def deliver(self, referral: ReferralSubmitted, attempt: int) -> Result:
        """Report once, when the breaker and the rate limit allow; say what happened."""
        return await self._send(lambda: self.adapter.submit(referral), referral.referral_id, attempt)

    async def forward(self, ticket_id: str, supplied: InformationSupplied, key: str, referral_id: UUID,
                      attempt: int) -> Result:
        """Forward an agency's answer to a ticket once (idempotency key `key`); say what happened."""
        async def answer() -> Receipt:
            await self.adapter.answer(ticket_id, supplied, key)
            return Receipt(ticket_id)

        return await self._send(answer, referral_id, attempt)

    async def _send(self, call: Callable[[], Awaitable[Receipt]], referral_id: UUID, attempt: int) -> Result:
        async with self.in_flight:
            await self._wait(self.breaker.wait_s, "circuit open")
            await self._wait(self.bucket.wait_s, "rate limited")
            sent_at = datetime.fromtimestamp(self.wall_clock(), UTC)
            try:
                receipt = await call()
            except DeliveryError as error:
                self._learn_from(error)
                result = self.policy.after_failure(error, attempt, self.wall_clock())
                log.info("%s: referral %s attempt %s failed (%s): %s", self.adapter.slug,
                         referral_id, attempt, error.reason, type(result).__name__)
                return result
            self.breaker.record_success()
            return Delivered(receipt, sent_at)

    async def throttle(self) -> None:
        """Wait until the platform's rate limit allows one more request (polls use it too)."""
        await self._wait(self.bucket.wait_s, "rate limited")

    def _learn_from(self, error: DeliveryError) -> None:
        if error.retry_after is not None:
            self.bucket.block_for(error.retry_after)  # throttled, not down
            self.breaker.record_success()
        elif error.permanent:
            self.breaker.record_success()  # it answered: it is up
        else:
            self.breaker.record_failure()

    async def _wait(self, wait_s: Callable[[], float], why: str) -> None:
        while (delay := wait_s()) > 0:
            log.debug("%s: %s, waiting %.2fs", self.adapter.slug, why, delay)
            await self.sleep(min(delay, 1.0))
