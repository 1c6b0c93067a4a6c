"""Intake's tables and the queries on them: accepted referrals, the transactional outbox, and the
webhook-ids of accepted signed records."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import (BigInteger, Column, DateTime, Integer, MetaData, String,
                        Table, UniqueConstraint, func, select, text, update)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import insert_arrays
from shared.outbox import Message, Outbox, outbox_table
from shared.events import Event, ReferralSubmitted, to_kafka
from shared.topics import REFERRALS_SUBMITTED

SCHEMA = "intake"
metadata = MetaData(schema=SCHEMA)

referrals = Table(
    "referrals", metadata,
    Column("referral_id", PgUUID(as_uuid=True), primary_key=True),
    Column("agency", String(200), nullable=False),
    Column("idempotency_key", String(200)),
    Column("platform", String(32), nullable=False),
    Column("canonical_url", String, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("submission", JSONB),
    Column("dispatches", Integer, nullable=False, server_default="1"),
    UniqueConstraint("agency", "idempotency_key", name="referrals_agency_idempotency_key"),
)

outbox_rows = outbox_table(metadata)
OUTBOX = Outbox(outbox_rows)

webhook_ids = Table(
    "webhook_ids", metadata,
    Column("agency", String(200), primary_key=True),
    Column("webhook_id", String(200), primary_key=True),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("topic", String, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class Accepted:
    """What intake answers for one submission: the referral it is (new or first seen)."""

    referral_id: UUID
    platform: str
    canonical_url: str
    duplicate: bool


REFERRAL_COLUMNS = ("referral_id", "agency", "idempotency_key", "platform", "canonical_url", "received_at",
                    "submission")
# Rows are inserted in list order: of two with one (agency, idempotency key), the first is stored.
INSERT_REFERRALS = insert_arrays(referrals, REFERRAL_COLUMNS, "ON CONFLICT DO NOTHING RETURNING referral_id")
FIRST_SEEN = text(f"SELECT r.referral_id, r.platform, r.canonical_url, r.agency, r.idempotency_key "
                  f"FROM {referrals.fullname} r JOIN unnest(CAST(:agency AS VARCHAR[]), CAST(:key AS VARCHAR[])) "
                  f"AS k (agency, idempotency_key) USING (agency, idempotency_key)")


async def accept(session: AsyncSession, events: list[Event]) -> list[Accepted]:
    """Store new referrals and their outbox rows; return the first referral for replayed keys.

    One statement per table, whatever the number of events; a key repeated among the events is a
    replay of its first occurrence, as if they had come one after another.
    """
    data: list[ReferralSubmitted] = [e.data for e in events]  # type: ignore[misc]
    messages = [to_kafka(e) for e in events]  # the event's value is the submission's JSON: made once
    rows = {"referral_id": [d.referral_id for d in data], "agency": [d.agency for d in data],
            "idempotency_key": [d.idempotency_key for d in data], "platform": [d.platform.value for d in data],
            "canonical_url": [d.canonical_url for d in data], "received_at": [d.submitted_at for d in data],
            "submission": [value.decode() for _, value, _ in messages]}
    created = set((await session.execute(INSERT_REFERRALS, rows)).scalars())
    fresh = [m for e, m in zip(events, messages, strict=True) if e.referral_id in created]
    if fresh:
        await _queue(session, fresh)
    existing = await _first_seen(session, [d for d in data if d.referral_id not in created])
    results = []
    for d in data:
        if d.referral_id in created:
            results.append(Accepted(d.referral_id, d.platform.value, d.canonical_url, False))
        else:
            results.append(existing[(d.agency, d.idempotency_key)])
    return results


async def _first_seen(session: AsyncSession, replays: list[ReferralSubmitted]) -> dict:
    if not replays:
        return {}
    keys = list({(d.agency, d.idempotency_key) for d in replays})
    found = await session.execute(FIRST_SEEN, {"agency": [a for a, _ in keys], "key": [k for _, k in keys]})
    return {(r.agency, r.idempotency_key): Accepted(r.referral_id, r.platform, r.canonical_url, True) for r in found}


@dataclass(frozen=True)
class Position:
    """Where a record was read."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class WebhookId:
    """A signed record's webhook-id under its agency, when it was signed and where it was read."""

    agency: str
    webhook_id: str
    signed_at: datetime
    position: Position


