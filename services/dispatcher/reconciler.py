"""The dispatcher's reconciler: a level-triggered loop beside the event-driven lanes.

Every `reconcile_every_s` it claims deliveries still due past their `due_at` (a lane record lost
with a broker, a crash between remembering a delivery and publishing it, a retry record lost)
and puts them back on their lanes with the attempt they had reached, the same event id and so
the same idempotency key: a platform that had the report answers with its first ticket. Each
item's next re-drive waits twice as long. Claimed FOR UPDATE SKIP LOCKED: any number of
dispatcher instances sweep together. Webhook tickets never decided are polled by the poller
(decisions.py) once they are `webhook_poll_after_s` old; unconfirmed events are the relay's.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatcher import db
from services.dispatcher.outbound import ATTEMPT, Outbound, Record
from shared.reliability import keep_going
from shared.stuck import Stuck, cutoff, outbox_now, outbox_stuck
from shared.stuck import broker_lost as outbox_broker_lost

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, sessions: async_sessionmaker, outbound: Outbound, redrive_after_s: float, batch: int = 500,
                 paused: Callable[[], list[str]] = list):
        self.sessions, self.outbound, self.redrive_after_s, self.batch = sessions, outbound, redrive_after_s, batch
        self.paused = paused  # platforms whose circuit is open: their records wait in their lanes anyway
        self.redriven = 0  # deliveries put back on their lanes since start

    async def sweep(self) -> int:
        """Put one batch of stuck deliveries back on their lanes; how many."""
        async with self.sessions() as session, session.begin():
            stuck = await db.DELIVERIES.claim_stuck(session, self.batch, self.paused())
            if not stuck:
                return 0
            await asyncio.gather(*(self.outbound.to_lane(row.platform, Record(
                key=row.key, value=row.value, headers={**row.headers, ATTEMPT: str(row.attempt)})) for row in stuck))
            await db.DELIVERIES.redriven(session, [row.event_id for row in stuck], self.redrive_after_s)
        for row in stuck:
            log.info("referral %s: %s to %s (dispatch %s, attempt %s) made no progress since %s; put back on its "
                     "lane (re-drive %s)", row.referral_id, row.kind, row.platform, row.dispatch, row.attempt,
                     row.updated_at.isoformat(timespec="seconds"), row.redrives + 1)
        self.redriven += len(stuck)
        return len(stuck)

    async def run(self, every_s: float) -> None:
        """Sweep until cancelled; a failing sweep is logged and tried again with backoff."""
        async def full_sweep() -> bool:
            return await self.sweep() >= self.batch

        await keep_going(full_sweep, every_s, "reconciler sweep")


STEPS = {"report": "dispatcher: report due, not delivered", "answer": "dispatcher: answer due, not forwarded"}


async def stuck(session: AsyncSession, older_than_s: float) -> list[Stuck]:
    """What the dispatcher holds that made no progress within the bound, per step and platform."""
    since = cutoff(older_than_s)
    rows = [Stuck(STEPS[r.kind], r.platform, r.count, r.oldest, r.redrives or 0)
            for r in await db.DELIVERIES.stuck(session, since)]
    rows += [Stuck("platform: reported, no decision" + (" (polled)" if r.polled else " (waiting for a callback)"),
                   r.platform, r.count, r.oldest, r.polls or 0) for r in await db.undecided(session, since)]
    return rows + await outbox_stuck(session, db.OUTBOX, "dispatcher", older_than_s)


async def broker_lost(sessions: async_sessionmaker) -> None:
    """The broker lost what it held: every due delivery goes back on its lane now (its record, on a
    lane or a retry topic, is gone), and every unconfirmed event is published again now."""
    async with sessions() as session, session.begin():
        d = db.DELIVERIES.table
        moved = (await session.execute(update(d).where(and_(d.c.state == "due", d.c.due_at > func.now()))
                                       .values(due_at=func.now()))).rowcount
    log.warning("the broker lost what it held: %s due deliveries are put back on their lanes now", moved)
    await outbox_broker_lost(sessions, db.OUTBOX)


async def drive_on(session: AsyncSession, older_than_s: float) -> int:
    """Make everything stuck longer than the bound due at once (the services' loops take it from
    there): deliveries, polls of undecided tickets that are polled, unconfirmed events."""
    now, since = datetime.now(UTC), cutoff(older_than_s)
    d, t = db.DELIVERIES.table, db.tickets
    # Not a delivery parked for a later attempt far ahead (a platform's Retry-After): the platform said when.
    moved = (await session.execute(update(d).where(and_(
        d.c.state == "due", d.c.created_at < since,
        or_(d.c.attempt == 1, d.c.due_at <= now + timedelta(seconds=older_than_s)))).values(due_at=now))).rowcount
    moved += (await session.execute(update(t).where(and_(t.c.polled, t.c.status != db.DECIDED,
                                                         t.c.created_at < since)).values(next_poll_at=now))).rowcount
    return moved + await outbox_now(session, db.OUTBOX, older_than_s)
