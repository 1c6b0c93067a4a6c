"""SIGKILL the outcomes service while it records batches, restart it, and compare sets: every
event is in the audit trail exactly once, and the hash chain verifies."""

import asyncio
import os
import signal
import subprocess
import sys
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.outcomes import audit
from shared import topics
from shared.embedded import free_port
from shared.events import Event, to_kafka
from tests.fakes import referral
from tests.support import answers_health, eventually

COUNT = 3000


def outcomes_process(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.cli", "outcomes"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


async def recorded(engine) -> int:
    """Events in the audit trail; 0 before the service has created it."""
    async with engine.connect() as conn:
        exists = (await conn.execute(text("SELECT to_regclass('outcomes.audit_events')"))).scalar()
        return (await conn.execute(text("SELECT count(*) FROM outcomes.audit_events"))).scalar() if exists else 0


async def test_outcomes_killed_mid_batch_records_every_event_exactly_once_after_restart(settings_env, kafka, tmp_path):
    events = [Event(id=uuid4(), source="/takedown/intake", actor="agency:NCA", data=referral()) for _ in range(COUNT)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        await asyncio.gather(*[producer.send(topics.REFERRALS_SUBMITTED, value, key=key,
                                             headers=[(k, v.encode()) for k, v in headers.items()])
                               for key, value, headers in map(to_kafka, events)])
        await producer.flush()
    finally:
        await producer.stop()
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": settings_env["database_url"],
           "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500", "TOPIC_PARTITIONS": "3",
           "OUTCOMES_PORT": str(port)}
    engine = create_async_engine(settings_env["database_url"])
    try:
        with open(tmp_path / "outcomes.log", "ab") as log:
            first = outcomes_process(env, log)
            await eventually(lambda: _at_least(engine, 300), 90, "some events recorded")
            first.send_signal(signal.SIGKILL)
            first.wait()
            at_kill = await recorded(engine)
            second = outcomes_process(env, log)
            try:
                await eventually(lambda: answers_health(f"http://127.0.0.1:{port}"), 60, "outcomes to restart")
                await eventually(lambda: _at_least(engine, COUNT), 120, "every event recorded")
            finally:
                second.terminate()
                second.wait(30)
        async with engine.connect() as conn:
            ids = set((await conn.execute(text("SELECT event_id FROM outcomes.audit_events"))).scalars())
            total = (await conn.execute(text("SELECT count(*) FROM outcomes.audit_events"))).scalar()
            states = (await conn.execute(text("SELECT count(*) FROM outcomes.referrals WHERE status = 'submitted'"))).scalar()
        async with engine.connect() as conn:
            finding = await audit.verify(AsyncSession(bind=conn))
    finally:
        await engine.dispose()

    print(f"recorded at kill: {at_kill} of {COUNT}")
    assert at_kill < COUNT, "the kill must land before every event was recorded"
    assert total == COUNT and ids == {e.id for e in events}, "each event exactly once"
    assert states == COUNT
    assert finding is None, f"the chain must verify: {finding}"


async def _at_least(engine, count: int) -> bool:
    return await recorded(engine) >= count
