"""The events the ingest benchmark records, and its two references on the same schema (the tables
the outcomes migrations create): raw asyncpg COPY, and a naive consumer committing per message.
"""

import asyncio
import json
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.dispatcher.adapters.base import Decision
from services.dispatcher.domain import answered, dispatched
from services.outcomes import audit, chain
from services.outcomes.db import STATE_COLUMNS
from services.outcomes.domain import project
from services.outcomes.service import OutcomesService
from shared import db, topics
from shared.events import Category, Event, Platform, ReferralSubmitted, Visibility, from_kafka, to_kafka

TOPIC_OF = {"referral.submitted": topics.REFERRALS_SUBMITTED, "referral.dispatched": topics.REFERRALS_DISPATCH,
            "takedown.decided": topics.TAKEDOWN_DECISIONS}


def referral(platform: Platform, key: str) -> ReferralSubmitted:
    """A referral.submitted payload for platform."""
    post = f"https://{platform.value}.example/post/1"
    return ReferralSubmitted(referral_id=uuid4(), agency="NCA", url=f"{post}?utm_source=x", canonical_url=post,
                             platform=platform,
                             category=Category.people_smuggling, case_reference="OP-1", idempotency_key=key,
                             submitted_at=datetime.now(UTC))


def removal(ticket_id: str, referral_id: UUID) -> Decision:
    """The platform's answer: the content removed."""
    return Decision(ticket_id=ticket_id, referral_id=referral_id, decided_at=datetime.now(UTC),
                    visibility=(Visibility.content_removed,))


def lifecycles(count: int) -> list[Event]:
    """count events: referrals each submitted, dispatched and decided, as the services emit them."""
    events = []
    platforms = (Platform.facebook, Platform.youtube, Platform.x, Platform.tiktok)
    for i in range(count // 3):
        data = referral(platforms[i % len(platforms)], f"ingest-{i}")
        ticket = f"T-{uuid4().hex[:12]}"
        events += [Event(source="/takedown/intake", actor="agency:NCA", data=data),
                   dispatched(data.referral_id, data.platform, "bench", ticket, 1),
                   answered(data.platform, removal(ticket, data.referral_id))]
    return events


async def publish(bootstrap: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        sent = []
        for event in events:
            key, value, headers = to_kafka(event)
            sent.append(await producer.send(TOPIC_OF[event.type], value, key=key,
                                            headers=[(k, v.encode()) for k, v in headers.items()]))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def copy_rows(events: list[Event]) -> tuple[list[tuple], list[tuple]]:
    """The audit rows (numbered and hash-chained) and the final referral states the service would
    leave, as tuples for COPY; made before the clock starts."""
    rows = chain.extend((0, chain.GENESIS), (audit.event_row(e) for e in events))
    audit_rows = [(r["position"], r["event_id"], r["referral_id"], r["event_type"], r["occurred_at"], r["actor"],
                   r["source"], r["schema_version"], json.dumps(r["data"]), r["prev_hash"], r["hash"]) for r in rows]
    histories: dict = {}
    for event in events:
        histories.setdefault(event.referral_id, []).append(event)
    states = []
    for rid, history in histories.items():
        state = project(history)
        states.append((rid, *(_jsonb(c, state.get(c)) for c in STATE_COLUMNS)))
    return audit_rows, states


def _jsonb(column: str, value):
    if column in ("transitions", "anomalies"):
        return json.dumps(value, default=str)
    return str(value) if hasattr(value, "value") else value  # enums as their text


AUDIT_COLUMNS = ("position", "event_id", "referral_id", "event_type", "occurred_at", "actor", "source",
                 "schema_version", "data", "prev_hash", "hash")


async def copy_reference(connect: dict, events: list[Event]) -> dict:
    """Raw asyncpg COPY of the same rows in one transaction: the most Postgres takes, here."""
    audit_rows, states = copy_rows(events)
    conn = await asyncpg.connect(**connect)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("audit_events", schema_name="outcomes", records=audit_rows,
                                             columns=AUDIT_COLUMNS)
            await conn.copy_records_to_table("referrals", schema_name="outcomes", records=states,
                                             columns=("referral_id", *STATE_COLUMNS))
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"events": len(events), "referral_rows": len(states), "seconds": round(seconds, 3),
            "events_per_s": round(len(events) / seconds)}


async def naive_reference(bootstrap: str, database_url: str, count: int) -> dict:
    """What a tutorial consumer does: for each message, open a session, record it, commit, commit the
    offset. It records with the service's own OutcomesService.record(), so the work per event (chain
    link, projection) is the same; only the batching differs."""
    engine = db.make_engine(database_url)
    service = OutcomesService(db.make_sessions(engine))
    consumer = AIOKafkaConsumer(*TOPIC_OF.values(), bootstrap_servers=bootstrap, group_id="bench-naive",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=3000, heartbeat_interval_ms=500)
    await consumer.start()
    try:
        done, started = 0, None
        async for msg in consumer:
            started = started or time.perf_counter()
            headers = {k: v.decode() for k, v in msg.headers}
            await service.record([from_kafka(headers, msg.value)])
            await consumer.commit()
            done += 1
            if done >= count:
                break
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
        await engine.dispose()
    return {"events": done, "seconds": round(seconds, 3), "events_per_s": round(done / seconds)}
