"""Limits that hold across dispatcher processes: a platform's rate limit, its Retry-After and its
circuit, shared through Postgres (dispatcher.lane_limits, one row per lane).

A platform's limit is per platform, not per process: N dispatchers each with a bucket of their
own would send N times the limit. The lane's row is the one bucket (tokens left at updated_at,
refilled at the platform's rate up to its burst), and the database's clock is the only clock.

No round trip per request: a lane leases tokens in blocks. One UPDATE ... RETURNING takes up to
k tokens from the row, k being what the lane will spend in its next LIMIT_LEASE_S (what it spent
since its last lease plus the reports waiting now, at most rate * LIMIT_LEASE_S and the burst).
The lane spends them here, and leases again before its stock runs out. A leased token not spent
within LIMIT_LEASE_S lapses, so in any t seconds all processes together send at most
rate * (t + LIMIT_LEASE_S) + burst, however many of them share the lane.

Retry-After and the circuit: a platform's Retry-After becomes the row's blocked_until, a circuit
one process opens its circuit_until. Every lease reads both, and every process reads them each
LIMIT_SYNC_S as well, so the others stop sending too. Once the shared cool-down is over each process
lets one probe through (half-open) before it sends on; a success closes the shared circuit.

Postgres down: no lease is granted, so a lane spends what it holds (one lease, for LIMIT_LEASE_S at
most) and then holds, asking again every second or two, rather than exceed a limit it cannot check.

Why hand-written: no well-kept library leases a Postgres-shared token bucket in blocks over
asyncpg. pyrate-limiter's PostgresBucket keeps a row per request through sync psycopg and makes a
round trip per acquire; rate-sync's asyncpg engine also makes one per acquire; limiters/steindamm
share through Redis only (new infrastructure). None keeps a platform's Retry-After or a circuit
beside the bucket. The whole lease is one SQL statement (LEASE below).

This module is the Postgres side; services/dispatcher/sharing.py the bucket and breaker a lane uses.
"""

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Clock = Callable[[], float]

# The row is locked while it is read (FOR UPDATE), so two processes' leases queue, never overlap.
# now() is the transaction's start: a lease that waited for the lock counts no time it did not see
# (greatest() keeps updated_at from going back), so it can only grant less, never more.
LEASE = text("""
WITH lane AS (
    SELECT least(:burst, tokens + :rate * greatest(0, extract(epoch FROM now() - updated_at))) AS available,
           greatest(updated_at, now()) AS at, coalesce(blocked_until > now(), false) AS blocked
    FROM dispatcher.lane_limits WHERE lane = :lane FOR UPDATE
), granted AS (
    SELECT available, at, CASE WHEN blocked THEN 0 ELSE least(:want, floor(available)) END AS n FROM lane
)
UPDATE dispatcher.lane_limits l SET tokens = g.available - g.n, updated_at = g.at
FROM granted g WHERE l.lane = :lane
RETURNING g.n AS granted, g.available - g.n AS left_over,
          extract(epoch FROM l.blocked_until - now()) AS blocked_s,
          extract(epoch FROM l.circuit_until - now()) AS circuit_s""")
ENSURE = text("INSERT INTO dispatcher.lane_limits (lane, tokens) VALUES (:lane, :burst) ON CONFLICT (lane) DO NOTHING")
BLOCK = text("UPDATE dispatcher.lane_limits SET blocked_until = greatest(blocked_until, now() + "
             "make_interval(secs => :seconds)) WHERE lane = :lane")
OPENED = text("UPDATE dispatcher.lane_limits SET circuit = 'open', circuit_changed_at = now(), circuit_until = "
              "greatest(circuit_until, now() + make_interval(secs => :seconds)) WHERE lane = :lane")
CLOSED = text("UPDATE dispatcher.lane_limits SET circuit = 'closed', circuit_until = NULL, circuit_changed_at = now() "
              "WHERE lane = :lane AND circuit <> 'closed'")
