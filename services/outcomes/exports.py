"""Exports of every referral matching a search, streamed as CSV or NDJSON a batch at a time.

The rows come from a server-side cursor (AsyncSession.stream with yield_per), so neither the
database driver nor this process ever holds more than one batch of them.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes import search
from services.outcomes.search import FULL_COLUMNS, SUMMARY_COLUMNS, Filters

BATCH = 1000
CSV_COLUMNS = SUMMARY_COLUMNS
NDJSON_COLUMNS = FULL_COLUMNS
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection"): case
# references, URLs, ticket ids and reasons come from agencies and platforms, and auditors open exports in Excel.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One CSV field: ISO 8601 UTC times, true/false, empty for NULL, text as it is unless a
    spreadsheet would take it for a formula: then after a single quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # Only text is neutralised: -3 is a number, written as one.
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as RFC 4180 CSV: fields quoted when they need it, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} in JSON")


def ndjson_line(row: dict[str, Any]) -> str:
    """One referral as a line of JSON, times in ISO 8601 UTC."""
    return json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":")) + "\n"


async def batches(session: AsyncSession, filters: Filters, columns: tuple[str, ...],
                  size: int = BATCH) -> AsyncIterator[list[dict]]:
    """Every matching row in page order, `size` at a time, from a server-side cursor."""
    stmt = search.statement(filters, columns).execution_options(yield_per=size)
    result = await session.stream(stmt)
    try:
        async for partition in result.mappings().partitions():
            yield partition
    finally:
        await result.close()


async def csv_chunks(session: AsyncSession, filters: Filters, size: int = BATCH) -> AsyncIterator[str]:
    """The CSV export: the header row, then one chunk of rows per batch."""
    yield csv_text([CSV_COLUMNS])
    async for rows in batches(session, filters, CSV_COLUMNS, size):
        yield csv_text([row[c] for c in CSV_COLUMNS] for row in rows)


async def ndjson_chunks(session: AsyncSession, filters: Filters, size: int = BATCH) -> AsyncIterator[str]:
    """The NDJSON export, transitions and anomalies included: one chunk of lines per batch."""
    async for rows in batches(session, filters, NDJSON_COLUMNS, size):
        yield "".join(ndjson_line(dict(row)) for row in rows)
