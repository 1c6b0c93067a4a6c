"""The generic webhook dialect at /platforms/{platform}/reports, Standard Webhooks both ways
(shared/webhooks.py): a report must carry webhook-id, webhook-timestamp and webhook-signature
under the webhook secret, be at most 5 minutes old or ahead and bear an id not taken before (401
otherwise, with why). Its signed body names the platform it is for, which its decisions, called
back signed the same way, name again: a callback is bound to one platform. Serves every platform
(`other` in production); one webhook adapter may report several platforms to one of them.

Requests about one ticket are signed the same way: its status (GET .../reports/{ticket_id}/status,
no body: the signature covers the ticket id in its place, so it answers for that ticket only) and
the agency's answer to it (POST .../reports/{ticket_id}/information, a signed body naming the
ticket and the referral).

GET /platforms/{platform}/reports/{ticket_id} is the sandbox's own inspection of any ticket of
the platform, whichever dialect opened it (answers received included); it is not part of the
contract and not gated.
"""

import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox.callbacks import Notifier
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects.common import (CALLBACK_URL_PATTERN, AnswerKey, AnswerText, IdempotencyKey, admit,
                                              find_ticket, news, open_ticket, polled, take_answer, to_json)
from services.sandbox.posting import Callback
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


async def known_platform(platform: str) -> Platform:
    """The platform named in the path; 404 if the sandbox does not stand in for it. Async: FastAPI would
    run a plain function in a worker thread, a thread hop on every request."""
    try:
        return Platform(platform)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown platform {platform!r}") from None


KnownPlatform = Annotated[Platform, Depends(known_platform)]


async def _gate(platform: KnownPlatform, request: Request) -> None:
    await admit(sandbox_of(request), platform, report=request.method == "POST")


def refused(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"report refused: {reason}")


def _verified(request: Request, payload: bytes) -> webhooks.Signed:
    """The request's Standard Webhooks signature over payload, checked; 401 saying why otherwise."""
    sandbox = sandbox_of(request)
    try:
        signed = webhooks.verify([sandbox.settings.sandbox_webhook_secret], request.headers, payload, now=time.time())
    except webhooks.Refused as exc:
        raise refused(str(exc)) from None
    if sandbox.seen.seen(signed.message_id):
        raise refused("replayed: this webhook-id was taken before")
    return signed


async def _signed(request: Request) -> webhooks.Signed:
    return _verified(request, await request.body())


def _taken(request: Request, signed: webhooks.Signed) -> None:
    """Remember a signed request's webhook-id once it is served: the same id again is a replay."""
    sandbox_of(request).seen.remember(signed.message_id, signed.fresh_until())


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
    _taken(request, signed)
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


class EvidenceItem(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    captured_at: datetime
    archive_url: str | None = Field(None, max_length=2048)


class Information(BaseModel):
    """An agency's answer to a ticket, as the generic webhook receives it."""

    ticket_id: str = Field(min_length=1, max_length=200, description="The ticket it answers (signed with it).")
    reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    answer: AnswerText
    evidence: list[EvidenceItem] = Field(default_factory=list, max_length=1000)


@router.get("/reports/{ticket_id}/status", dependencies=[Depends(_gate)])
async def ticket_status(platform: KnownPlatform, ticket_id: str, request: Request) -> dict:
    """The ticket as its callbacks tell it: `{"ticket_id", "reference", "platform", "status"}` and its
    `decision` or `information_request`; signed over the ticket id (401 otherwise), 404 if unknown."""
    signed = _verified(request, ticket_id.encode())
    ticket = find_ticket(request, ticket_id, dialect=DIALECT, platform=platform)
    _taken(request, signed)
    named = ticket.named_platform or ticket.platform
    return {**polled(ticket, "ticket_id", "reference"), "platform": named.value}


@router.post("/reports/{ticket_id}/information", status_code=status.HTTP_201_CREATED, dependencies=[Depends(_gate)],
             responses={200: {"description": "Replayed Idempotency-Key: the first answer, none recorded."}})
async def supply_information(platform: KnownPlatform, ticket_id: str,
                             signed: Annotated[webhooks.Signed, Depends(_signed)], body: Information,
                             idempotency_key: AnswerKey, request: Request, response: Response) -> dict:
    """The agency's answer (201 `{"ticket_id", "answer_id", "duplicate"}`); 404 for an unknown ticket, 409
    when the signed body names another ticket or referral than the ticket's."""
    ticket = find_ticket(request, ticket_id, dialect=DIALECT, platform=platform)
    if body.ticket_id != ticket.ticket_id:
        raise HTTPException(status.HTTP_409_CONFLICT, f"signed for ticket {body.ticket_id!r}, not {ticket.ticket_id!r}")
    answer, duplicate = take_answer(request, response, ticket, idempotency_key, reference=body.reference,
                                    text=body.answer, evidence=[item.sha256 for item in body.evidence])
    _taken(request, signed)
    return {"ticket_id": ticket.ticket_id, "answer_id": answer.answer_id, "duplicate": duplicate}


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
