"""The record of auditors' queries: who asked what, when, and how many rows they got back.

outcomes.auditor_queries is append-only (migration 0004 refuses UPDATE and DELETE). A query is
recorded in the same transaction as the read it answers, so an answer is never given unrecorded.
"""

import base64
import binascii
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes.db import SCHEMA
from services.outcomes.search import FilterError

auditor_queries = Table(
    "auditor_queries", MetaData(schema=SCHEMA),
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("credential", Text),  # migration 0005
    Column("route", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("rows", Integer),
)


async def record(session: AsyncSession, actor: str, credential: str | None, route: str, params: dict[str, Any],
                 rows: int | None) -> int:
    """Record a query in session's transaction (the caller commits); its id."""
    stmt = insert(auditor_queries).values(actor=actor, credential=credential, route=route, params=params, rows=rows)
    return (await session.execute(stmt.returning(auditor_queries.c.id))).scalar_one()


def encode_cursor(query_id: int) -> str:
    """The opaque cursor of the page of queries that ends with query_id."""
    return base64.urlsafe_b64encode(f"q1|{query_id}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> int:
    """The query id a cursor stands for; FilterError naming `cursor` if this API did not issue it."""
    try:
        tag, query_id = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().split("|")
        if tag != "q1":
            raise ValueError(tag)
        return int(query_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise FilterError("cursor", "not a cursor this API issued") from None


async def newest_first(session: AsyncSession, before: int | None, limit: int,
                       actor: str | None = None) -> tuple[list[dict], str | None]:
    """A page of recorded queries, newest first, older than `before`; and the next page's cursor."""
    q = auditor_queries.c
    stmt = select(auditor_queries).order_by(q.id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(q.id < before)
    if actor is not None:
        stmt = stmt.where(q.actor == actor)
    rows = [dict(row) for row in (await session.execute(stmt)).mappings()]
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1]["id"])


def query_params(multi_items: list[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as sent: one value as a string, a repeated parameter as a list."""
    params: dict[str, Any] = {}
    for key, value in multi_items:
        if key in params:
            params[key] = [*params[key], value] if isinstance(params[key], list) else [params[key], value]
        else:
            params[key] = value
    return params
