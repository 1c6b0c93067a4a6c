"""Outcomes' tables and the queries on them: the audit trail and each referral's state."""

from uuid import UUID

from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, func, select)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes.audit import audit_events
from shared.events import EVENT_TYPES, Event

SCHEMA = "outcomes"
metadata = MetaData(schema=SCHEMA)

TIME_COLUMNS = ("submitted_at", "dispatched_at", "acknowledged_at", "information_requested_at", "decided_at",
                "closed_at", "last_event_at", "deadline")
TEXT_COLUMNS = ("agency", "platform", "category", "url", "canonical_url", "priority", "case_reference", "status",
                "ticket_id", "outcome", "reason", "failure_reason")
referrals = Table(
    "referrals", metadata,
    Column("referral_id", PgUUID(as_uuid=True), primary_key=True),
    *(Column(c, String) for c in TEXT_COLUMNS),
    *(Column(c, DateTime(timezone=True)) for c in TIME_COLUMNS),
    Column("overdue", Boolean, nullable=False),
    Column("dispatches", Integer, nullable=False),
    Column("reachable", Boolean),
    Column("transitions", JSONB, nullable=False),
    Column("anomalies", JSONB, nullable=False),
    Column("first_recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
STATE_COLUMNS = (*TEXT_COLUMNS, *TIME_COLUMNS, "overdue", "dispatches", "reachable", "transitions", "anomalies")
_insert = insert(referrals)
UPSERT_STATE = _insert.on_conflict_do_update(index_elements=["referral_id"],
                                             set_={c: _insert.excluded[c] for c in STATE_COLUMNS})


async def save_states(session: AsyncSession, states: dict[UUID, dict]) -> None:
    """Write referrals' projected states in one statement, creating rows the first time."""
    if not states:
        return
    rows = [{"referral_id": rid, **{c: state.get(c) for c in STATE_COLUMNS}} for rid, state in states.items()]
    await session.execute(UPSERT_STATE, rows)  # one cached statement, rows sent as its parameters


async def history_events(session: AsyncSession, referral_ids: list[UUID]) -> dict[UUID, list[Event]]:
    """Every recorded event of these referrals, as events again, by referral."""
    stmt = select(audit_events).where(audit_events.c.referral_id.in_(referral_ids))
    found: dict[UUID, list[Event]] = {rid: [] for rid in referral_ids}
    for row in (await session.execute(stmt)).mappings():
        data = EVENT_TYPES[row["event_type"]].model_validate(row["data"])
        found[row["referral_id"]].append(Event(id=row["event_id"], source=row["source"], actor=row["actor"],
                                                time=row["occurred_at"], data=data))
    return found


async def history(session: AsyncSession, referral_id: UUID) -> list[dict]:
    """Every recorded event of a referral, in the order they happened."""
    stmt = (select(audit_events).where(audit_events.c.referral_id == referral_id)
            .order_by(audit_events.c.occurred_at, audit_events.c.position))
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


async def get_referral(session: AsyncSession, referral_id: UUID) -> dict | None:
    row = (await session.execute(select(referrals).where(referrals.c.referral_id == referral_id))).mappings().first()
    return dict(row) if row else None
