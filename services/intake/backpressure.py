"""Intake refuses what the system cannot carry (docs/operations.md, "Backpressure").

The backlog is the work intake accepted that the dispatcher has not delivered yet: intake's events
the dispatcher has not confirmed (outbox rows, whether published or not) plus the reports waiting
on the platforms' lanes (the lag of the `takedown-dispatcher-<platform>` groups). The router's lag
on referrals.submitted is read and logged, not added: those records are the outbox rows already
counted. A Gauge measures it in the background every BACKPRESSURE_SAMPLE_S; the hot path reads the
cached figure, plus what this process has stored since or is storing now. At BACKPRESSURE_MAX_BACKLOG intake refuses
(HTTP 429 with Retry-After; referrals.inbound paused) until the backlog is under
BACKPRESSURE_RESUME_FRACTION of the bound.

A part that cannot be read counts as nothing: with the broker down the outbox alone bounds (it grows,
as nothing is published), and with Postgres down nothing can be accepted anyway. Unknown lag never
makes intake refuse everything.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.intake.config import IntakeSettings
from shared import topics
from shared.lag import LagReader, PartitionLag
from shared.reliability import keep_going

log = logging.getLogger(__name__)
RETRY_AFTER_S = (1, 60)  # Retry-After's bounds, in whole seconds
DRAIN_WINDOW_S = 30.0  # the drain rate is what the lanes delivered over about this long
DRAIN_MIN_SPAN_S = 5.0  # and is not known before its readings span this long
# Retry-After while the drain rate is not known yet (the first seconds after a start): short, so that
# clients refused then are not kept away for the upper bound while the lanes drain in seconds.
RETRY_AFTER_UNKNOWN_S = 5


def dispatch_groups() -> dict[str, tuple[str, ...]]:
    """The dispatcher's router and lane groups, and the topics each reads."""
    return {topics.GROUP_DISPATCHER: (topics.REFERRALS_SUBMITTED,),
            **{topics.lane_group(p): (topics.lane(p),) for p in topics.PLATFORMS}}


