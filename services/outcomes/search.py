"""Auditors' search over outcomes.referrals: filters into a SQLAlchemy select, and a keyset cursor.

The order is (submitted_at, referral_id), NULL submitted_at last: submitted_at is the agency's
submission time, set once by intake, so a referral never moves once it has one, and referral_id
breaks ties. Referrals whose submission is not recorded yet (an event arrived before it) sort last.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes.db import referrals
from services.outcomes.domain import Status
from shared.events import Category, NoActionReason, Outcome, Platform

# A referral's state without its history: search results and CSV exports.
SUMMARY_COLUMNS = (
    "referral_id", "agency", "platform", "category", "url", "canonical_url", "priority", "case_reference",
    "status", "outcome", "reason", "ticket_id", "failure_reason", "submitted_at", "dispatched_at",
    "acknowledged_at", "information_requested_at", "decided_at", "closed_at", "last_event_at",
    "first_recorded_at", "overdue", "deadline", "dispatches", "reachable")
FULL_COLUMNS = (*SUMMARY_COLUMNS, "transitions", "anomalies")


class FilterError(ValueError):
    """A query parameter that cannot be used; `param` names it for the 422."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param, self.message = param, message


@dataclass(frozen=True)
class Filters:
    """What an auditor searches by; every given filter must hold (AND). Periods are [from, to)."""

    agency: str | None = None
    platform: Platform | None = None
    category: Category | None = None
    status: Status | None = None
    outcome: Outcome | None = None
    reason: NoActionReason | None = None
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None
    decided_from: datetime | None = None
    decided_to: datetime | None = None
    url: str | None = None
    url_prefix: str | None = None
    case_reference: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's position in the (submitted_at NULLS LAST, referral_id) order."""

    submitted_at: datetime | None
    referral_id: UUID


def parse_instant(param: str, value: str | None) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC if it has no offset); FilterError if neither."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(param, f"{value!r} is not an ISO 8601 date or date-time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def check_period(start: datetime | None, end: datetime | None, end_param: str) -> None:
    """FilterError naming end_param unless start is before end (when both are given)."""
    if start is not None and end is not None and end <= start:
        raise FilterError(end_param, "must be later than the start of the period")


def parse_filters(*, submitted_from: str | None = None, submitted_to: str | None = None,
                  decided_from: str | None = None, decided_to: str | None = None,
                  url_prefix: str | None = None, **exact: Any) -> Filters:
    """Filters from query-parameter values; FilterError naming the first bad one."""
    if url_prefix is not None and not url_prefix.startswith(("https://", "http://")):
        raise FilterError("url_prefix", "must be the start of a URL, such as https://facebook.com/groups/")
    times = {name: parse_instant(name, value) for name, value in (
        ("submitted_from", submitted_from), ("submitted_to", submitted_to),
        ("decided_from", decided_from), ("decided_to", decided_to))}
    check_period(times["submitted_from"], times["submitted_to"], "submitted_to")
    check_period(times["decided_from"], times["decided_to"], "decided_to")
    return Filters(**times, url_prefix=url_prefix, **exact)


def conditions(filters: Filters) -> list:
    """The WHERE conditions of filters over outcomes.referrals."""
    r, found = referrals.c, []
    for name in ("agency", "platform", "category", "status", "outcome", "reason", "case_reference"):
        value = getattr(filters, name)
        if value is not None:
            found.append(r[name] == (value.value if isinstance(value, StrEnum) else value))
    if filters.url is not None:
        found.append(r.canonical_url == filters.url)
    if filters.url_prefix is not None:
        found.append(r.canonical_url.startswith(filters.url_prefix, autoescape=True))
    # A NULL time never satisfies a comparison, so a referral without it is never in a period.
    for column, start, end in ((r.submitted_at, filters.submitted_from, filters.submitted_to),
                               (r.decided_at, filters.decided_from, filters.decided_to)):
        if start is not None:
            found.append(column >= start)
        if end is not None:
            found.append(column < end)
    return found


def after(cursor: Cursor):
    """Rows strictly after cursor in the (submitted_at NULLS LAST, referral_id) order."""
    r = referrals.c
    if cursor.submitted_at is None:
        return and_(r.submitted_at.is_(None), r.referral_id > cursor.referral_id)
    return or_(r.submitted_at > cursor.submitted_at,
               and_(r.submitted_at == cursor.submitted_at, r.referral_id > cursor.referral_id),
               r.submitted_at.is_(None))


def statement(filters: Filters, columns: tuple[str, ...] = SUMMARY_COLUMNS, cursor: Cursor | None = None,
              limit: int | None = None) -> Select:
    """SELECT the columns of every referral matching filters, in page order, after cursor."""
    stmt = select(*(referrals.c[c] for c in columns)).where(*conditions(filters))
    if cursor is not None:
        stmt = stmt.where(after(cursor))
    stmt = stmt.order_by(referrals.c.submitted_at.asc().nulls_last(), referrals.c.referral_id.asc())
    return stmt if limit is None else stmt.limit(limit)


def encode_cursor(row: dict) -> str:
    """The opaque cursor of the page that ends with row."""
    at = row["submitted_at"].astimezone(UTC).isoformat() if row["submitted_at"] else "-"
    return base64.urlsafe_b64encode(f"r1|{at}|{row['referral_id']}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> Cursor:
    """The position a cursor from encode_cursor stands for; FilterError naming `cursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        tag, at, rid = raw.split("|")
        if tag != "r1":
            raise ValueError(tag)
        submitted_at = None if at == "-" else datetime.fromisoformat(at)
        if submitted_at is not None and submitted_at.tzinfo is None:
            raise ValueError(at)
        return Cursor(submitted_at, UUID(rid))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise FilterError("cursor", "not a cursor this API issued") from None


async def search(session: AsyncSession, filters: Filters, cursor: Cursor | None,
                 limit: int) -> tuple[list[dict], str | None]:
    """One page of matching referrals and the cursor of the next page (None on the last)."""
    result = await session.execute(statement(filters, SUMMARY_COLUMNS, cursor, limit + 1))
    rows = [dict(row) for row in result.mappings()]
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1])
