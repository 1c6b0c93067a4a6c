"""Auditors' API: search, exports, reports, and the record of every query made of them.

Auditors read everything; an agency reads only its own referrals (its searches, exports and
reports are limited to its agency, and naming another agency is refused). Every query is recorded
under the caller's authenticated identity in outcomes.auditor_queries, in the same transaction as
the read, before the answer is sent; only oversight reads that record.
"""

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes import exports, queries_log, reports, search
from services.outcomes.reports import Article22Report, AttritionRow, GroupBy, Scope
from services.outcomes.domain import Status
from services.outcomes.search import FilterError, Filters
from shared.auth import DENIED, Caller, Principal, Role, require
from shared.events import Category, NoActionReason, Outcome, Platform

Limit = Annotated[int, Query(ge=1, le=500, description="Most items on one page.")]
PageCursor = Annotated[str | None, Query(max_length=300, description="next_cursor of the previous page.")]


class ReferralSummary(BaseModel):
    referral_id: UUID
    agency: str | None = None
    platform: str | None = None
    category: str | None = None
    url: str | None = None
    canonical_url: str | None = None
    priority: str | None = None
    case_reference: str | None = None
    status: str | None = None
    outcome: str | None = None
    reason: str | None = None
    ticket_id: str | None = None
    failure_reason: str | None = None
    submitted_at: datetime | None = None
    dispatched_at: datetime | None = None
    acknowledged_at: datetime | None = None
    information_requested_at: datetime | None = None
    decided_at: datetime | None = None
    closed_at: datetime | None = None
    last_event_at: datetime | None = None
    first_recorded_at: datetime | None = None
    overdue: bool | None = None
    deadline: datetime | None = None
    dispatches: int | None = None
    reachable: bool | None = None


class ReferralPage(BaseModel):
    items: list[ReferralSummary]
    next_cursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last.")


class AttritionReport(BaseModel):
    start: datetime | None = Field(None, description="Submitted on or after (UTC); null: since the beginning.")
    end: datetime | None = Field(None, description="Submitted before (UTC); null: up to now.")
    agency: str | None = None
    platform: str | None = None
    group_by: GroupBy
    rows: list[AttritionRow]


class AuditorQuery(BaseModel):
    id: int
    at: datetime
    actor: str
    credential: str | None = Field(None, description="What proved the actor's identity (key:<id>, oidc:...).")
    route: str
    params: dict[str, Any]
    rows: int | None = Field(None, description="Rows returned; null for exports (recorded as they start).")


class AuditorQueryPage(BaseModel):
    items: list[AuditorQuery]
    next_cursor: str | None = None


def unprocessable(exc: FilterError) -> HTTPException:
    """A 422 naming the query parameter, in FastAPI's own error shape."""
    return HTTPException(422, [{"type": "value_error", "loc": ["query", exc.param], "msg": exc.message}])


