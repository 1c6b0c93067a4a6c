"""Operations: stats, reset, health, and the admin switches (outages now, effective personas)."""

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from services.sandbox.dialects.webhook import KnownPlatform
from services.sandbox.personas import describe
from services.sandbox.runtime import sandbox_of
from services.sandbox.state import Stats
from services.sandbox.traffic import OutageKind

router = APIRouter(tags=["operations"])


class OutageRequest(BaseModel):
    seconds: float = Field(ge=0, le=86_400 * 7, description="How long from now; 0 ends the current outage.")
    kind: OutageKind = Field("unavailable", description=(
        "unavailable: every request answers 503 with Retry-After; error: 500 without one; timeout: every "
        "request is held hang_s, then served as usual (the report is taken after the client gave up)."))
    hang_s: float = Field(30.0, gt=0, le=3600, description=(
        "timeout only: how long each request is held; make it longer than the client's timeout "
        "(the dispatcher's adapters: timeout_s, 10 s unless set)."))


class OutageState(BaseModel):
    platform: str
    down: bool
    until: datetime | None = Field(description="When the outage ends (UTC), if one is on.")
    kind: OutageKind | None = Field(None, description="How the platform fails while it is down.")


@router.get("/stats", response_model=Stats)
async def stats(request: Request) -> Stats:
    """How many reports, replays and decisions, and refused requests, in total and per platform."""
    return sandbox_of(request).stats()


class TicketSummary(BaseModel):
    ticket_id: str
    platform: str
    reference: str = Field(description="The referral id the report carried.")
    status: str
    answers: int = Field(0, description="Answers the platform received on it, one per Idempotency-Key.")
    callbacks_dropped: bool = Field(False, description="Its callbacks were withheld (persona drop_callbacks).")


@router.get("/admin/tickets", response_model=list[TicketSummary])
async def tickets(request: Request) -> list[TicketSummary]:
    """Every ticket the platforms opened, one per distinct report (replays open none): what the
    fault suite compares with what was referred."""
    return [TicketSummary(ticket_id=t.ticket_id, platform=t.platform.value, reference=t.reference, status=t.status,
                          answers=len(t.answers), callbacks_dropped=t.callbacks_dropped)
            for t in sandbox_of(request).store.tickets.values()]


@router.post("/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset(request: Request) -> None:
    """Test helper: forget all tickets and counters, cancel pending decisions, end admin outages."""
    await sandbox_of(request).reset()


@router.get("/health")
async def health() -> dict:
    """Always ready: the sandbox depends on nothing."""
    return {"status": "ok", "service": "sandbox"}


@router.post("/admin/{platform}/outage", response_model=OutageState)
async def outage(platform: KnownPlatform, body: OutageRequest, request: Request) -> OutageState:
    """Start an outage of the platform's dialect now for `seconds`: every request answers 503 (kind
    `unavailable`), 500 (`error`) or is held `hang_s` before it is served (`timeout`);
    `{"seconds": 0}` ends the current one, whether started here or by the persona file."""
    traffic = sandbox_of(request).traffic
    remaining = traffic.start_outage(platform, body.seconds, body.kind, body.hang_s)
    until = datetime.now(UTC) + timedelta(seconds=remaining) if remaining is not None else None
    current = traffic.outage(platform)
    return OutageState(platform=platform.value, down=remaining is not None, until=until,
                       kind=current[0] if current else None)


@router.get("/admin/personas")
async def personas(request: Request) -> dict[str, dict]:
    """The personas in effect, platform by platform (SANDBOX_POLICY and SANDBOX_DECISION_DELAY_S applied)."""
    return describe(sandbox_of(request).personas)
