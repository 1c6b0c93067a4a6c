"""The backpressure gauge's logic, with fakes for the outbox depth and the dispatcher's lag."""

import logging

import pytest
from aiokafka import TopicPartition

from services.intake.backpressure import Bound, DrainRate, Gauge, InboundValve, Refused
from shared import topics
from shared.lag import PartitionLag

BOUND = Bound(max_backlog=100, resume_below=80)


class FakeLag:
    """The dispatcher's groups as a LagSource: lane and router lag set by the test."""

    def __init__(self):
        self.lanes: dict[str, tuple[int, int]] = {}  # platform -> (committed, end)
        self.router = 0
        self.down = False

    async def read(self, groups) -> list[PartitionLag]:
        if self.down:
            raise ConnectionError("broker unreachable")
        assert set(groups) == {topics.GROUP_DISPATCHER, *(topics.lane_group(p) for p in topics.PLATFORMS)}
        rows = [PartitionLag(topics.GROUP_DISPATCHER, topics.REFERRALS_SUBMITTED, 0, 0, 0, self.router)]
        return rows + [PartitionLag(topics.lane_group(p), topics.lane(p), 0, committed, 0, end)
                       for p, (committed, end) in self.lanes.items()]


class FakeOutbox:
    def __init__(self):
        self.depth, self.down = 0, False

    async def __call__(self) -> int:
        if self.down:
            raise OSError("database unreachable")
        return self.depth


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts():
    return FakeOutbox(), FakeLag(), Clock()


@pytest.fixture
def gauge(parts) -> Gauge:
    outbox, lag, clock = parts
    return Gauge(BOUND, outbox, lag, clock=clock)


async def test_the_backlog_is_the_outbox_and_the_lanes_and_not_the_router_lag_counted_again(gauge, parts):
    outbox, lag, _ = parts
    outbox.depth, lag.router, lag.lanes = 60, 60, {"facebook": (10, 30), "youtube": (0, 19)}

    reading = await gauge.sample()

    assert (reading.outbox, reading.lanes, reading.router, gauge.backlog) == (60, 39, 60, 99)
    assert not gauge.refusing
    lag.lanes["youtube"] = (0, 20)
    await gauge.sample()
    assert gauge.refusing and gauge.backlog == 100


async def test_once_refusing_it_accepts_again_only_under_the_resume_level_and_logs_each_change_once(
        gauge, parts, caplog):
    outbox, _, _ = parts
    caplog.set_level(logging.INFO, logger="services.intake.backpressure")
    states = []
    for depth in (50, 120, 130, 90, 80, 79, 60, 99):
        outbox.depth = depth
        await gauge.sample()
        states.append(gauge.refusing)

    assert states == [False, True, True, True, True, False, False, False]
    changes = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in changes] == ["WARNING", "INFO"]
    assert "intake refuses new referrals: 120 accepted and not yet dispatched" in changes[0][1]
    assert "bound of 100" in changes[0][1] and "accepts again under 80" in changes[0][1]
    assert "intake accepts referrals again: 79 not yet dispatched" in changes[1][1]


async def test_what_this_process_stores_between_samples_counts_at_once_and_tells_the_listeners(gauge, parts):
    outbox, _, _ = parts
    outbox.depth = 90
    told = []
    gauge.listeners.append(told.append)
    await gauge.sample()

    with gauge.carrying(9):  # records read from referrals.inbound, being stored
        gauge.accepted(9)
    assert not gauge.refusing
    with gauge.carrying(1):
        assert gauge.refusing  # from the moment they are being stored: the consumer pauses at once
        gauge.accepted(1)

    assert gauge.refusing and gauge.backlog == 100
    assert told == [False, True, True]  # when it turned, and again once the batch was stored
    outbox.depth = 100  # the next sample sees them in the outbox: not counted twice
    await gauge.sample()
    assert gauge.backlog == 100 and told == [False, True, True, True]


async def test_submissions_being_stored_count_for_concurrent_requests_and_past_the_bound_all_are_refused(gauge):
    await gauge.sample()

    with gauge.admitting(60), gauge.admitting(50):  # a batch admitted under the bound takes it past
        assert gauge.backlog == 110 and gauge.refusing
        with pytest.raises(Refused) as refused, gauge.admitting(1):
            pass
    assert refused.value.retry_after_s == 5  # no drain rate known yet: a short guess
    assert str(refused.value).startswith("intake is at its bound of work not yet dispatched (110 waiting")
    assert gauge.backlog == 0  # none stored after all (failed): the next sample finds it so
    await gauge.sample()
    assert not gauge.refusing
    with gauge.admitting(5):
        gauge.accepted(5)  # stored
    assert gauge.backlog == 5


