"""The outbox relay: publishes the events a service committed to its outbox (shared/outbox.py).

At-least-once: a row is published when it is new, and again, with the same event id, while its
readers have not confirmed it (a lost record, a broker restarted empty). Consumers are idempotent
on the event id. Any number of relays may share one outbox.
"""

import asyncio
import logging

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.faults import crash_point
from shared.outbox import Outbox
from shared.reliability import backoff

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, sessions: async_sessionmaker, broker: KafkaBroker, outbox: Outbox, batch: int,
                 idle_s: float, redrive_after_s: float):
        self.sessions, self.broker, self.outbox = sessions, broker, outbox
        self.batch, self.idle_s, self.redrive_after_s = batch, idle_s, redrive_after_s
        self.redriven = 0  # events published again since start, for operators
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tell the relay new rows were committed, so it sends them without waiting to poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Send one batch of due rows; return how many were sent."""
        async with self.sessions() as session, session.begin():
            rows = await self.outbox.take(session, self.batch, self.redrive_after_s)  # noted sent once committed
            if not rows:
                return 0
            pending = [await self.broker.publish(r.value, topic=r.topic, key=r.key, headers=r.headers,
                                                 no_confirm=True) for r in rows]
            await asyncio.gather(*pending)
            crash_point("outbox.after_publish")  # on Kafka; the rows' note as sent not yet committed
            await self.outbox.sent(session, rows)
        self._log_redrives([r for r in rows if r.again])
        return len(rows)

    def _log_redrives(self, again: list) -> None:
        for row in again:
            log.info("referral %s: %s %s published again (re-drive %s), not yet confirmed by %s",
                     row.key.decode(errors="replace"), row.headers.get("ce_type"), row.event_id,
                     row.redrives, ", ".join(row.awaiting))
        self.redriven += len(again)

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
