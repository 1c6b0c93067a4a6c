"""The sandbox's composition root and routes: platforms' reporting APIs, simulated in memory.

Each new report gets a ticket and, after a delay, a decision drawn from the policy; the
decision is posted to the report's callback URL. Replaying an Idempotency-Key returns the
first ticket and schedules nothing.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox import domain
from services.sandbox.config import SandboxSettings
from shared.events import Platform
from shared.reliability import backoff

log = logging.getLogger(__name__)

CALLBACK_ATTEMPTS = 8
CALLBACK_BACKOFF_CAP_S = 5.0
CALLBACK_TIMEOUT_S = 5.0


class Report(BaseModel):
    """A report as a platform's reporting API receives it."""

    reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    url: str = Field(min_length=1, max_length=4096)
    category: str = Field(min_length=1, max_length=100)
    agency: str = Field(min_length=1, max_length=200)
    case_reference: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=10_000)
    callback_url: str | None = Field(None, max_length=2048, pattern=r"^https?://",
                                     description="Where the decision is posted.")


class ReportReceived(BaseModel):
    ticket_id: str = Field(examples=["facebook-3f2a9c01d4e7"])
    status: Literal["received"] = "received"
    duplicate: bool = Field(description="True when the Idempotency-Key was seen before.")


class Ticket(BaseModel):
    ticket_id: str
    platform: Platform
    reference: str
    url: str
    status: Literal["open", "decided"] = "open"
    outcome: str | None = None
    reason: str | None = None
    received_at: datetime
    decided_at: datetime | None = None


class PlatformStats(BaseModel):
    reports: int = 0
    duplicates: int = 0
    decided: int = 0


class Stats(BaseModel):
    reports: int = Field(description="Distinct tickets.")
    duplicates: int = Field(description="Replayed Idempotency-Keys.")
    by_platform: dict[str, PlatformStats]


class Sandbox:
    """Every platform's tickets, in memory; decides each new one after a delay."""

    def __init__(self, settings: SandboxSettings):
        self.policy = domain.parse_policy(settings.sandbox_policy)
        self.seed, self.delay_s = settings.sandbox_seed, settings.sandbox_decision_delay_s
        self.client: httpx.AsyncClient | None = None
        self.tickets: dict[str, Ticket] = {}
        self.by_key: dict[tuple[Platform, str], str] = {}
        self.duplicates: Counter[Platform] = Counter()
        self.tasks: set[asyncio.Task] = set()

    def receive(self, platform: Platform, report: Report, key: str) -> tuple[Ticket, bool]:
        """The ticket for key on platform and whether it already existed; new ones get decided."""
        # No await between check and insert: no other request can run in between, so one
        # key can never make two tickets.
        existing = self.by_key.get((platform, key))
        if existing is not None:
            self.duplicates[platform] += 1
            return self.tickets[existing], True
        ticket = Ticket(ticket_id=self._new_ticket_id(platform), platform=platform,
                        reference=report.reference, url=report.url, received_at=datetime.now(UTC))
        self.tickets[ticket.ticket_id] = ticket
        self.by_key[(platform, key)] = ticket.ticket_id
        task = asyncio.create_task(self._decide(ticket, report.callback_url),
                                   name=f"decide-{ticket.ticket_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        log.info("ticket %s opened for reference %s", ticket.ticket_id, ticket.reference)
        return ticket, False

    def _new_ticket_id(self, platform: Platform) -> str:
        while True:
            ticket_id = f"{platform.value}-{uuid.uuid4().hex[:12]}"
            if ticket_id not in self.tickets:
                return ticket_id

    async def _decide(self, ticket: Ticket, callback_url: str | None) -> None:
        try:
            await asyncio.sleep(self.delay_s)
            outcome = domain.choose_outcome(self.policy, self.seed, ticket.reference)
            if outcome == domain.NEVER_ANSWERS:
                log.info("ticket %s: the platform never answers", ticket.ticket_id)
                return
            ticket.status, ticket.outcome = "decided", outcome
            ticket.reason, ticket.decided_at = domain.reason_for(outcome), datetime.now(UTC)
            log.info("ticket %s decided: %s", ticket.ticket_id, outcome)
            if callback_url:
                await self._call_back(callback_url, decision(ticket))
        except Exception:  # noqa: BLE001 - a task's error would otherwise surface only at GC
            log.exception("ticket %s: decision failed", ticket.ticket_id)

    async def _call_back(self, url: str, payload: dict) -> bool:
        """Post the decision to url until it answers 2xx, with backoff; False if it never does."""
        if self.client is None:
            log.error("ticket %s: sandbox not started, callback dropped", payload["ticket_id"])
            return False
        for attempt in range(1, CALLBACK_ATTEMPTS + 1):
            try:
                response = await self.client.post(url, json=payload)
                if response.is_success:
                    log.info("ticket %s: callback delivered to %s", payload["ticket_id"], url)
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = repr(exc)
            log.warning("ticket %s: callback to %s failed (attempt %s/%s): %s",
                        payload["ticket_id"], url, attempt, CALLBACK_ATTEMPTS, problem)
            if attempt < CALLBACK_ATTEMPTS:
                await asyncio.sleep(backoff(attempt, cap=CALLBACK_BACKOFF_CAP_S))
        log.error("ticket %s: callback to %s abandoned after %s attempts",
                  payload["ticket_id"], url, CALLBACK_ATTEMPTS)
        return False

    def stats(self) -> Stats:
        """Totals and per-platform counts of tickets, replays and decisions."""
        rows = {p.value: PlatformStats(duplicates=self.duplicates[p]) for p in Platform}
        for ticket in self.tickets.values():
            row = rows[ticket.platform.value]
            row.reports += 1
            row.decided += ticket.status == "decided"
        return Stats(reports=len(self.tickets), duplicates=sum(self.duplicates.values()),
                     by_platform=rows)

    async def cancel_pending(self) -> None:
        """Cancel every decision not yet made and wait for the tasks to end."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Forget every ticket and key, cancelling pending decisions."""
        await self.cancel_pending()
        self.tickets.clear()
        self.by_key.clear()
        self.duplicates.clear()


def decision(ticket: Ticket) -> dict:
    """The JSON body of a decision callback."""
    return {
        "ticket_id": ticket.ticket_id,
        "reference": ticket.reference,
        "platform": ticket.platform.value,
        "outcome": ticket.outcome,
        "reason": ticket.reason,
        "note": domain.note_for(ticket.outcome or ""),
        "decided_at": ticket.decided_at.isoformat() if ticket.decided_at else None,
    }


router = APIRouter(prefix="/platforms/{platform}", tags=["platforms"])


def known_platform(platform: str) -> Platform:
    """The platform named in the path; 404 if the sandbox does not stand in for it."""
    try:
        return Platform(platform)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown platform {platform!r}") from None


def _sandbox(request: Request) -> Sandbox:
    return request.app.state.sandbox


@router.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReportReceived,
             responses={200: {"model": ReportReceived, "description": "Replayed Idempotency-Key."}})