async def test_lag_that_cannot_be_read_counts_as_nothing_and_the_outbox_alone_still_bounds(gauge, parts, caplog):
    outbox, lag, _ = parts
    caplog.set_level(logging.INFO, logger="services.intake.backpressure")
    lag.lanes = {"facebook": (0, 500)}
    await gauge.sample()
    assert gauge.refusing

    lag.down, outbox.depth = True, 10
    for _ in range(3):
        reading = await gauge.sample()
    assert (reading.outbox, reading.lanes, reading.router) == (10, None, None)
    assert not gauge.refusing
    outbox.depth = 100
    await gauge.sample()
    assert gauge.refusing
    lag.down = False
    await gauge.sample()

    unreadable = [r.getMessage() for r in caplog.records if "dispatcher lag" in r.getMessage()]
    assert len(unreadable) == 2  # once when it could not be read, once when it could again
    assert "counting it as nothing" in unreadable[0] and "can be read again" in unreadable[1]


async def test_an_outbox_that_cannot_be_read_counts_as_nothing_too(gauge, parts):
    outbox, lag, _ = parts
    outbox.down, lag.lanes = True, {"x": (0, 99)}

    reading = await gauge.sample()

    assert reading.outbox is None and gauge.backlog == 99 and not gauge.refusing


async def test_retry_after_is_the_time_to_drain_to_the_resume_level_within_1_and_60_seconds_5_until_known(gauge,
                                                                                                          parts):
    outbox, lag, clock = parts
    outbox.depth = 200
    lag.lanes = {"facebook": (0, 0)}
    await gauge.sample()
    assert gauge.refusing and gauge.retry_after_s() == 5  # no drain rate known yet
    clock.now += 1
    await gauge.sample()
    assert gauge.retry_after_s() == 5  # readings 1 s apart: not known yet either

    clock.now += 9
    lag.lanes = {"facebook": (40, 40)}  # 4 reports a second
    await gauge.sample()
    assert gauge.retry_after_s() == 30  # (200 - 80) / 4
    outbox.depth = 81
    await gauge.sample()
    assert gauge.retry_after_s() == 1
    assert "retry after 1 s" in gauge.refusal() and "(81 waiting, bound 100)" in gauge.refusal()

    clock.now += 40
    outbox.depth = 10_000
    await gauge.sample()  # nothing delivered for 40 s
    assert gauge.retry_after_s() == 60


def test_the_drain_rate_is_what_the_lanes_delivered_lately_and_a_reset_offset_is_no_progress():
    drain = DrainRate(window_s=30)

    def rows(facebook: int, youtube: int | None) -> list[PartitionLag]:
        return [PartitionLag("f", "dispatch.facebook", 0, facebook, 0, 10_000),
                PartitionLag("y", "dispatch.youtube", 0, youtube, 0, 10_000)]

    drain.note(rows(100, None), 0)
    assert drain.per_s() is None
    drain.note(rows(100, None), 1)
    assert drain.per_s() is None, "readings spanning less than 5 s say nothing yet"
    drain.note(rows(150, 20), 10)  # youtube's first commit: no progress known yet
    drain.note(rows(0, 70), 20)  # facebook's offsets reset (a new broker)
    assert drain.per_s() == pytest.approx((50 + 50) / 20)
    drain.note(rows(30, 70), 60)
    assert drain.per_s() == pytest.approx(30 / 40)  # the window moved past the first readings


class FakeConsumer:
    """The part of aiokafka's consumer the valve uses."""

    def __init__(self, partitions: int):
        self.assigned = {TopicPartition(topics.REFERRALS_INBOUND, p) for p in range(partitions)}
        self._paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused -= set(tps)


class FakeSubscriber:
    consumer: FakeConsumer | None = None


def test_the_valve_pauses_every_assigned_partition_while_refusing_and_resumes_them_after():
    subscriber = FakeSubscriber()
    valve = InboundValve(subscriber)
    valve.apply(True)  # not started: nothing to pause, no error

    subscriber.consumer = FakeConsumer(2)
    valve.apply(True)
    assert subscriber.consumer.paused() == subscriber.consumer.assignment()
    subscriber.consumer.assigned.add(TopicPartition(topics.REFERRALS_INBOUND, 2))  # a rebalance
    valve.apply(True)
    assert len(subscriber.consumer.paused()) == 3
    valve.apply(False)
    assert subscriber.consumer.paused() == set()
