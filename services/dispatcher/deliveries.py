"""Every delivery the dispatcher owes, in Postgres: each report (a referral's dispatch) and each
agency answer to forward, with its state, so that nothing depends on a record staying on Kafka.

A delivery is `due` from the moment its event is routed until the platform has it (`reported`,
then `decided`; an answer: `delivered`) or it was given up (`failed`). Its `due_at` is when it must
have made progress: a lane taking it pushes that on, a retry sets it past its next attempt, and
a due delivery past it is put back on its lane by the reconciler (reconciler.py).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import (Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, and_, func, select,
                        text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db import insert_arrays
from shared.outbox import MAX_BACKOFF_DOUBLINGS

Executor = AsyncConnection | AsyncSession  # statements run on either, in the caller's transaction
REPORT, ANSWER = "report", "answer"
DUE, REPORTED, DECIDED, DELIVERED, FAILED = "due", "reported", "decided", "delivered", "failed"


def deliveries_table(metadata: MetaData) -> Table:
    table = Table(
        "deliveries", metadata,
        Column("event_id", PgUUID(as_uuid=True), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("referral_id", PgUUID(as_uuid=True), nullable=False),
        Column("dispatch", Integer, nullable=False),
        Column("platform", String(32), nullable=False),
        Column("state", String(16), nullable=False),
        Column("ticket_id", String(200)),
        Column("attempt", Integer, nullable=False, server_default="1"),
        Column("key", LargeBinary),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("redrives", Integer, nullable=False, server_default="0"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    Index("deliveries_due", table.c.due_at, postgresql_where=table.c.state == DUE)
    Index("deliveries_ticket", table.c.platform, table.c.ticket_id)
    Index("deliveries_referral", table.c.referral_id)
    return table


@dataclass(frozen=True)
class Owed:
    """A delivery to remember: what asked for it and the lane record that carries it."""

    event_id: UUID
    kind: str
    referral_id: UUID
    dispatch: int
    platform: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


class Deliveries:
    """The statements on the deliveries table, each prepared once."""

    COLUMNS = ("event_id", "kind", "referral_id", "dispatch", "platform", "state", "key", "value", "headers",
               "due_at")

    def __init__(self, table: Table):
        self.table, name = table, table.fullname
        # A delivery routed again (its event published again) keeps its row: the answer says its state,
        # whether it is new, and whether it is overdue (no lane has it: its record was lost).
        self._owe = insert_arrays(table, self.COLUMNS, (
            "ON CONFLICT (event_id) DO UPDATE SET updated_at = deliveries.updated_at "
            "RETURNING event_id, state, (xmax = 0) AS fresh, due_at <= now() AS overdue"),
            sent_as={"headers": ("VARCHAR", "CAST(headers AS JSONB)"),
                     "due_at": ("FLOAT", "now() + make_interval(secs => due_at)")})
        # The lane takes the due ones at the attempt they reached (a stale copy of a delivery parked for
        # a later attempt is not taken early) and, from before this table, unknown ones; it holds them.
        self._take = text(
            f"WITH given AS (SELECT * FROM unnest(CAST(:ids AS UUID[]), CAST(:attempts AS INT[])) "
            f"AS g (event_id, attempt)), "
            f"taken AS (UPDATE {name} d SET due_at = now() + make_interval(secs => :hold), updated_at = now() "
            f"FROM given g WHERE d.event_id = g.event_id AND d.state = '{DUE}' AND g.attempt >= d.attempt "
            f"RETURNING d.event_id) "
            f"SELECT g.event_id FROM given g WHERE g.event_id IN (SELECT event_id FROM taken) "
            f"OR NOT EXISTS (SELECT 1 FROM {name} d WHERE d.event_id = g.event_id)")
        # What came of a lane batch: one statement each, for any number of deliveries.
        self._delivered = text(
            f"UPDATE {name} d SET state = g.state, ticket_id = g.ticket_id, updated_at = now() FROM unnest("
            f"CAST(:ids AS UUID[]), CAST(:states AS VARCHAR[]), CAST(:tickets AS VARCHAR[])) AS g (event_id, state, "
            f"ticket_id) WHERE d.event_id = g.event_id AND d.state IN ('{DUE}', '{FAILED}')")
        self._fail = text(
            f"UPDATE {name} SET state = '{FAILED}', updated_at = now() WHERE event_id = ANY(CAST(:ids AS UUID[])) "
            f"AND state = '{DUE}' RETURNING event_id, kind, referral_id, dispatch, platform")
        self._retry_at = text(
            f"UPDATE {name} d SET attempt = g.attempt, updated_at = now(), due_at = now() + make_interval(secs => "
            f"g.due_in) FROM unnest(CAST(:ids AS UUID[]), CAST(:attempts AS INT[]), CAST(:due_in AS FLOAT[])) "
            f"AS g (event_id, attempt, due_in) WHERE d.event_id = g.event_id AND d.state = '{DUE}'")
        self._decided = text(
            f"UPDATE {name} d SET state = '{DECIDED}', updated_at = now() FROM unnest(CAST(:platforms AS VARCHAR[]), "
            f"CAST(:tickets AS VARCHAR[])) AS g (platform, ticket_id) WHERE d.kind = '{REPORT}' "
            f"AND d.platform = g.platform AND d.ticket_id = g.ticket_id")
        self._redriven = text(
            f"UPDATE {name} SET redrives = redrives + 1, updated_at = now(), due_at = now() + make_interval(secs => "
            f":after * power(2, least(redrives, {MAX_BACKOFF_DOUBLINGS}))) WHERE event_id = ANY(CAST(:ids AS UUID[]))")

    async def owe(self, session: AsyncSession, owed: Sequence[Owed], within_s: float) -> set[UUID]:
        """Remember deliveries (once per event), new ones `due` within within_s; those to put on their
        lane: new ones, and ones still due past their time (routed again after their record was lost)."""
        unique = list({o.event_id: o for o in owed}.values())
        if not unique:
            return set()
        rows = await session.execute(self._owe, {
            "event_id": [o.event_id for o in unique], "kind": [o.kind for o in unique],
            "referral_id": [o.referral_id for o in unique], "dispatch": [o.dispatch for o in unique],
            "platform": [o.platform for o in unique], "state": [DUE] * len(unique), "key": [o.key for o in unique],
            "value": [o.value for o in unique], "headers": [json.dumps(o.headers) for o in unique],
            "due_at": [within_s] * len(unique)})
        return {r.event_id for r in rows if r.state == DUE and (r.fresh or r.overdue)}

    async def take(self, session: AsyncSession, given: Sequence[tuple[UUID, int]], hold_s: float) -> set[UUID]:
        """Of these (event, attempt) pairs, the deliveries still due at that attempt, now held for hold_s."""
        return set((await session.execute(self._take, {"ids": [e for e, _ in given], "attempts": [a for _, a in given],
                                                       "hold": hold_s})).scalars())

    async def delivered(self, conn: Executor, done: Sequence[tuple[UUID, str, str]]) -> None:
        """Deliveries the platform took, as (event, REPORTED or DELIVERED, ticket); never a step back
        from `decided` (a late copy's receipt)."""
        if done:
            await conn.execute(self._delivered, {"ids": [d[0] for d in done], "states": [d[1] for d in done],
                                                 "tickets": [d[2] for d in done]})

    async def fail(self, conn: Executor, event_ids: Sequence[UUID]) -> dict:
        """Give due deliveries up; their rows (kind, referral_id, dispatch, platform) by event id, without
        those that were not due (delivered by another copy meanwhile, or not ours): nothing to record."""
        if not event_ids:
            return {}
        return {row.event_id: row for row in await conn.execute(self._fail, {"ids": list(event_ids)})}

    async def retry_at(self, conn: Executor, retries: Sequence[tuple[UUID, int, float]]) -> None:
        """Deliveries waiting for their next attempt, as (event, attempt, seconds from now before they
        count as stuck)."""
        if retries:
            await conn.execute(self._retry_at, {"ids": [r[0] for r in retries], "attempts": [r[1] for r in retries],
                                                "due_in": [r[2] for r in retries]})

    async def decided(self, conn: Executor, tickets: Sequence[tuple[str, str]]) -> None:
        """The reports whose tickets, as (platform, ticket id), the platform decided."""
        if tickets:
            await conn.execute(self._decided, {"platforms": [t[0] for t in tickets], "tickets": [t[1] for t in tickets]})

    async def claim_stuck(self, session: AsyncSession, limit: int, paused: Sequence[str] = ()) -> list:
        """Lock up to limit due deliveries past their due_at, skipping rows another instance holds and
        platforms paused (their circuit is open: their lanes wait, and so do their records)."""
        t = self.table
        stmt = (select(t).where(and_(t.c.state == DUE, t.c.due_at <= func.now(), t.c.platform.not_in(list(paused))))
                .order_by(t.c.due_at).limit(limit).with_for_update(skip_locked=True))
        return list(await session.execute(stmt))

    async def redriven(self, session: AsyncSession, event_ids: Sequence[UUID], after_s: float) -> None:
        await session.execute(self._redriven, {"ids": list(event_ids), "after": after_s})

    async def platform_of(self, session: AsyncSession, referral_id: UUID) -> str | None:
        """The platform a referral was reported to (its latest dispatch), if the dispatcher routed it."""
        t = self.table
        stmt = (select(t.c.platform).where(and_(t.c.referral_id == referral_id, t.c.kind == REPORT))
                .order_by(t.c.dispatch.desc()).limit(1))
        return (await session.execute(stmt)).scalar()

    async def stuck(self, session: AsyncSession, older_than) -> list:
        """Due deliveries routed before older_than, per kind and platform: count, oldest, re-drives."""
        t = self.table
        stmt = (select(t.c.kind, t.c.platform, func.count().label("count"), func.min(t.c.created_at).label("oldest"),
                       func.sum(t.c.redrives).label("redrives"))
                .where(and_(t.c.state == DUE, t.c.created_at < older_than))
                .group_by(t.c.kind, t.c.platform).order_by(t.c.kind, t.c.platform))
        return list(await session.execute(stmt))