async def submit_report(
    platform: Annotated[Platform, Depends(known_platform)],
    report: Report,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
    request: Request,
    response: Response,
) -> ReportReceived:
    """Open a ticket (201); a replayed Idempotency-Key returns the first ticket (200)."""
    ticket, duplicate = _sandbox(request).receive(platform, report, idempotency_key)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return ReportReceived(ticket_id=ticket.ticket_id, duplicate=duplicate)


@router.get("/reports/{ticket_id}", response_model=Ticket)
async def get_ticket(
    platform: Annotated[Platform, Depends(known_platform)], ticket_id: str, request: Request
) -> Ticket:
    """One ticket of this platform, open or decided."""
    ticket = _sandbox(request).tickets.get(ticket_id)
    if ticket is None or ticket.platform is not platform:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id!r} on {platform.value}")
    return ticket


def create_app(settings: SandboxSettings) -> FastAPI:
    """Build the sandbox; its HTTP client for callbacks exists only while the app runs."""
    sandbox = Sandbox(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S) as client:
            sandbox.client = client
            log.info("sandbox ready: policy %s, decision delay %ss, seed %r",
                     settings.sandbox_policy, settings.sandbox_decision_delay_s, settings.sandbox_seed)
            try:
                yield
            finally:
                await sandbox.cancel_pending()
                sandbox.client = None

    app = FastAPI(title="takedown platform sandbox", version="1", lifespan=lifespan)
    app.state.sandbox = sandbox
    app.include_router(router)

    @app.get("/stats", response_model=Stats, tags=["operations"])
    async def stats() -> Stats:
        """How many reports, replays and decisions, in total and per platform."""
        return sandbox.stats()

    @app.post("/reset", status_code=status.HTTP_204_NO_CONTENT, tags=["operations"])
    async def reset() -> None:
        """Test helper: forget all tickets and cancel pending decisions."""
        await sandbox.reset()

    @app.get("/health", tags=["operations"])
    async def health() -> dict:
        """Always ready: the sandbox depends on nothing."""
        return {"status": "ok", "service": "sandbox"}

    return app