def recordable_query(request: Request) -> None:
    """422 naming a query parameter, known or not, that cannot be recorded: Postgres text holds no NUL."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name + value:
            raise unprocessable(FilterError(name, "must not contain a NUL character"))


READERS = require(Role.auditor, Role.agency)
# The role first: an anonymous caller learns nothing, not even that a parameter is bad.
router = APIRouter(prefix="/v1", tags=["auditors"], dependencies=[READERS, Depends(recordable_query)],
                   responses=DENIED)
oversight = APIRouter(prefix="/v1", tags=["oversight"], dependencies=[require(Role.oversight),
                                                                      Depends(recordable_query)], responses=DENIED)


def own_agency(caller: Principal, asked: str | None) -> str | None:
    """The agency a read is limited to: the caller's own if it is an agency (asking for another is
    refused, 403), else what was asked."""
    if Role.agency not in caller.roles:
        return asked
    if asked is not None and asked != caller.agency:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an agency reads only its own referrals")
    return caller.agency


def referral_filters(
    caller: Caller,
    agency: Annotated[str | None, Query(max_length=200)] = None,
    platform: Platform | None = None,
    category: Category | None = None,
    status: Status | None = None,
    outcome: Outcome | None = None,
    reason: Annotated[NoActionReason | None, Query(description="Reason of a rejection.")] = None,
    submitted_from: Annotated[str | None, Query(description="ISO date or date-time, UTC; inclusive.")] = None,
    submitted_to: Annotated[str | None, Query(description="ISO date or date-time, UTC; exclusive.")] = None,
    decided_from: Annotated[str | None, Query(description="ISO date or date-time, UTC; inclusive.")] = None,
    decided_to: Annotated[str | None, Query(description="ISO date or date-time, UTC; exclusive.")] = None,
    url: Annotated[str | None, Query(max_length=2048, description="The canonical URL, exactly.")] = None,
    url_prefix: Annotated[str | None, Query(max_length=2048, description="Start of the canonical URL.")] = None,
    case_reference: Annotated[str | None, Query(max_length=200)] = None,
) -> Filters:
    """The search filters of a request; 422 naming a parameter that cannot be used."""
    try:
        return search.parse_filters(
            agency=own_agency(caller, agency), platform=platform, category=category, status=status, outcome=outcome, reason=reason,
            submitted_from=submitted_from, submitted_to=submitted_to, decided_from=decided_from,
            decided_to=decided_to, url=url, url_prefix=url_prefix, case_reference=case_reference)
    except FilterError as exc:
        raise unprocessable(exc) from None


def report_scope(
    caller: Caller,
    start: Annotated[str | None, Query(alias="from", description="ISO date or date-time, UTC; inclusive.")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO date or date-time, UTC; exclusive.")] = None,
    agency: Annotated[str | None, Query(max_length=200)] = None,
    platform: Platform | None = None,
) -> Scope:
    """The referrals a report counts; 422 naming `from` or `to` if the period cannot be used."""
    try:
        scope = Scope(search.parse_instant("from", start), search.parse_instant("to", end), own_agency(caller, agency),
                      platform.value if platform else None)
        search.check_period(scope.start, scope.end, "to")
    except FilterError as exc:
        raise unprocessable(exc) from None
    return scope


Filtered = Annotated[Filters, Depends(referral_filters)]
Scoped = Annotated[Scope, Depends(report_scope)]


def decoded(decode: Callable[[str], Any], cursor: str | None) -> Any:
    """The position a cursor stands for (None without one); 422 naming `cursor` if it is not ours."""
    try:
        return None if cursor is None else decode(cursor)
    except FilterError as exc:
        raise unprocessable(exc) from None


async def record(session: AsyncSession, request: Request, caller: Principal, rows: int | None) -> None:
    """Record this request as a query made by caller, path parameters (which referral) included;
    the caller commits."""
    params = {**request.path_params, **queries_log.query_params(request.query_params.multi_items())}
    await queries_log.record(session, caller.actor, caller.credential, request.scope["route"].path, params, rows)


@router.get("/referrals", response_model=ReferralPage)
async def search_referrals(request: Request, caller: Caller, filters: Filtered, limit: Limit = 100,
                           cursor: PageCursor = None) -> ReferralPage:
    """Referrals matching every filter given, by submission time, a page at a time."""
    position = decoded(search.decode_cursor, cursor)
    async with request.app.state.sessions() as session:
        rows, next_cursor = await search.search(session, filters, position, limit)
        await record(session, request, caller, len(rows))
        await session.commit()
    return ReferralPage(items=[ReferralSummary(**row) for row in rows], next_cursor=next_cursor)


class ExportResponse(StreamingResponse):
    """A streamed export that gives its slot back however it ends (done, failed, client gone)."""

    def __init__(self, *args, release: Callable[[], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def export(request: Request, caller: Principal, chunks: Callable[[AsyncSession, Filters], AsyncIterator[str]],
                 filters: Filters, media_type: str, filename: str) -> StreamingResponse:
    """Record the export, then stream it from the exports' own pool in one of a few slots; 429 when
    none is free. Exports run apart, with a statement timeout, so they cannot starve ingestion."""
    slots = request.app.state.export_slots
    if slots.locked():
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many exports under way; retry later",
                            headers={"Retry-After": "10"})
    await slots.acquire()  # free: it does not wait
    try:
        async with request.app.state.sessions() as session:
            await record(session, request, caller, None)
            await session.commit()
    except BaseException:
        slots.release()
        raise
    sessions = request.app.state.export_sessions

    async def body() -> AsyncIterator[str]:
        async with sessions() as session:
            async for chunk in chunks(session, filters):
                yield chunk

    return ExportResponse(body(), media_type=media_type, release=slots.release,
                          headers={"Content-Disposition": f'attachment; filename="{filename}"'})


EXPORT_BUSY = {429: {"description": "Too many exports under way; retry after Retry-After seconds."}}


@router.get("/referrals/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "Header row, then one row a referral."},
                       **EXPORT_BUSY})
async def export_csv(request: Request, caller: Caller, filters: Filtered) -> StreamingResponse:
    """Every referral matching the filters, as CSV, streamed; the search's order, no page limit."""
    return await export(request, caller, exports.csv_chunks, filters, "text/csv; charset=utf-8", "referrals.csv")