ID_COLUMNS = ("agency", "webhook_id", "signed_at", "topic", "partition", "offset")
# In list order: of two records with one id, the first is remembered.
INSERT_IDS = insert_arrays(webhook_ids, ID_COLUMNS,
                           'ON CONFLICT DO NOTHING RETURNING agency, webhook_id, topic, partition, "offset"')
STORED_IDS = text(f'SELECT w.agency, w.webhook_id, w.topic, w.partition, w."offset" FROM {webhook_ids.fullname} w '
                  f"JOIN unnest(CAST(:agency AS VARCHAR[]), CAST(:webhook_id AS VARCHAR[])) "
                  f"AS k (agency, webhook_id) USING (agency, webhook_id)")
# An id that conflicted, then was gone by the next statement, was forgotten in between (signed
# longer ago than the replay window): refused, as the record it conflicted with was accepted.
FORGOTTEN = Position("forgotten", -1, -1)
FORGET_IDS = text(f"DELETE FROM {webhook_ids.fullname} WHERE ctid = ANY(ARRAY("
                  f"SELECT ctid FROM {webhook_ids.fullname} WHERE signed_at < :before LIMIT :chunk))")


async def claim_webhook_ids(session: AsyncSession, ids: list[WebhookId]) -> list[Position | None]:
    """Remember each id with where its record was read, in the caller's transaction. For each: None
    if its record may be stored (a new id, or one remembered from this very position: the same
    record delivered again), else the position the id was first accepted from (a replay)."""
    if not ids:
        return []
    rows = {"agency": [i.agency for i in ids], "webhook_id": [i.webhook_id for i in ids],
            "signed_at": [i.signed_at for i in ids], "topic": [i.position.topic for i in ids],
            "partition": [i.position.partition for i in ids], "offset": [i.position.offset for i in ids]}
    stored = _positions(await session.execute(INSERT_IDS, rows))
    if conflicts := list({(i.agency, i.webhook_id) for i in ids} - stored.keys()):
        stored |= _positions(await session.execute(STORED_IDS, {"agency": [a for a, _ in conflicts],
                                                                "webhook_id": [w for _, w in conflicts]}))
    firsts = [stored.get((i.agency, i.webhook_id), FORGOTTEN) for i in ids]
    return [None if first == i.position else first for i, first in zip(ids, firsts, strict=True)]


def _positions(rows) -> dict[tuple[str, str], Position]:
    return {(r.agency, r.webhook_id): Position(r.topic, r.partition, r.offset) for r in rows}


async def forget_webhook_ids(session: AsyncSession, signed_before: datetime, chunk: int) -> int:
    """Forget up to chunk ids signed before signed_before; how many were forgotten."""
    return (await session.execute(FORGET_IDS, {"before": signed_before, "chunk": chunk})).rowcount


async def referral_for_action(session: AsyncSession, referral_id: UUID, redispatch: bool):
    """The stored referral (locked), with its dispatch count bumped if the action dispatches again."""
    stmt = select(referrals).where(referrals.c.referral_id == referral_id).with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    if row is None or not redispatch:
        return row
    await session.execute(update(referrals).where(referrals.c.referral_id == referral_id)
                          .values(dispatches=referrals.c.dispatches + 1))
    return {**row, "dispatches": row["dispatches"] + 1}


async def queue(session: AsyncSession, event: Event) -> None:
    """Queue one more event on the outbox, in the caller's transaction."""
    await _queue(session, [to_kafka(event)])


async def _queue(session: AsyncSession, messages: list[tuple[bytes, bytes, dict[str, str]]]) -> None:
    """Queue (key, value, headers) on the outbox in one statement, to be sent in this order."""
    await OUTBOX.queue(session, [Message(REFERRALS_SUBMITTED, key, value, headers) for key, value, headers in messages])
