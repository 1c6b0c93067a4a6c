"""The circuit breaker and rate limiter, on a clock the tests move by hand."""

import pytest

from services.dispatcher.resilience import BreakerState, CircuitBreaker, TokenBucket


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


def test_the_circuit_stays_closed_below_the_failure_threshold(clock):
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)

    breaker.record_failure(), breaker.record_failure()

    assert breaker.state is BreakerState.closed and breaker.wait_s() == 0


def test_a_success_resets_the_count_of_consecutive_failures(clock):
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)

    breaker.record_failure(), breaker.record_failure(), breaker.record_success(), breaker.record_failure()

    assert breaker.state is BreakerState.closed


def test_the_circuit_opens_after_repeated_failures_and_holds_calls_back(clock):
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=5, clock=clock)

    for _ in range(3):
        breaker.record_failure()

    assert breaker.state is BreakerState.open
    assert breaker.wait_s() == pytest.approx(5)
    clock.advance(2)
    assert breaker.wait_s() == pytest.approx(3)


def test_after_the_cool_down_exactly_one_probe_goes_through(clock):
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5, clock=clock)
    breaker.record_failure()
    clock.advance(5)

    assert breaker.wait_s() == 0
    assert breaker.state is BreakerState.half_open
    assert breaker.wait_s() > 0, "a second caller must wait for the probe's result"


def test_a_successful_probe_closes_the_circuit(clock):
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5, clock=clock)
    breaker.record_failure()
    clock.advance(5)
    breaker.wait_s()

    breaker.record_success()

    assert breaker.state is BreakerState.closed and breaker.wait_s() == 0 and breaker.wait_s() == 0


def test_a_failed_probe_reopens_the_circuit_for_twice_as_long_up_to_the_cap(clock):
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5, max_reset_s=12, clock=clock)
    breaker.record_failure()
    waits = []
    for _ in range(3):
        clock.advance(breaker.wait_s())
        assert breaker.wait_s() == 0
        breaker.record_failure()
        waits.append(breaker.wait_s())

    assert waits == [pytest.approx(10), pytest.approx(12), pytest.approx(12)]


def test_the_bucket_allows_a_burst_then_the_sustained_rate(clock):
    bucket = TokenBucket(per_second=2, burst=3, clock=clock)

    assert [bucket.wait_s() for _ in range(3)] == [0, 0, 0]
    assert bucket.wait_s() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.wait_s() == 0
    assert bucket.wait_s() == pytest.approx(0.5)


def test_the_bucket_never_saves_up_more_than_its_burst(clock):
    bucket = TokenBucket(per_second=10, burst=2, clock=clock)
    clock.advance(3600)

    assert [bucket.wait_s() == 0 for _ in range(3)] == [True, True, False]


def test_retry_after_blocks_the_bucket_until_it_has_passed(clock):
    bucket = TokenBucket(per_second=100, burst=100, clock=clock)

    bucket.block_for(30)

    assert bucket.wait_s() == pytest.approx(30)
    clock.advance(30)
    assert bucket.wait_s() == 0
