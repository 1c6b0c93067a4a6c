"""Intake's tables and the queries on them: accepted referrals and the transactional outbox."""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import (BigInteger, Column, DateTime, Identity, Integer, LargeBinary, MetaData, String,
                        Table, UniqueConstraint, delete, func, select, tuple_, update)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

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

outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", String, nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class Accepted:
    """What intake answers for one submission: the referral it is (new or first seen)."""

    referral_id: UUID
    platform: str
    canonical_url: str
    duplicate: bool


async def accept(session: AsyncSession, events: list[Event]) -> list[Accepted]:
    """Store new referrals and their outbox rows; return the first referral for replayed keys."""
    data: list[ReferralSubmitted] = [e.data for e in events]  # type: ignore[misc]
    rows = [
        {"referral_id": d.referral_id, "agency": d.agency, "idempotency_key": d.idempotency_key,
         "platform": d.platform.value, "canonical_url": d.canonical_url, "received_at": d.submitted_at,
         "submission": d.model_dump(mode="json")}
        for d in data
    ]
    stmt = insert(referrals).values(rows).on_conflict_do_nothing().returning(referrals.c.referral_id)
    created = set((await session.execute(stmt)).scalars())
    fresh = [e for e in events if e.referral_id in created]
    if fresh:
        await session.execute(insert(outbox), [_outbox_row(e) for e in fresh])
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
    keys = {(d.agency, d.idempotency_key) for d in replays}
    stmt = select(referrals).where(tuple_(referrals.c.agency, referrals.c.idempotency_key).in_(keys))
    return {
        (r.agency, r.idempotency_key): Accepted(r.referral_id, r.platform, r.canonical_url, True)
        for r in (await session.execute(stmt))
    }


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
    await session.execute(insert(outbox), [_outbox_row(event)])


def _outbox_row(event: Event) -> dict:
    key, value, headers = to_kafka(event)
    return {"topic": REFERRALS_SUBMITTED, "key": key, "value": value, "headers": headers}


async def claim_outbox(session: AsyncSession, limit: int) -> list:
    """Lock up to limit unsent rows, oldest first, skipping rows another relay holds."""
    stmt = select(outbox).order_by(outbox.c.id).limit(limit).with_for_update(skip_locked=True)
    return list(await session.execute(stmt))


async def delete_sent(session: AsyncSession, ids: list[int]) -> None:
    await session.execute(delete(outbox).where(outbox.c.id.in_(ids)))
