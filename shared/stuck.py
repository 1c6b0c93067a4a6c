"""What is stuck, as operators see it (`takedown reconcile`, GET /v1/operators/stuck): per step and
platform, how many items made no progress within the bound, since when, and how often they were
driven on already. Each service reports the steps it owns."""

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stuck:
    step: str  # e.g. "intake: event not confirmed by dispatcher"
    platform: str  # "-" where the step is not per platform
    count: int
    oldest: datetime
    redrives: int

    def age_s(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.oldest).total_seconds()

    def as_json(self) -> dict:
        return {**asdict(self), "oldest": self.oldest.isoformat(), "age_s": round(self.age_s(), 1)}


def cutoff(older_than_s: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=older_than_s)


async def outbox_stuck(session: AsyncSession, outbox: Outbox, service: str, older_than_s: float) -> list[Stuck]:
    """Events of `service` its readers have not confirmed within the bound, per topic and reader."""
    rows = await outbox.waiting(session, cutoff(older_than_s))
    return [Stuck(f"{service}: {r.topic} event not confirmed by {r.reader}", "-", r.count, r.oldest, r.redrives or 0)
            for r in rows]


async def outbox_now(session: AsyncSession, outbox: Outbox, older_than_s: float) -> int:
    """Make every unconfirmed event older than the bound due at once; how many."""
    t = outbox.table
    done = await session.execute(update(t).where(func.coalesce(t.c.published_at, t.c.created_at) < cutoff(older_than_s))
                                 .values(next_attempt_at=datetime.now(UTC)))
    return done.rowcount


async def broker_lost(sessions: async_sessionmaker, outbox: Outbox) -> None:
    """The broker lost what it held: every event not yet confirmed is due again now, however long
    its re-drive backoff had grown (shared/kafka_watch.py calls this)."""
    async with sessions() as session, session.begin():
        moved = await outbox_now(session, outbox, 0)
    log.warning("the broker lost what it held: %s unconfirmed events of %s are published again now", moved,
                outbox.table.schema)


def table(rows: list[Stuck]) -> list[str]:
    """Lines of a table for a terminal."""
    now = datetime.now(UTC)
    lines = [f"{'STEP':58} {'PLATFORM':10} {'COUNT':>7} {'OLDEST (s)':>11} {'RE-DRIVES':>9}"]
    lines += [f"{r.step:58} {r.platform:10} {r.count:>7} {r.age_s(now):>11.0f} {r.redrives:>9}" for r in rows]
    return lines
