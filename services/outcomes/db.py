"""Outcomes' tables and the queries on them: the audit trail and each referral's state."""

import json
from collections.abc import Mapping
from uuid import UUID

from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, any_, bindparam, func,
                        select, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes.audit import audit_events
from services.outcomes.domain import CURSOR
from shared.db import copy_records
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
    # Migration 0006: the last event folded into the state (with last_event_at); null on rows
    # folded before, which are projected from their history again at their next event.
    Column("last_event_id", PgUUID(as_uuid=True)),
    Column("last_event_type", String(64)),
)
STATE_COLUMNS = (*TEXT_COLUMNS, *TIME_COLUMNS, "overdue", "dispatches", "reachable", "transitions", "anomalies")
JSON_COLUMNS = ("transitions", "anomalies")
SAVED = (*STATE_COLUMNS, *CURSOR)
# States are COPYed into a temporary table of the connection (emptied at every commit), then
# upserted from it in one statement: no per-value work in SQLAlchemy, no array checks in asyncpg.
STAGED = "outcomes_referral_states"
STAGE_STATES = text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGED} ON COMMIT DELETE ROWS AS "
                    f"SELECT referral_id, {', '.join(SAVED)} FROM {referrals.fullname} WITH NO DATA")
staged_states = Table(STAGED, MetaData(), Column("referral_id", PgUUID(as_uuid=True)),
                      *(Column(c, referrals.c[c].type) for c in SAVED))
UPSERT_STATES = text(f"INSERT INTO {referrals.fullname} (referral_id, {', '.join(SAVED)}) "
                     f"SELECT referral_id, {', '.join(SAVED)} FROM {STAGED} "
                     "ON CONFLICT (referral_id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in SAVED))
LOAD_STATES = select(referrals.c.referral_id, *(referrals.c[c] for c in SAVED)).where(
    referrals.c.referral_id == any_(bindparam("ids", type_=ARRAY(PgUUID(as_uuid=True)))))
HISTORY = text(f"SELECT event_id, referral_id, event_type, occurred_at, actor, source, CAST(data AS TEXT) AS data "
               f"FROM {audit_events.fullname} WHERE referral_id = ANY(CAST(:ids AS UUID[]))")


async def load_states(session: AsyncSession, referral_ids: list[UUID]) -> dict[UUID, dict]:
    """The stored states of these referrals (with the last event folded into each), by referral;
    referrals with no state yet are left out."""
    rows = await session.execute(LOAD_STATES, {"ids": referral_ids})
    return {row[0]: dict(zip(SAVED, row[1:], strict=True)) for row in rows}


async def save_states(session: AsyncSession, states: dict[UUID, dict]) -> None:
    """Write referrals' states (and the last event folded into each) in the session's transaction,
    creating rows the first time. The transaction must have begun in the database already."""
    if not states:
        return
    json_at = [SAVED.index(c) for c in JSON_COLUMNS]
    rows = []
    for rid, state in states.items():
        row = [rid, *(state.get(c) for c in SAVED)]
        for i in json_at:  # sent as JSON text: the JSONB codec takes text (most anomalies lists are empty)
            row[i + 1] = json.dumps(row[i + 1]) if row[i + 1] else "[]"
        rows.append(row)
    await session.execute(STAGE_STATES)
    await copy_records(session, staged_states, staged_states.c.keys(), rows)
    await session.execute(UPSERT_STATES)


async def history_events(session: AsyncSession, referral_ids: list[UUID],
                         known: Mapping[UUID, Event] | None = None) -> dict[UUID, list[Event]]:
    """Every recorded event of these referrals, as events again, by referral.

    Events in known (by id), such as the ones this transaction just appended, are not parsed again.
    """
    known = known or {}
    found: dict[UUID, list[Event]] = {rid: [] for rid in referral_ids}
    for row in await session.execute(HISTORY, {"ids": referral_ids}):
        if (event := known.get(row.event_id)) is None:  # validated when it was recorded: the envelope is not again
            event = Event.model_construct(id=row.event_id, source=row.source, actor=row.actor, time=row.occurred_at,
                                          data=EVENT_TYPES[row.event_type].model_validate_json(row.data))
        found[row.referral_id].append(event)
    return found


async def history(session: AsyncSession, referral_id: UUID) -> list[dict]:
    """Every recorded event of a referral, in the order they happened."""
    stmt = (select(audit_events).where(audit_events.c.referral_id == referral_id)
            .order_by(audit_events.c.occurred_at, audit_events.c.position))
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


async def get_referral(session: AsyncSession, referral_id: UUID) -> dict | None:
    row = (await session.execute(select(referrals).where(referrals.c.referral_id == referral_id))).mappings().first()
    return dict(row) if row else None
