"""Outcomes' auditor API: a referral's state and full history, and paginated search."""

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.outcomes import db
from services.outcomes.domain import Status
from shared.events import Platform

router = APIRouter(prefix="/v1", tags=["auditors"])


class HistoryEntry(BaseModel):
    position: int = Field(description="Place in the hash-chained audit trail.")
    hash: str = Field(description="sha256(prev_hash || position || canonical content), hex.")
    prev_hash: str
    event_id: UUID
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    source: str
    data: dict[str, Any]


class ReferralState(BaseModel):
    referral_id: UUID
    status: str | None = None
    agency: str | None = None
    platform: str | None = None
    category: str | None = None
    url: str | None = None
    canonical_url: str | None = None
    priority: str | None = None
    case_reference: str | None = None
    ticket_id: str | None = None
    outcome: str | None = None
    reason: str | None = None
    failure_reason: str | None = None
    submitted_at: datetime | None = None
    dispatched_at: datetime | None = None
    acknowledged_at: datetime | None = None
    information_requested_at: datetime | None = None
    decided_at: datetime | None = None
    closed_at: datetime | None = None
    last_event_at: datetime | None = None
    overdue: bool = False
    deadline: datetime | None = None
    dispatches: int = 0
    reachable: bool | None = None
    transitions: list[dict[str, Any]] = Field(default_factory=list)
    anomalies: list[dict[str, Any]] = Field(default_factory=list)


class ReferralWithHistory(ReferralState):
    history: list[HistoryEntry]


class ReferralPage(BaseModel):
    items: list[ReferralState]
    next_cursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last.")


def _sessions(request: Request):
    return request.app.state.sessions


@router.get("/referrals/{referral_id}", response_model=ReferralWithHistory)
async def get_referral(referral_id: UUID, request: Request) -> ReferralWithHistory:
    """A referral's current state and every event recorded about it, in the order they happened."""
    async with _sessions(request)() as session:
        # One snapshot for both reads, or an event committed between them shows in the history
        # but not in the state.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        state = await db.get_referral(session, referral_id)
        if state is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
        events = await db.history(session, referral_id)
    return ReferralWithHistory(**state, history=[
        HistoryEntry(**{**e, "hash": bytes(e["hash"]).hex(), "prev_hash": bytes(e["prev_hash"]).hex()})
        for e in events])


@router.get("/referrals", response_model=ReferralPage)
async def search_referrals(
    request: Request,
    platform: Platform | None = None,
    status_: Status | None = Query(None, alias="status"),
    agency: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = Query(None, max_length=200),
) -> ReferralPage:
    """Referrals filtered by platform, status and agency, oldest first, a page at a time."""
    filters = {k: v.value if hasattr(v, "value") else v
               for k, v in {"platform": platform, "status": status_, "agency": agency}.items() if v is not None}
    async with _sessions(request)() as session:
        rows = await db.search(session, filters, decode_cursor(cursor) if cursor else None, limit)
    next_cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
    return ReferralPage(items=[ReferralState(**r) for r in rows], next_cursor=next_cursor)


def encode_cursor(row: dict) -> str:
    raw = f"{row['first_recorded_at'].isoformat()}|{row['referral_id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        at, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), UUID(rid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor: not a cursor this API issued") from exc
