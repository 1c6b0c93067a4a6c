"""A lane's bucket and breaker when several dispatcher processes share its platform (limits.py
says how and why), and SharedLimits, which makes them and keeps each process in step with the others."""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable

from services.dispatcher.limits import Clock, LimitStore, Notes, Shared
from services.dispatcher.resilience import BreakerState, CircuitBreaker
from shared.reliability import backoff, is_transient

log = logging.getLogger(__name__)
POLL_S = 0.01  # how often a report waiting for a lease under way looks again


class SharedBucket:
    """A lane's share of its platform's bucket: tokens leased from the row in blocks, spent here.
    The face of resilience.TokenBucket (rate, wait_s, block_for), so the lane waits on it the same way."""

    def __init__(self, lane: str, per_second: float, burst: int, store: LimitStore, notes: Notes,
                 observe: Callable[[Shared], None], lease_s: float = 0.2, clock: Clock = time.monotonic):
        self.lane, self.rate, self.capacity = lane, per_second, float(burst)
        self.store, self.notes, self.observe, self.lease_s, self.clock = store, notes, observe, lease_s, clock
        self.most = max(1, min(int(burst), math.ceil(per_second * lease_s)))  # one lease's most tokens
        self.stock: deque[list[float]] = deque()  # [lapses at, tokens], oldest first
        self.blocked_until = self.next_lease_at = 0.0
        self.spent = self.asked = self.failures = 0  # spent and asked for since the last lease
        self.leasing: asyncio.Task | None = None

    def wait_s(self) -> float:
        """0 if a request may go now (and takes a token), else seconds to wait before asking again."""
        now = self.clock()
        if now < self.blocked_until:
            return self.blocked_until - now
        if self._take(now):
            self.spent += 1
            if self.held(now) < self.most / 2:
                self._lease_soon(now)  # before the stock runs out, not after
            return 0.0
        self.asked += 1
        self._lease_soon(now)
        return max(self.next_lease_at - now, POLL_S)

    def block_for(self, seconds: float) -> None:
        """Send nothing for seconds (the platform said Retry-After), here and in every other process."""
        self.hold(seconds)
        self.notes.blocked(self.lane, seconds)

    def hold(self, seconds: float) -> None:
        """Send nothing for seconds; tokens held now lapse."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)
        self.stock.clear()

    def held(self, now: float) -> float:
        return sum(tokens for lapses_at, tokens in self.stock if lapses_at > now)

    def _take(self, now: float) -> bool:
        while self.stock and (self.stock[0][0] <= now or self.stock[0][1] < 1):
            self.stock.popleft()
        if not self.stock:
            return False
        self.stock[0][1] -= 1
        return True

    def _lease_soon(self, now: float) -> None:
        if self.leasing is None and now >= self.next_lease_at:
            self.leasing = asyncio.get_running_loop().create_task(self._lease(), name=f"lease-{self.lane}")

    async def _lease(self) -> None:
        want = max(1, min(self.most, self.spent + self.asked))
        self.spent = self.asked = 0
        try:
            lease = await self.store.lease(self.lane, self.rate, self.capacity, want)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the lane holds rather than guess
            self._failed(exc)
            return
        finally:
            self.leasing = None
        now = self.clock()
        if self.failures:
            log.info("%s: leasing tokens again after %s failure(s)", self.lane, self.failures)
        self.failures = 0
        if lease.granted:
            self.stock.append([now + self.lease_s, float(lease.granted)])
        # Short of what was wanted: ask again once the row holds a lease's worth, not at once.
        self.next_lease_at = now if lease.granted >= want else now + max(0.0, want - lease.left_over) / self.rate
        self.observe(lease.shared)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.next_lease_at = self.clock() + min(2.0, 0.25 * 2 ** self.failures)
        if self.failures == 1:
            log.log(logging.WARNING if is_transient(exc) else logging.ERROR,
                    "%s: cannot lease tokens of the shared rate limit (%r); the lane holds until it can",
                    self.lane, exc, exc_info=not is_transient(exc))


class SharedBreaker(CircuitBreaker):
    """The per-process breaker, plus: it tells the others when it opens or closes, and holds while
    another process's circuit for the lane is open (then probes once, as a half-open breaker)."""

    def __init__(self, lane: str, notes: Notes, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lane, self.notes = lane, notes
        self.held_until = 0.0

    def wait_s(self) -> float:
        if self.held_until:
            remaining = self.held_until - self.clock()
            if remaining > 0:
                return remaining
            self.held_until = 0.0
            if self.state is BreakerState.closed:
                self.state, self.probing = BreakerState.half_open, False  # probe before sending on
        return super().wait_s()

    def cooling(self) -> bool:
        return self.clock() < self.held_until or super().cooling()

    def record_success(self) -> None:
        told = self.state is not BreakerState.closed or self.held_until > 0
        super().record_success()
        self.held_until = 0.0
        if told:
            self.notes.closed(self.lane)

    def _open(self) -> None:
        super()._open()
        self.notes.opened(self.lane, self.reset_s)

    def observe(self, shared: Shared) -> None:
        """Hold while the shared circuit cools down; stop holding once it is closed."""
        if shared.circuit_s > 0 and not super().cooling():
            self.held_until = max(self.held_until, self.clock() + shared.circuit_s)
        elif not shared.circuit_open:
            self.held_until = 0.0


class SharedLimits:
    """Every lane's shared bucket and breaker in this process, and the loop that writes down what they
    learnt and reads what the other processes did (every sync_s, and at once when there is news)."""

    def __init__(self, store: LimitStore, lease_s: float = 0.2, sync_s: float = 1.0, clock: Clock = time.monotonic):
        self.store, self.lease_s, self.sync_s, self.clock = store, lease_s, sync_s, clock
        self.notes = Notes(clock)
        self.lanes: dict[str, tuple[SharedBucket, SharedBreaker]] = {}
        self.rows_made = False

    def protections(self, lane: str, per_second: float, burst: int, failures: int, reset_s: float,
                    max_reset_s: float) -> tuple[SharedBreaker, SharedBucket]:
        """The breaker and the bucket of one lane (an adapter's slug), shared with every other process."""
        breaker = SharedBreaker(lane, self.notes, failures, reset_s, max_reset_s, clock=self.clock)
        bucket = SharedBucket(lane, per_second, burst, self.store, self.notes, lambda s: self.observe(lane, s),
                              self.lease_s, self.clock)
        self.lanes[lane] = (bucket, breaker)
        return breaker, bucket

    def observe(self, lane: str, shared: Shared) -> None:
        bucket, breaker = self.lanes[lane]
        if shared.blocked_s > 0:
            bucket.hold(shared.blocked_s)
        breaker.observe(shared)

    async def sync(self) -> None:
        """Write down what this process learnt, then hear what the others did."""
        self.notes.wake.clear()
        if not self.rows_made:
            await self.store.ensure({lane: bucket.capacity for lane, (bucket, _) in self.lanes.items()})
            self.rows_made = True
        await self.notes.write(self.store)
        for lane, shared in (await self.store.read(self.lanes)).items():
            self.observe(lane, shared)

    async def run(self) -> None:
        """sync() until cancelled; a failing one is logged and tried again with a capped backoff."""
        failures = 0
        try:
            while True:
                try:
                    await self.sync()
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - a background loop must outlive any one bad step
                    failures += 1
                    log.log(logging.WARNING if is_transient(exc) else logging.ERROR, "sharing lane limits failed "
                            "(%s in a row): %r", failures, exc, exc_info=not is_transient(exc))
                wait = self.sync_s if not failures else max(self.sync_s, backoff(failures, cap=5.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.notes.wake.wait(), wait)
        finally:  # stopping: no lease may outlive the engine
            for bucket, _ in self.lanes.values():
                if bucket.leasing is not None:
                    bucket.leasing.cancel()
