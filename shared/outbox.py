"""The transactional outbox of every service that publishes events, kept until its readers confirm.

A service writes the events it owes in the same transaction as the change they record (`queue`);
a relay publishes them. A row stays after publishing until every service that reads its topic
sent a receipt for it (shared/receipts.py): an event the broker lost (an in-memory broker
restarted, retention, a record nobody replayed) is published again with the same id once its
`next_attempt_at` passes, and again after a doubling delay until it is confirmed. Readers are
idempotent on the event id, so a re-drive of an event that had arrived changes nothing.

Rows are claimed FOR UPDATE SKIP LOCKED, never by 'id > last seen' (sequences commit out of
order): any number of relays share one table. A relay claims rows and notes them sent in one
statement (`take`), publishes them, and only then commits: a crash or a failed publish rolls the
note back, and the rows are due again.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (ARRAY, BigInteger, Boolean, Column, DateTime, Identity, Index, Integer, LargeBinary, MetaData,
                        String, Table, func, select, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import insert_arrays
from shared.topics import readers_of

MAX_BACKOFF_DOUBLINGS = 6  # a re-drive waits at most 64 times the bound


@dataclass(frozen=True)
class Message:
    """One event as it goes onto Kafka."""

    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        return self.headers["ce_id"]


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", PgUUID(as_uuid=True), nullable=False),
        Column("topic", String, nullable=False),
        Column("key", LargeBinary, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("awaiting", ARRAY(String(32)), nullable=False, server_default="{}"),
        Column("published_at", DateTime(timezone=True)),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("redrives", Integer, nullable=False, server_default="0"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    Index("outbox_event_id", table.c.event_id)
    Index("outbox_next_attempt_at", table.c.next_attempt_at)
    return table


class Outbox:
    """The statements on one service's outbox table, each prepared once."""

    COLUMNS = ("event_id", "topic", "key", "value", "headers", "awaiting")

    def __init__(self, table: Table):
        self.table = table
        name = table.fullname
        # In list order: ids, and so sending, follow it. awaiting travels as "a,b" and becomes an array.
        self._insert = insert_arrays(table, self.COLUMNS, sent_as={
            "headers": ("VARCHAR", "CAST(headers AS JSONB)"),
            "awaiting": ("VARCHAR", "string_to_array(awaiting, ',')")})  # '' becomes {}
        # Never-sent rows first: a backlog of unconfirmed ones must not hold up fresh events. The SET
        # sees each row as it was: a re-drive is counted, and the next one waits twice as long.
        self._take = text(
            f"WITH due AS (SELECT id, published_at IS NOT NULL AS again FROM {name} WHERE next_attempt_at <= now() "
            f"ORDER BY published_at IS NOT NULL, id LIMIT :limit FOR UPDATE SKIP LOCKED) "
            f"UPDATE {name} o SET published_at = coalesce(o.published_at, now()), "
            f"redrives = o.redrives + CAST(due.again AS INT), "
            f"next_attempt_at = now() + make_interval(secs => :after * power(2, least(o.redrives, "
            f"{MAX_BACKOFF_DOUBLINGS}))) FROM due WHERE o.id = due.id "
            f"RETURNING o.id, o.event_id, o.topic, o.key, o.value, o.headers, o.awaiting, o.redrives, due.again"
        ).columns(*(table.c[c] for c in ("id", "event_id", "topic", "key", "value", "headers", "awaiting",
                                         "redrives")), again=Boolean)
        # Which rows it emptied: only those are deleted, by key, and no DELETE runs for a receipt
        # that leaves each row another reader to wait for.
        self._confirm = text(f"UPDATE {name} SET awaiting = array_remove(awaiting, CAST(:by AS VARCHAR)) "
                             f"WHERE event_id = ANY(CAST(:ids AS UUID[])) AND CAST(:by AS VARCHAR) = ANY(awaiting) "
                             f"RETURNING id, cardinality(awaiting) = 0 AS done")
        self._done = text(f"DELETE FROM {name} WHERE id = ANY(CAST(:ids AS BIGINT[])) AND cardinality(awaiting) = 0")

    async def queue(self, session: AsyncSession, messages: Sequence[Message]) -> None:
        """Queue messages in the caller's transaction, in one statement, to be sent in this order;
        each is kept until every service reading its topic confirmed it."""
        if not messages:
            return
        await session.execute(self._insert, {
            "event_id": [m.event_id for m in messages], "topic": [m.topic for m in messages],
            "key": [m.key for m in messages], "value": [m.value for m in messages],
            "headers": [json.dumps(m.headers) for m in messages],
            "awaiting": [",".join(readers_of(m.topic)) for m in messages]})

    async def take(self, session: AsyncSession, limit: int, redrive_after_s: float) -> list:
        """Lock up to limit rows due to be sent (new, or not confirmed in time), never-sent first,
        skipping rows another relay holds, and note them sent: each is sent again if not confirmed
        within the bound (doubling each time). In sending order; `again` on a re-drive, `redrives`
        counting it. The caller publishes them before it commits."""
        rows = list(await session.execute(self._take, {"limit": limit, "after": redrive_after_s}))
        rows.sort(key=lambda r: (r.again, r.id))
        return rows

    async def sent(self, session: AsyncSession, rows: Sequence) -> None:
        """Once rows are published: those nobody reads are done."""
        if unread := [r.id for r in rows if not r.awaiting]:
            await session.execute(self._done, {"ids": unread})

    async def confirm(self, session: AsyncSession, by: str, event_ids: Sequence[str]) -> int:
        """Note that service `by` has the events; delete those every reader has. Rows confirmed."""
        confirmed = list(await session.execute(self._confirm, {"by": by, "ids": list(event_ids)}))
        if done := [r.id for r in confirmed if r.done]:
            await session.execute(self._done, {"ids": done})
        return len(confirmed)

    async def waiting(self, session: AsyncSession, older_than: datetime) -> list:
        """What is unconfirmed since before older_than, per topic and reader: count, oldest, re-drives."""
        t = self.table
        reader = func.unnest(t.c.awaiting).label("reader")
        inner = select(t.c.topic, reader, t.c.created_at, t.c.redrives, t.c.published_at).where(
            t.c.created_at < older_than).subquery()
        stmt = (select(inner.c.topic, inner.c.reader, func.count().label("count"),
                       func.min(inner.c.created_at).label("oldest"), func.sum(inner.c.redrives).label("redrives"),
                       func.count().filter(inner.c.published_at.is_(None)).label("unsent"))
                .group_by(inner.c.topic, inner.c.reader).order_by(inner.c.topic, inner.c.reader))
        return list(await session.execute(stmt))

    async def unconfirmed_by(self, session: AsyncSession, reader: str, limit: int) -> int:
        """How many events `reader` has not confirmed yet, counted up to limit (a bounded scan)."""
        t = self.table
        some = select(t.c.id).where(t.c.awaiting.any_() == reader).limit(limit).subquery()
        return (await session.execute(select(func.count()).select_from(some))).scalar_one()