READ = text("SELECT lane, extract(epoch FROM blocked_until - now()) AS blocked_s, "
            "extract(epoch FROM circuit_until - now()) AS circuit_s FROM dispatcher.lane_limits WHERE lane = ANY(:lanes)")


@dataclass(frozen=True)
class Shared:
    """What the lane's row says now: seconds until a Retry-After ends, until its circuit's cool-down ends
    (0 when over or none), and whether its circuit is open at all."""

    blocked_s: float = 0.0
    circuit_s: float = 0.0
    circuit_open: bool = False


@dataclass(frozen=True)
class Lease:
    granted: int
    left_over: float  # tokens the row still holds
    shared: Shared


def _shared(row) -> Shared:
    return Shared(max(0.0, float(row.blocked_s or 0)), max(0.0, float(row.circuit_s or 0)), row.circuit_s is not None)


class LimitStore:
    """dispatcher.lane_limits: one statement per lease, per change of circuit, per Retry-After."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def lease(self, lane: str, rate: float, burst: float, want: int) -> Lease:
        """Up to want tokens of lane's bucket, refilled at rate up to burst; the row made if new."""
        params = {"lane": lane, "rate": float(rate), "burst": float(burst), "want": float(want)}
        async with self.engine.begin() as conn:
            row = (await conn.execute(LEASE, params)).first()
            if row is None:
                await conn.execute(ENSURE, {"lane": lane, "burst": float(burst)})
                row = (await conn.execute(LEASE, params)).first()
        return Lease(int(row.granted), float(row.left_over), _shared(row))

    async def ensure(self, bursts: dict[str, float]) -> None:
        """A row for each lane (lane -> burst: a new bucket starts full), so that what is noted has a row."""
        async with self.engine.begin() as conn:
            for lane, burst in bursts.items():
                await conn.execute(ENSURE, {"lane": lane, "burst": float(burst)})

    async def block(self, lane: str, seconds: float) -> None:
        await self._run(BLOCK, lane, seconds)

    async def opened(self, lane: str, seconds: float) -> None:
        await self._run(OPENED, lane, seconds)

    async def closed(self, lane: str) -> None:
        await self._run(CLOSED, lane)

    async def read(self, lanes: Iterable[str]) -> dict[str, Shared]:
        async with self.engine.begin() as conn:
            return {row.lane: _shared(row) for row in await conn.execute(READ, {"lanes": list(lanes)})}

    async def _run(self, statement, lane: str, seconds: float | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(statement, {"lane": lane} if seconds is None else {"lane": lane, "seconds": seconds})


class Notes:
    """What this process learnt that the others must hear of, until SharedLimits writes it down.
    Deadlines are kept on the local clock, so a note written late (Postgres was down) says what is left."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.circuits: dict[str, float | None] = {}  # lane -> open until (local clock), None: closed
        self.blocks: dict[str, float] = {}  # lane -> blocked until (local clock)
        self.wake = asyncio.Event()

    def opened(self, lane: str, seconds: float) -> None:
        self.circuits[lane] = self.clock() + seconds
        self.wake.set()

    def closed(self, lane: str) -> None:
        self.circuits[lane] = None
        self.wake.set()

    def blocked(self, lane: str, seconds: float) -> None:
        self.blocks[lane] = max(self.blocks.get(lane, 0.0), self.clock() + seconds)
        self.wake.set()

    async def write(self, store: LimitStore) -> None:
        """Write every note down; one that fails stays, to be written next time."""
        for lane, until in list(self.circuits.items()):
            await (store.closed(lane) if until is None else store.opened(lane, max(0.0, until - self.clock())))
            if self.circuits.get(lane, 0.0) == until:
                del self.circuits[lane]
        for lane, until in list(self.blocks.items()):
            await store.block(lane, max(0.0, until - self.clock()))
            if self.blocks.get(lane) == until:
                del self.blocks[lane]