class Refused(Exception):
    """Intake is at its bound: nothing was stored. The message says why, for the caller."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LagSource(Protocol):
    async def read(self, groups: Mapping[str, Sequence[str]]) -> list[PartitionLag]: ...


@dataclass(frozen=True)
class Bound:
    max_backlog: int
    resume_below: int  # once refusing, accept again under this

    @classmethod
    def of(cls, settings: IntakeSettings) -> "Bound":
        return cls(settings.backpressure_max_backlog,
                   max(1, math.floor(settings.backpressure_max_backlog * settings.backpressure_resume_fraction)))


@dataclass(frozen=True)
class Reading:
    """One sample; None where that part could not be read."""

    outbox: int | None = None  # intake's events the dispatcher has not confirmed
    lanes: int | None = None  # reports on the platforms' lanes not delivered yet
    router: int | None = None  # records on referrals.submitted not routed yet (counted in outbox)

    @property
    def backlog(self) -> int:
        return (self.outbox or 0) + (self.lanes or 0)

    def __str__(self) -> str:
        def part(n: int | None) -> str:
            return "unknown" if n is None else f"{n:,}"
        return f"outbox {part(self.outbox)}, lanes {part(self.lanes)}, router {part(self.router)}"


class DrainRate:
    """Reports per second the lanes delivered lately: the advance of their groups' committed offsets."""

    def __init__(self, window_s: float = DRAIN_WINDOW_S, min_span_s: float = DRAIN_MIN_SPAN_S):
        self.window_s, self.min_span_s = window_s, min_span_s
        self._committed: dict[tuple[str, str, int], int] = {}
        self._progress: deque[tuple[float, int]] = deque()  # (when, reports delivered since start)
        self._total = 0

    def note(self, rows: list[PartitionLag], now: float) -> None:
        for r in rows:
            key = (r.group, r.topic, r.partition)
            if r.committed is not None:
                self._total += max(0, r.committed - self._committed.get(key, r.committed))  # a reset is no progress
                self._committed[key] = r.committed
        self._progress.append((now, self._total))
        while len(self._progress) > 2 and now - self._progress[1][0] >= self.window_s:
            self._progress.popleft()

    def per_s(self) -> float | None:
        """None until the readings noted span min_span_s."""
        if len(self._progress) < 2:
            return None
        (t0, n0), (t1, n1) = self._progress[0], self._progress[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= self.min_span_s else None


class Gauge:
    """Whether intake refuses now: sample() in the background; refusing, admitting() and carrying() on the hot path."""

    def __init__(self, bound: Bound, outbox: Callable[[], Awaitable[int]], lag: LagSource,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.bound, self._outbox, self._lag, self.timeout_s, self.clock = bound, outbox, lag, timeout_s, clock
        self.reading = Reading()
        self.refusing = False
        self.drain = DrainRate()
        self.listeners: list[Callable[[bool], None]] = []  # told the state after every sample and change
        self._since_sample = 0  # referrals this process accepted that the last sample may not have seen
        self._in_flight = 0  # submissions admitted and not yet stored (or failed)
        self._refusing_since = 0.0
        self._unreadable: set[str] = set()

    @property
    def backlog(self) -> int:
        return self.reading.backlog + self._since_sample + self._in_flight

    def admitting(self, count: int) -> contextlib.AbstractContextManager[None]:
        """While count submissions are stored; they count from now, so concurrent requests see them.
        Refused if intake is at its bound (a batch admitted under it may take it past by its size)."""
        self._check()
        if self.refusing:
            raise Refused(self.refusal(), self.retry_after_s())
        return self.carrying(count)

    @contextlib.contextmanager
    def carrying(self, count: int) -> Iterator[None]:
        """While count submissions already read are stored (referrals.inbound's): never refused."""
        self._in_flight += count
        self._check()
        try:
            yield
        finally:
            self._in_flight -= count
            self._check()
            if self.refusing:
                self._tell()  # a consumer started since the last sample (a rebalance) is paused now, not then

    def accepted(self, count: int) -> None:
        """count new referrals were stored (inside admitting or carrying): counted until a sample sees them."""
        self._since_sample += count

    def _check(self) -> None:
        if not self.refusing and self.backlog >= self.bound.max_backlog:
            self._turn(True)

    def retry_after_s(self) -> int:
        """Seconds until the backlog should be under the resume level at the recent drain rate, in
        RETRY_AFTER_S: its upper bound when nothing drained lately, RETRY_AFTER_UNKNOWN_S while the
        rate is not known yet."""
        low, high = RETRY_AFTER_S
        rate = self.drain.per_s()
        if rate is None:
            return RETRY_AFTER_UNKNOWN_S
        if rate <= 0:
            return high
        return min(max(math.ceil((self.backlog - self.bound.resume_below) / rate), low), high)

    def refusal(self) -> str:
        """Why a submission is refused, for the caller."""
        return (f"intake is at its bound of work not yet dispatched ({self.backlog:,} waiting, bound "
                f"{self.bound.max_backlog:,}): nothing was accepted; retry after {self.retry_after_s()} s")

    async def sample(self) -> Reading:
        """Measure the backlog once and refuse or accept accordingly."""
        seen = self._since_sample
        outbox, rows = await asyncio.gather(self._read("outbox depth", self._outbox()),
                                            self._read("dispatcher lag", self._lag.read(dispatch_groups())))
        lanes = [r for r in rows or [] if r.group != topics.GROUP_DISPATCHER]
        self.reading = Reading(outbox, None if rows is None else sum(r.lag for r in lanes),
                               None if rows is None else sum(r.lag for r in rows if r.group == topics.GROUP_DISPATCHER))
        self._since_sample -= seen  # what was accepted while reading may be counted twice, never missed
        if rows is not None:
            self.drain.note(lanes, self.clock())
        if self.refusing and self.backlog < self.bound.resume_below:
            self._turn(False)
        elif not self.refusing and self.backlog >= self.bound.max_backlog:
            self._turn(True)
        else:
            self._tell()
        return self.reading

    async def run(self, every_s: float) -> None:
        """Sample every every_s until cancelled."""
        async def once() -> bool:
            await self.sample()
            return False

        await keep_going(once, every_s, "backpressure gauge")

    async def _read(self, what: str, reading: Awaitable):
        """A part of the reading, or None (logged once) if it cannot be read within the timeout."""
        try:
            value = await asyncio.wait_for(reading, self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - an unknown part counts as nothing; the other still bounds
            if what not in self._unreadable:
                self._unreadable.add(what)
                log.warning("backpressure: cannot read the %s (%r); counting it as nothing until it can be read",
                            what, exc)
            return None
        if what in self._unreadable:
            self._unreadable.discard(what)
            log.info("backpressure: the %s can be read again", what)
        return value

    def _turn(self, refusing: bool) -> None:
        self.refusing = refusing
        now = self.clock()
        if refusing:
            self._refusing_since = now
            log.warning("intake refuses new referrals: %s accepted and not yet dispatched (%s, %s since the last "
                        "sample) reached the bound of %s; it accepts again under %s; Retry-After %s s",
                        f"{self.backlog:,}", self.reading, self._since_sample, f"{self.bound.max_backlog:,}",
                        f"{self.bound.resume_below:,}", self.retry_after_s())
        else:
            log.info("intake accepts referrals again: %s not yet dispatched (%s), under %s, after refusing for %.0f s",
                     f"{self.backlog:,}", self.reading, f"{self.bound.resume_below:,}", now - self._refusing_since)
        self._tell()

    def _tell(self) -> None:
        for listener in self.listeners:
            listener(self.refusing)


class KafkaLag:
    """The LagSource of a running intake: a LagReader, started when first read and again after a failure."""

    def __init__(self, bootstrap: str, fetch_wait_ms: int):
        self.bootstrap, self.fetch_wait_ms = bootstrap, fetch_wait_ms
        self._reader: LagReader | None = None

    async def read(self, groups: Mapping[str, Sequence[str]]) -> list[PartitionLag]:
        if self._reader is None:
            reader = LagReader(self.bootstrap, self.fetch_wait_ms)
            await reader.start()
            self._reader = reader
        try:
            return await self._reader.read(groups)
        except BaseException:  # cancelled by the gauge's timeout too: start afresh next time
            await self.close()
            raise

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()


class InboundValve:
    """Pauses a FastStream subscriber's partitions while intake refuses and resumes them after.

    Paused, not blocked in the handler: the consumer keeps polling (getmany returns nothing for
    paused partitions), so it stays in its group however long the pause (a handler blocked past
    max_poll_interval_ms would be thrown out of it and its commit refused). Nothing read is lost:
    the batch in hand is stored; records fetched for a paused partition are dropped unreturned and
    fetched again from the consumer's position on resume. The pause is applied again on every sample:
    a rebalance, or kafka_watch restarting the subscriber, gives a consumer whose partitions are not.
    """

    def __init__(self, subscriber):
        self.subscriber = subscriber

    def apply(self, refusing: bool) -> None:
        consumer = getattr(self.subscriber, "consumer", None)  # FastStream's aiokafka consumer; None when stopped
        if consumer is None:
            return
        if refusing:
            if unpaused := consumer.assignment() - consumer.paused():
                consumer.pause(*unpaused)
                log.info("referrals.inbound paused: %s", sorted(unpaused))
        elif paused := consumer.paused():
            consumer.resume(*paused)
            log.info("referrals.inbound resumed: %s", sorted(paused))
