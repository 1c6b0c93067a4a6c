"""Outcomes' tables and the queries on them: the audit trail and each referral's state."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import (BigInteger, Column, DateTime, Identity, MetaData, String, Table, and_, func,
                        or_, select)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import Event

SCHEMA = "outcomes"
metadata = MetaData(schema=SCHEMA)

audit_events = Table(
    "audit_events", metadata,
    Column("position", BigInteger, Identity(), primary_key=True),
    Column("event_id", PgUUID(as_uuid=True), nullable=False, unique=True),
    Column("referral_id", PgUUID(as_uuid=True), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", String(300), nullable=False),
    Column("source", String(300), nullable=False),
    Column("schema_version", BigInteger, nullable=False),
    Column("data", JSONB, nullable=False),
)

STATE_COLUMNS = ("agency", "platform", "category", "url", "canonical_url", "priority", "case_reference",
                 "status", "ticket_id", "outcome", "reason", "failure_reason", "submitted_at",
                 "dispatched_at", "decided_at", "last_event_at")
referrals = Table(
    "referrals", metadata,
    Column("referral_id", PgUUID(as_uuid=True), primary_key=True),
    *(Column(c, DateTime(timezone=True)) if c.endswith("_at") else Column(c, String) for c in STATE_COLUMNS),
    Column("first_recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


async def append_event(session: AsyncSession, event: Event) -> bool:
    """Append event to the audit trail; False if its id was recorded before (a replay)."""
    stmt = insert(audit_events).values(
        event_id=event.id, referral_id=event.referral_id, event_type=event.type,
        occurred_at=event.time, actor=event.actor, source=event.source,
        schema_version=event.data.schema_version, data=event.data.model_dump(mode="json"),
    ).on_conflict_do_nothing(index_elements=["event_id"]).returning(audit_events.c.position)
    return (await session.execute(stmt)).scalar() is not None


async def load_state(session: AsyncSession, referral_id: UUID) -> dict:
    """The referral's state row, locked for this transaction; {} if there is none yet."""
    # Insert a stub first, so that two instances recording a new referral serialise on its row.
    await session.execute(insert(referrals).values(referral_id=referral_id).on_conflict_do_nothing())
    stmt = select(referrals).where(referrals.c.referral_id == referral_id).with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    return {k: v for k, v in row.items() if k != "first_recorded_at" and v is not None}


async def save_state(session: AsyncSession, state: dict) -> None:
    values = {c: state.get(c) for c in ("referral_id", *STATE_COLUMNS)}
    stmt = insert(referrals).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["referral_id"],
                                      set_={c: stmt.excluded[c] for c in STATE_COLUMNS})
    await session.execute(stmt)


async def history(session: AsyncSession, referral_id: UUID) -> list[dict]:
    """Every recorded event of a referral, in the order they happened."""
    stmt = (select(audit_events).where(audit_events.c.referral_id == referral_id)
            .order_by(audit_events.c.occurred_at, audit_events.c.position))
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


async def get_referral(session: AsyncSession, referral_id: UUID) -> dict | None:
    row = (await session.execute(select(referrals).where(referrals.c.referral_id == referral_id))).mappings().first()
    return dict(row) if row else None


async def search(session: AsyncSession, filters: dict[str, str], after: tuple[datetime, UUID] | None,
                 limit: int) -> list[dict]:
    """Referrals matching every filter, oldest first, keyset-paginated after a cursor."""
    stmt = select(referrals)
    for column, value in filters.items():
        stmt = stmt.where(referrals.c[column] == value)
    if after is not None:
        at, rid = after
        stmt = stmt.where(or_(referrals.c.first_recorded_at > at,
                              and_(referrals.c.first_recorded_at == at, referrals.c.referral_id > rid)))
    stmt = stmt.order_by(referrals.c.first_recorded_at, referrals.c.referral_id).limit(limit)
    return [dict(r) for r in (await session.execute(stmt)).mappings()]
