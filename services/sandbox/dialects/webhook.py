"""The generic webhook dialect at /platforms/{platform}/reports: requests signed
X-Takedown-Signature (hex HMAC-SHA256 of the raw body with the webhook secret, 401 if wrong);
decisions called back signed the same way. Serves every platform (`other` in production).

GET /platforms/{platform}/reports/{ticket_id} is the sandbox's own inspection of any ticket of
the platform, whichever dialect opened it; it is not part of the contract and not gated.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox import domain
from services.sandbox.callbacks import Callback, Notifier
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects.common import CALLBACK_URL_PATTERN, IdempotencyKey, admit, news, open_ticket, to_json
from services.sandbox.runtime import sandbox_of
from services.sandbox.state import Ticket
from shared.events import Platform

DIALECT = "webhook"
SIGNATURE_HEADER = "X-Takedown-Signature"

router = APIRouter(prefix="/platforms/{platform}", tags=["webhook"])


class Report(BaseModel):
    """A report as the generic webhook receives it."""

    reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    url: str = Field(min_length=1, max_length=4096)
    category: str = Field(min_length=1, max_length=100)
    agency: str = Field(min_length=1, max_length=200)
    case_reference: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=10_000)
    callback_url: str | None = Field(None, max_length=2048, pattern=CALLBACK_URL_PATTERN,
                                     description="Where the decision is posted.")


class ReportReceived(BaseModel):
    ticket_id: str = Field(examples=["other-3f2a9c01d4e7"])
    status: Literal["received"] = "received"
    duplicate: bool = Field(description="True when the Idempotency-Key was seen before.")


def known_platform(platform: str) -> Platform:
    """The platform named in the path; 404 if the sandbox does not stand in for it."""
    try:
        return Platform(platform)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown platform {platform!r}") from None


KnownPlatform = Annotated[Platform, Depends(known_platform)]


async def _gate(platform: KnownPlatform, request: Request) -> None:
    await admit(sandbox_of(request), platform, report=True)


async def _signed(request: Request) -> None:
    secret = sandbox_of(request).settings.sandbox_webhook_secret
    if not domain.valid_hex_signature(secret, await request.body(), request.headers.get(SIGNATURE_HEADER)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing or wrong {SIGNATURE_HEADER}")


@router.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReportReceived,
             dependencies=[Depends(_gate), Depends(_signed)],
             responses={200: {"model": ReportReceived, "description": "Replayed Idempotency-Key."}})
async def submit_report(platform: KnownPlatform, report: Report, idempotency_key: IdempotencyKey,
                        request: Request, response: Response) -> ReportReceived:
    """Open a ticket (201); a replayed Idempotency-Key returns the first ticket (200)."""
    ticket, duplicate = open_ticket(request, idempotency_key, dialect=DIALECT, platform=platform,
                                    reference=report.reference, url=report.url, callback_url=report.callback_url)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return ReportReceived(ticket_id=ticket.ticket_id, duplicate=duplicate)


@router.get("/reports/{ticket_id}", response_model=Ticket, tags=["operations"])
async def get_ticket(platform: KnownPlatform, ticket_id: str, request: Request) -> Ticket:
    """Sandbox inspection: one ticket of this platform, from any dialect, open or decided."""
    ticket = sandbox_of(request).store.find(ticket_id, platform=platform)
    if ticket is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id!r} on {platform.value}")
    return ticket


def notifier(settings: SandboxSettings) -> Notifier:
    secret = settings.sandbox_webhook_secret

    def notify(ticket: Ticket) -> Callback | None:
        if not ticket.callback_url:
            return None
        body = to_json({"ticket_id": ticket.ticket_id, "reference": ticket.reference, **news(ticket)})
        return Callback(ticket.callback_url, body, lambda raw: {SIGNATURE_HEADER: domain.hex_signature(secret, raw)})

    return notify