@router.get("/referrals/export.ndjson", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "One referral a line."},
                       **EXPORT_BUSY})
async def export_ndjson(request: Request, caller: Caller, filters: Filtered) -> StreamingResponse:
    """Every referral matching the filters, transitions and anomalies included, as NDJSON, streamed."""
    return await export(request, caller, exports.ndjson_chunks, filters, "application/x-ndjson",
                        "referrals.ndjson")


async def attrition_rows(request: Request, caller: Caller, scope: Scope, group_by: GroupBy) -> list[AttritionRow]:
    async with request.app.state.sessions() as session:
        rows = await reports.attrition(session, scope, group_by)
        await record(session, request, caller, len(rows))
        await session.commit()
    return rows


@router.get("/reports/attrition", response_model=AttritionReport)
async def attrition(request: Request, caller: Caller, scope: Scoped, group_by: GroupBy = "platform") -> AttritionReport:
    """Per platform (and month of submission): how many referred, removed, rejected and why, pending..."""
    rows = await attrition_rows(request, caller, scope, group_by)
    return AttritionReport(start=scope.start, end=scope.end, agency=scope.agency, platform=scope.platform,
                           group_by=group_by, rows=rows)


@router.get("/reports/attrition.csv", responses={200: {"content": {"text/csv": {}}}})
async def attrition_csv(request: Request, caller: Caller, scope: Scoped, group_by: GroupBy = "platform") -> Response:
    """The attrition report as CSV."""
    rows = await attrition_rows(request, caller, scope, group_by)
    return Response(reports.attrition_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="attrition.csv"'})


async def article_22_report(request: Request, caller: Caller, scope: Scope) -> Article22Report:
    async with request.app.state.sessions() as session:
        report = await reports.article_22(session, scope)
        await record(session, request, caller, len(report.rows))
        await session.commit()
    return report


@router.get("/reports/dsa-article-22", response_model=Article22Report)
async def dsa_article_22(request: Request, caller: Caller, scope: Scoped) -> Article22Report:
    """DSA Art. 22(3): notices by provider, by type of alleged illegal content and by action taken."""
    return await article_22_report(request, caller, scope)


@router.get("/reports/dsa-article-22.csv", responses={200: {"content": {"text/csv": {}}}})
async def dsa_article_22_csv(request: Request, caller: Caller, scope: Scoped) -> Response:
    """The DSA Art. 22(3) counts as a flat CSV list, totals included."""
    report = await article_22_report(request, caller, scope)
    return Response(reports.article_22_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="dsa-article-22.csv"'})


@oversight.get("/auditor-queries", response_model=AuditorQueryPage)
async def auditor_queries(request: Request, caller: Caller, limit: Limit = 100, cursor: PageCursor = None,
                          by: Annotated[str | None, Query(alias="actor", max_length=300,
                                                          description="Only this actor's queries.")] = None
                          ) -> AuditorQueryPage:
    """Recorded auditor queries, newest first, a page at a time (this one is recorded too)."""
    before = decoded(queries_log.decode_cursor, cursor)
    async with request.app.state.sessions() as session:
        rows, next_cursor = await queries_log.newest_first(session, before, limit, by)
        await record(session, request, caller, len(rows))
        await session.commit()
    return AuditorQueryPage(items=[AuditorQuery(**row) for row in rows], next_cursor=next_cursor)
