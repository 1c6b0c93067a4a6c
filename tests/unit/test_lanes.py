"""A platform's lane without Kafka: breaker, rate limit, in-flight cap and the retry policy."""

import asyncio
from datetime import UTC, datetime

import pytest

from services.dispatcher.adapters.base import DeliveryError
from services.dispatcher.lanes import Delivered, GaveUp, Lane, RetryLater, RetryPolicy
from services.dispatcher.resilience import BreakerState, CircuitBreaker, TokenBucket
from tests.fakes import FakeAdapter, referral


class Time:
    """A clock and a sleep that moves it: the lane's waits take no real time."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def lane_for(adapter: FakeAdapter, time: Time, failures: int = 3, per_second: float = 100, burst: int = 100,
             policy: RetryPolicy = RetryPolicy(max_attempts=4, backoff_base_s=1, backoff_cap_s=60)) -> Lane:
    return Lane(adapter, CircuitBreaker(failures, reset_after_s=5, clock=time), TokenBucket(per_second, burst, clock=time),
                policy, sleep=time.sleep, wall_clock=time)


async def test_a_report_the_platform_takes_is_delivered_with_its_ticket():
    time = Time()
    adapter = FakeAdapter()
    r = referral()

    result = await lane_for(adapter, time).deliver(r, attempt=1)

    assert isinstance(result, Delivered) and result.receipt.ticket_id == f"T-{r.referral_id}"


async def test_a_transient_failure_is_retried_later_with_backoff_not_in_place():
    time = Time()
    adapter = FakeAdapter(then=DeliveryError("HTTP 503", permanent=False))

    result = await lane_for(adapter, time).deliver(referral(), attempt=2)

    assert isinstance(result, RetryLater) and result.reason == "HTTP 503"
    assert time.now <= result.not_before <= time.now + 2  # attempt 2: up to base * 2
    assert len(adapter.calls) == 1


async def test_retry_after_sets_the_earliest_next_attempt_and_holds_the_whole_lane():
    time = Time()
    adapter = FakeAdapter(script=[DeliveryError("HTTP 429", permanent=False, retry_after=30)])
    lane = lane_for(adapter, time)

    first = await lane.deliver(referral(), attempt=1)
    start = time.now
    second = await lane.deliver(referral(), attempt=1)

    assert isinstance(first, RetryLater) and first.not_before >= start + 30
    assert isinstance(second, Delivered)
    assert time.now >= start + 30, "the next report waited for Retry-After"
    assert lane.breaker.state is BreakerState.closed, "throttling is not an outage"


async def test_a_permanent_failure_is_given_up_at_once():
    time = Time()
    adapter = FakeAdapter(then=DeliveryError("HTTP 400: bad url", permanent=True))

    result = await lane_for(adapter, time).deliver(referral(), attempt=1)

    assert result == GaveUp("HTTP 400: bad url", permanent=True)


async def test_the_last_attempt_gives_up_saying_how_often_it_tried():
    time = Time()
    adapter = FakeAdapter(then=DeliveryError("timeout", permanent=False))

    result = await lane_for(adapter, time).deliver(referral(), attempt=4)

    assert result == GaveUp("gave up after 4 attempts: timeout", permanent=False)


async def test_an_outage_opens_the_circuit_and_the_lane_waits_instead_of_spending_attempts():
    time = Time()
    adapter = FakeAdapter(then=DeliveryError("connection refused", permanent=False))
    lane = lane_for(adapter, time, failures=3)
    for _ in range(3):
        await lane.deliver(referral(), attempt=1)
    assert lane.breaker.state is BreakerState.open

    adapter.then = "T"  # the platform comes back
    before = time.now
    result = await lane.deliver(referral(), attempt=1)

    assert isinstance(result, Delivered)
    assert time.now >= before + 5, "the lane waited for the cool-down before probing"
    assert len(adapter.calls) == 4 and lane.breaker.state is BreakerState.closed


async def test_the_rate_limit_spaces_reports_out():
    time = Time()
    adapter = FakeAdapter()
    lane = lane_for(adapter, time, per_second=2, burst=1)

    for _ in range(5):
        await lane.deliver(referral(), attempt=1)

    assert time.now - 1000.0 == pytest.approx(2.0), "5 reports at 2/s after a burst of 1 take 2 s"


async def test_no_more_reports_are_in_flight_than_the_adapter_allows():
    time, peak, running = Time(), 0, 0
    adapter = FakeAdapter(max_in_flight=3)
    original = adapter.submit

    async def slow_submit(r):
        nonlocal peak, running
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return await original(r)

    adapter.submit = slow_submit
    lane = lane_for(adapter, time)
    await asyncio.gather(*(lane.deliver(referral(), attempt=1) for _ in range(10)))

    assert peak == 3


def test_the_retry_policy_never_waits_less_than_the_platform_asked():
    policy = RetryPolicy(max_attempts=5, backoff_base_s=0.1)

    result = policy.after_failure(DeliveryError("429", permanent=False, retry_after=7), attempt=1, now=0)

    assert result == RetryLater("429", not_before=7)



async def test_a_delivery_says_when_the_report_was_sent():
    """The dispatched event carries the moment the report went out, not when it was written down:
    a platform that decides at once (or in its answer) still decides after it."""
    time = Time()
    time.now = 1_700_000_000.0

    result = await lane_for(FakeAdapter(), time).deliver(referral(), attempt=1)

    assert isinstance(result, Delivered)
    assert result.sent_at == datetime.fromtimestamp(1_700_000_000.0, UTC)
