"""The hash-chained audit trail in Postgres: append events, read the head, verify the chain.

Appends are serialised by locking the one row of outcomes.audit_head (FOR UPDATE) for the rest
of the caller's transaction, so the chain never forks and positions stay gapless: a transaction
that rolls back releases the head without having moved it.
"""

from typing import Any

from sqlalchemy import (BigInteger, Column, DateTime, Identity, MetaData, SmallInteger, String, Table, func,
                        select, text, update)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes import chain
from services.outcomes.chain import Checkpoint, Finding
from shared.db import copy_records
from shared.events import Event

SCHEMA = "outcomes"
BATCH = 1000  # rows fetched at a time while verifying
metadata = MetaData(schema=SCHEMA)

# outcomes.audit_events as migrations 0001 and 0002 leave it. Rows are added by append() only: it
# gives each its position (the identity default is never used) and hashes.
audit_events = Table(
    "audit_events", metadata,
    Column("position", BigInteger, Identity(), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("referral_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),  # not chained
    Column("actor", String(300), nullable=False),
    Column("credential", String(300)),  # migration 0005: what proved the actor's identity
    Column("source", String(300), nullable=False),
    Column("schema_version", BigInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("prev_hash", BYTEA, nullable=False),
    Column("hash", BYTEA, nullable=False),
)
audit_head = Table(
    "audit_head", metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("hash", BYTEA, nullable=False),
)
HEAD_ID = 1
CHAINED = ("position", "event_id", "referral_id", "event_type", "occurred_at", "actor", "credential", "source",
           "schema_version", "data", "prev_hash", "hash")  # every column but recorded_at, which the database sets
RECORDED = text(f"SELECT event_id FROM {SCHEMA}.audit_events WHERE event_id = ANY(CAST(:ids AS UUID[]))")


def event_row(event: Event) -> dict[str, Any]:
    """The row recorded for an event, without its position and hashes."""
    return {"event_id": event.id, "referral_id": event.referral_id, "event_type": event.type,
            "occurred_at": event.time, "actor": event.actor, "credential": event.credential, "source": event.source,
            "schema_version": event.data.schema_version, "data": event.data.model_dump(mode="json")}


async def head(session: AsyncSession) -> Checkpoint:
    """The chain's head: (position, hash) of its last row; (0, GENESIS) while it is empty."""
    row = (await session.execute(select(audit_head.c.position, audit_head.c.hash)
                                 .where(audit_head.c.id == HEAD_ID))).one_or_none()
    if row is None:
        raise LookupError(f"{SCHEMA}.audit_head has no row: migration 0002 not applied, or the row was deleted")
    return Checkpoint(row.position, bytes(row.hash))


async def append(session: AsyncSession, events: list[Event]) -> list[Event]:
    """Append events not recorded before to the chain, in the caller's transaction; return them.

    Events whose id is already recorded, and repeats within the batch, are dropped. The head stays
    locked until the caller's transaction ends: commit soon after, and take it before any other
    lock the transaction takes, so that every recording transaction locks in the same order.
    Meant for READ COMMITTED (the default); under REPEATABLE READ a concurrent append makes the
    lock fail with a serialization error, to be retried.
    """
    first: dict = {}
    for event in events:
        first.setdefault(event.id, event)
    batch = list(first.values())
    if not batch:
        return []
    locked = (await session.execute(select(audit_head.c.position, audit_head.c.hash)
                                    .where(audit_head.c.id == HEAD_ID).with_for_update())).one_or_none()
    if locked is None:
        raise LookupError(f"{SCHEMA}.audit_head has no row: migration 0002 not applied, or the row was deleted")
    # Read after the lock: every append before ours has committed, so none of its rows is missed.
    recorded = set((await session.execute(RECORDED, {"ids": [event.id for event in batch]})).scalars())
    new = [event for event in batch if event.id not in recorded]
    if not new:
        return []
    rows = [event_row(event) for event in new]
    data = [chain.data_json(row["data"]) for row in rows]  # each event's data serialised once, then reused
    bodies = [chain.canonical_with_data(row, text) for row, text in zip(rows, data, strict=True)]
    linked = list(chain.links((locked.position, bytes(locked.hash)), bodies))
    # By COPY, in this transaction: data goes as the very text that was hashed, parsed into JSONB there.
    await copy_records(session, audit_events, CHAINED, [
        (position, row["event_id"], row["referral_id"], row["event_type"], row["occurred_at"], row["actor"],
         row["credential"], row["source"], row["schema_version"], text, prev_hash, row_hash)
        for row, text, (position, prev_hash, row_hash) in zip(rows, data, linked, strict=True)])
    last_position, _, last_hash = linked[-1]
    await session.execute(update(audit_head).where(audit_head.c.id == HEAD_ID)
                          .values(position=last_position, hash=last_hash))
    return new


async def verify(session: AsyncSession, checkpoint: tuple[int, bytes] | None = None) -> Finding | None:
    """The first broken link of the chain, or None when it is intact and contains the head (and the
    checkpoint, when given). Rows are streamed in position order, BATCH at a time.

    The head is read first: every row up to it has committed by then, so a concurrent append does
    not look like tampering. Rows appended after it are verified too, link by link.
    """
    try:
        anchor = await head(session)
    except LookupError as missing:
        return Finding(0, "deleted", str(missing))
    verifier = chain.Verifier(("the checkpoint", checkpoint), ("the head", anchor))
    stmt = select(audit_events).order_by(audit_events.c.position).execution_options(yield_per=BATCH)
    result = await session.stream(stmt)
    try:
        async for rows in result.mappings().partitions():
            if any(verifier.feed(row) for row in rows):
                break
    finally:
        await result.close()
    return verifier.finish()
