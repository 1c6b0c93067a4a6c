"""The outbox relay: publishes committed referral events to Kafka, then deletes them.

At-least-once: a crash between the broker's ack and the delete re-sends those rows, and
consumers are idempotent on the event id. Rows are claimed FOR UPDATE SKIP LOCKED, never
by 'id > last seen' (sequences commit out of order).
"""

import asyncio
import logging

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.intake import db
from shared.faults import crash_point
from shared.reliability import backoff

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, sessions: async_sessionmaker, broker: KafkaBroker, batch: int, idle_s: float):
        self.sessions, self.broker, self.batch, self.idle_s = sessions, broker, batch, idle_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tell the relay new rows were committed, so it sends them without waiting to poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Send one batch of unsent rows; return how many were sent."""
        async with self.sessions() as session, session.begin():
            rows = await db.claim_outbox(session, self.batch)
            if not rows:
                return 0
            pending = [
                await self.broker.publish(
                    r.value, topic=r.topic, key=r.key, headers=r.headers, no_confirm=True
                )
                for r in rows
            ]
            await asyncio.gather(*pending)
            crash_point("outbox.after_publish")  # on Kafka; the rows not yet deleted
            await db.delete_sent(session, [r.id for r in rows])
        return len(rows)

    async def run(self) -> None:
        """Relay until cancelled, backing off while Kafka or Postgres is unreachable."""
        failures = 0
        while True:
            self._wake.clear()  # before reading, so a commit during the read is not missed
            try:
                sent = await self.relay_once()
                failures = 0
            except Exception:  # noqa: BLE001 - keep relaying whatever fails; rows stay in the outbox
                failures += 1
                log.exception("outbox relay failed (%s in a row); rows kept for retry", failures)
                await asyncio.sleep(backoff(failures, cap=5.0))
                continue
            if sent < self.batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)
                except TimeoutError:
                    pass
