"""Outcomes ingest: events per second from Kafka into the hash-chained audit trail and state.

Starts an embedded Tansu broker and Postgres, publishes N referral.submitted events, serves the
outcomes service in-process, and times from its start until every event is recorded. Prints the
figure and writes bench/results/outcomes_ingest.json. Run: .venv/bin/python bench/outcomes_ingest.py [N]
"""

import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.outcomes.app import create_app
from services.outcomes.config import OutcomesSettings
from shared import topics
from shared.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from shared.events import Event, to_kafka
from shared.serving import configure_logging
from tests.fakes import referral
from tests.support import serving

RESULTS = Path(__file__).parent / "results" / "outcomes_ingest.json"


async def publish(bootstrap: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = []
        for _ in range(count):
            key, value, headers = to_kafka(Event(id=uuid4(), source="/bench", actor="agency:bench", data=referral()))
            sends.append(await producer.send(topics.REFERRALS_SUBMITTED, value, key=key,
                                             headers=[(k, v.encode()) for k, v in headers.items()]))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def measure(count: int, bootstrap: str, url: str) -> dict:
    await publish(bootstrap, count)
    settings = OutcomesSettings(kafka_bootstrap_servers=bootstrap, database_url=url, topic_partitions=6,
                                kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500,
                                scheduler_enabled=False)
    engine = create_async_engine(url)
    started = time.perf_counter()
    async with serving(create_app(settings)):
        while True:
            async with engine.connect() as conn:
                exists = (await conn.execute(text("SELECT to_regclass('outcomes.audit_events')"))).scalar()
                done = (await conn.execute(text("SELECT count(*) FROM outcomes.audit_events"))).scalar() if exists else 0
            if done >= count:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    await engine.dispose()
    return {"events": count, "seconds": round(elapsed, 2), "events_per_second": round(count / elapsed),
            "note": "includes the service's start (migrations, consumer group join, about 1-2 s)"}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        kafka = EmbeddedKafka(port=free_port())
        postgres = EmbeddedPostgres(Path(tmp) / "pg")
        try:
            bootstrap, url = kafka.start(), postgres.start()
            result = asyncio.run(measure(count, bootstrap, url))
        finally:
            kafka.stop()
            postgres.stop()
    result["machine"] = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"outcomes ingest: {result['events']} events in {result['seconds']} s = {result['events_per_second']} events/s")


if __name__ == "__main__":
    main()
