"""The generic webhook dialect at /platforms/{platform}/reports, Standard Webhooks both ways
(shared/webhooks.py): a report must carry webhook-id, webhook-timestamp and webhook-signature
under the webhook secret, be at most 5 minutes old or ahead and bear an id not taken before (401
otherwise, with why). Its signed body names the platform it is for, which its decisions, called
back signed the same way, name again: a callback is bound to one platform. Serves every platform
(`other` in production); one webhook adapter may report several platforms to one of them.

GET /platforms/{platform}/reports/{ticket_id} is the sandbox's own inspection of any ticket of
the platform, whichever dialect opened it; it is not part of the contract and not gated.
"""

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox.callbacks import Callback, Notifier
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects.common import CALLBACK_URL_PATTERN, IdempotencyKey, admit, news, open_ticket, to_json
from services.sandbox.runtime import sandbox_of
from services.sandbox.state import Ticket
from shared import webhooks
from shared.events import Platform

DIALECT = "webhook"

router = APIRouter(prefix="/platforms/{platform}", tags=["webhook"])


class Report(BaseModel):
    """A report as the generic webhook receives it."""

    platform: Platform = Field(description="The platform it is for; the decision's callback names it again.")
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


def refused(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"report refused: {reason}")


async def _signed(request: Request) -> webhooks.Signed:
    sandbox = sandbox_of(request)
    try:
        signed = webhooks.verify([sandbox.settings.sandbox_webhook_secret], request.headers, await request.body(),
                                 now=time.time())
    except webhooks.Refused as exc:
        raise refused(str(exc)) from None
    if sandbox.seen.seen(signed.message_id):
        raise refused("replayed: this webhook-id was taken before")
    return signed


@router.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReportReceived,
             dependencies=[Depends(_gate)],
             responses={200: {"model": ReportReceived, "description": "Replayed Idempotency-Key."}})
async def submit_report(platform: KnownPlatform, signed: Annotated[webhooks.Signed, Depends(_signed)],
                        report: Report, idempotency_key: IdempotencyKey,
                        request: Request, response: Response) -> ReportReceived:
    """Open a ticket (201); a replayed Idempotency-Key returns the first ticket (200)."""
    ticket, duplicate = open_ticket(request, idempotency_key, dialect=DIALECT, platform=platform,
                                    reference=report.reference, url=report.url, callback_url=report.callback_url,
                                    named_platform=report.platform)
    sandbox_of(request).seen.remember(signed.message_id, signed.fresh_until())
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
        named = ticket.named_platform or ticket.platform
        body = to_json({"ticket_id": ticket.ticket_id, "reference": ticket.reference, "platform": named.value,
                        **news(ticket)})
        # One id for the callback, kept on every attempt as the standard says; a fresh timestamp each time.
        message_id = webhooks.new_message_id()
        return Callback(ticket.callback_url, body,
                        lambda raw: webhooks.sign([secret], raw, message_id, int(time.time())))

    return notify
