"""How the sandbox's platforms treat traffic, on a fake clock: rate limits, outages, latency, errors."""

import random

import pytest

from services.sandbox.personas import parse_personas
from services.sandbox.traffic import Traffic, whole_seconds
from shared.events import Platform

YT = Platform.youtube


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def traffic(clock: Clock, **youtube) -> Traffic:
    return Traffic(parse_personas({"youtube": youtube}), clock=clock, rng=random.Random(7))


def test_the_burst_passes_then_requests_are_refused_until_the_bucket_refills():
    clock = Clock()
    t = traffic(clock, rate_limit={"per_second": 1, "burst": 2, "retry_after_s": 4})
    assert [t.admit(YT) for _ in range(3)] == [True, True, False]
    assert t.retry_after_s(YT) == 4
    clock.advance(0.5)
    assert not t.admit(YT)
    clock.advance(0.5)
    assert t.admit(YT)
    assert not t.admit(YT)
    clock.advance(100)
    assert [t.admit(YT) for _ in range(3)] == [True, True, False]  # never more than the burst


def test_without_a_rate_limit_everything_is_admitted():
    t = traffic(Clock())
    assert all(t.admit(YT) for _ in range(10_000))


def test_each_platform_has_a_bucket_of_its_own():
    t = Traffic(parse_personas({"default": {"rate_limit": {"per_second": 1, "burst": 1}}}), clock=Clock())
    assert t.admit(Platform.youtube) and t.admit(Platform.x)
    assert not t.admit(Platform.youtube)


def test_an_outage_window_counts_from_the_start_of_the_sandbox():
    clock = Clock()
    t = traffic(clock, outages=[{"start_s": 10, "end_s": 20}])
    assert t.outage_remaining_s(YT) is None
    clock.advance(10)
    assert t.outage_remaining_s(YT) == pytest.approx(10)
    clock.advance(9.5)
    assert t.outage_remaining_s(YT) == pytest.approx(0.5)
    clock.advance(0.5)
    assert t.outage_remaining_s(YT) is None
    assert t.outage_remaining_s(Platform.x) is None


def test_an_admin_outage_lasts_its_seconds_and_zero_ends_it():
    clock = Clock()
    t = traffic(clock)
    assert t.start_outage(YT, 30) == pytest.approx(30)
    clock.advance(29)
    assert t.outage_remaining_s(YT) == pytest.approx(1)
    assert t.start_outage(YT, 0) is None
    assert t.outage_remaining_s(YT) is None
    t.start_outage(YT, 5)
    clock.advance(5)
    assert t.outage_remaining_s(YT) is None


def test_an_admin_outage_has_its_kind_and_a_persona_window_is_unavailable():
    clock = Clock()
    t = traffic(clock, outages=[{"start_s": 100, "end_s": 200}])
    assert t.outage(YT) is None
    t.start_outage(YT, 10, "timeout", hang_s=12)
    assert t.outage(YT) == ("timeout", 12)
    clock.advance(10)
    assert t.outage(YT) is None
    clock.advance(95)
    assert t.outage(YT) == ("unavailable", 0)
    t.start_outage(YT, 0)
    t.start_outage(YT, 5, "error")
    assert t.outage(YT)[0] == "error"


def test_ending_an_outage_ends_the_current_window_but_not_later_ones():
    clock = Clock()
    t = traffic(clock, outages=[{"start_s": 0, "end_s": 10}, {"start_s": 20, "end_s": 30}])
    assert t.outage_remaining_s(YT) == pytest.approx(10)
    t.start_outage(YT, 0)
    assert t.outage_remaining_s(YT) is None
    clock.advance(20)
    assert t.outage_remaining_s(YT) == pytest.approx(10)


def test_reset_ends_admin_outages_and_refills_buckets():
    clock = Clock()
    t = traffic(clock, rate_limit={"per_second": 0.01, "burst": 1})
    t.start_outage(YT, 60)
    assert t.admit(YT) and not t.admit(YT)
    t.reset()
    assert t.outage_remaining_s(YT) is None and t.admit(YT)


def test_latency_stays_within_mean_and_jitter_and_never_below_zero():
    t = traffic(Clock(), latency_ms={"mean": 10, "jitter": 4})
    draws = [t.latency_s(YT) for _ in range(1000)]
    assert all(0.006 <= d <= 0.014 for d in draws)
    low = traffic(Clock(), latency_ms={"mean": 1, "jitter": 5})
    assert min(low.latency_s(YT) for _ in range(1000)) == 0


@pytest.mark.parametrize(("rate", "low", "high"), [(0, 0, 0), (1, 1000, 1000), (0.3, 250, 350)])
def test_reports_fail_at_the_error_rate(rate, low, high):
    t = traffic(Clock(), error_rate=rate)
    assert low <= sum(t.fails(YT) for _ in range(1000)) <= high


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert [whole_seconds(s) for s in (0.01, 1, 1.2, 29.9)] == [1, 1, 2, 30]
