"""Outcomes' auditor API: a referral's state and full history, and paginated search."""

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from services.outcomes import auditors, db
from shared.auth import DENIED, Caller

router = APIRouter(prefix="/v1", tags=["auditors"], dependencies=[auditors.READERS,
                                                                 Depends(auditors.recordable_query)],
                   responses={**DENIED, 404: {"description": "No such referral, or not the caller agency's."}})


class HistoryEntry(BaseModel):
    position: int = Field(description="Place in the hash-chained audit trail.")
    hash: str = Field(description="sha256(prev_hash || position || canonical content), hex.")
    prev_hash: str
    event_id: UUID
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    credential: str | None = Field(None, description="What proved the actor's identity: key:<id>, oidc:<iss>#<sub>, "
                                                     "signed:<agency>; null before identities were recorded.")
    source: str
    data: dict[str, Any]


class ReferralState(auditors.ReferralSummary):
    """A referral's state as a search returns it, plus its transitions and anomalies."""

    transitions: list[dict[str, Any]] = Field(default_factory=list)
    anomalies: list[dict[str, Any]] = Field(default_factory=list)


class ReferralWithHistory(ReferralState):
    history: list[HistoryEntry]


def _sessions(request: Request):
    return request.app.state.sessions


@router.get("/referrals/{referral_id}", response_model=ReferralWithHistory)
async def get_referral(referral_id: UUID, request: Request, caller: Caller) -> ReferralWithHistory:
    """A referral's current state and every event recorded about it, in the order they happened,
    each with its place and hash in the audit trail. The query itself is recorded. An agency sees
    only its own referrals: another's answers 404, as if it did not exist."""
    async with _sessions(request)() as session:
        # One snapshot for both reads, or an event committed between them shows in the history
        # but not in the state.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        state = await db.get_referral(session, referral_id)
        if state is not None and not caller.sees(state["agency"]):
            state = None
        events = await db.history(session, referral_id) if state is not None else []
    async with _sessions(request)() as session, session.begin():
        await auditors.record(session, request, caller, 0 if state is None else 1)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
    return ReferralWithHistory(**state, history=[
        HistoryEntry(**{**e, "hash": bytes(e["hash"]).hex(), "prev_hash": bytes(e["prev_hash"]).hex()})
        for e in events])
