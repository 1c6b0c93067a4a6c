"""Lane limits shared through Postgres (services/dispatcher/limits.py, sharing.py): two processes'
limiters on one row, each with an engine of its own as separate processes would have."""

import asyncio
import time
from contextlib import asynccontextmanager

import pytest

from services.dispatcher.app import MIGRATIONS
from services.dispatcher.db import SCHEMA
from services.dispatcher.limits import LimitStore
from services.dispatcher.sharing import SharedLimits
from shared import db
from shared.embedded import free_port
from tests.support import busiest, eventually

RATE, BURST, LEASE_S = 50.0, 10, 0.2


@pytest.fixture
async def database(database_url) -> str:
    await db.migrate(database_url, MIGRATIONS, SCHEMA)
    return database_url


@asynccontextmanager
async def process(database_url: str, lease_s: float = LEASE_S, sync_s: float = 0.1):
    """One dispatcher process's shared limits: an engine of its own, its sync loop running."""
    engine = db.make_engine(database_url, pool_size=2)
    limits = SharedLimits(LimitStore(engine), lease_s, sync_s)
    task = asyncio.create_task(limits.run())
    try:
        yield limits
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


def lane(limits: SharedLimits, rate: float = RATE, burst: int = BURST, name: str = "meta"):
    return limits.protections(name, rate, burst, failures=2, reset_s=0.5, max_reset_s=1.0)


async def send_for(bucket, seconds: float, senders: int = 8) -> list[float]:
    """Reports sent through bucket by `senders` concurrent senders for `seconds`, as the lane waits: when each went."""
    sent: list[float] = []
    end = time.monotonic() + seconds

    async def sender() -> None:
        while time.monotonic() < end:
            if (delay := bucket.wait_s()) > 0:
                await asyncio.sleep(min(delay, 1.0))
            else:
                sent.append(time.monotonic())

    await asyncio.gather(*(sender() for _ in range(senders)))
    return sent


async def test_two_stores_leasing_one_row_never_get_more_than_rate_times_time_plus_burst(database):
    stores = [LimitStore(db.make_engine(database, pool_size=2)) for _ in range(2)]
    granted = [0, 0]

    async def lease_hard(i: int, until: float) -> None:
        while time.monotonic() < until:
            granted[i] += (await stores[i].lease("x", RATE, BURST, want=3)).granted

    started = time.monotonic()
    await asyncio.gather(*(lease_hard(i, started + 1.5) for i in range(2)))
    elapsed = time.monotonic() - started
    for store in stores:
        await store.engine.dispose()

    assert sum(granted) <= RATE * elapsed + BURST
    assert sum(granted) >= RATE * 1.5 * 0.8, "the bucket refills at its rate"
    assert min(granted) > 0, "both processes were granted tokens"


async def test_two_processes_sending_on_one_lane_stay_within_its_limit_together(database):
    async with process(database) as first, process(database) as second:
        (_, one), (_, two) = lane(first), lane(second)
        sent = await asyncio.gather(send_for(one, 2.0), send_for(two, 2.0))
    together = sent[0] + sent[1]
    print(f"two processes at {RATE}/s (burst {BURST}): sent {list(map(len, sent))} in 2 s; busiest 1 s: "
          f"{busiest(together, 1.0)}")

    for window in (0.5, 1.0, 2.0):
        assert busiest(together, window) <= RATE * (window + LEASE_S) + BURST, window
    assert len(together) >= RATE * 2.0 * 0.7, "together they used most of the limit"
    assert min(map(len, sent)) >= len(together) * 0.1, f"both sent some: {list(map(len, sent))}"


async def test_a_lane_of_high_limit_leases_in_blocks_not_per_report(database):
    async with process(database) as limits:
        _, bucket = lane(limits, rate=5000, burst=5000)
        leases = 0
        lease = limits.store.lease

        async def counted(*args, **kwargs):
            nonlocal leases
            leases += 1
            return await lease(*args, **kwargs)

        limits.store.lease = counted
        sent = await send_for(bucket, 1.0, senders=32)

    print(f"one process at 5000/s: {len(sent)} reports in 1 s on {leases} leases")
    assert len(sent) >= 2000, "thousands of reports a second"
    assert leases <= len(sent) / 50, f"{leases} leases for {len(sent)} reports"


async def test_retry_after_one_process_was_given_holds_the_other(database):
    async with process(database) as first, process(database) as second:
        (_, one), (_, two) = lane(first), lane(second)
        one.block_for(2.0)

        async def held() -> bool:
            return two.wait_s() > 0.5

        await eventually(held, 5, "the other process to hold for the platform's Retry-After")


async def test_a_circuit_one_process_opens_holds_the_other_until_a_probe_closes_it(database):
    async with process(database) as first, process(database) as second:
        (breaker_one, _), (breaker_two, _) = lane(first), lane(second)
        breaker_one.record_failure(), breaker_one.record_failure()  # the threshold: open
        assert breaker_one.cooling()

        await eventually(lambda: _true(breaker_two.cooling()), 5, "the other process to see the circuit open")
        assert breaker_two.wait_s() > 0, "it sends nothing while the circuit cools down"

        await eventually(lambda: _true(breaker_one.wait_s() == 0), 5, "the first process's probe slot")
        breaker_one.record_success()  # the probe went through: closed, for everyone
        await eventually(lambda: _true(breaker_two.wait_s() == 0), 5, "the other process to send again")


async def test_without_postgres_a_lane_holds_rather_than_exceed_its_limit():
    engine = db.make_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none", pool_size=1)
    limits = SharedLimits(LimitStore(engine), LEASE_S, 0.1)
    _, bucket = lane(limits)
    try:
        sent = await send_for(bucket, 1.0)
        assert sent == [] and bucket.failures > 0, "nothing is sent on tokens no one granted"
    finally:
        await engine.dispose()


async def _true(value: bool) -> bool:
    return value
