"""meta (facebook, instagram): OAuth2 client credentials, reports, webhook callbacks signed
X-Hub-Signature-256 (hex HMAC-SHA256 of the raw body with the app secret), each entry dated by
its `time` (unix seconds) as Meta's webhooks are; a report's status and replies to it, with the
bearer token too."""

import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox import domain
from services.sandbox.callbacks import Notifier
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects.common import (CALLBACK_URL_PATTERN, AnswerKey, AnswerText, EvidenceHashes,
                                              IdempotencyKey, admit, bearer, find_ticket, issue_token, news,
                                              open_ticket, polled, take_answer, ticket_gate, to_json)
from services.sandbox.posting import Callback
from services.sandbox.runtime import sandbox_of
from services.sandbox.state import Ticket
from shared.events import Platform

DIALECT = "meta"
PLATFORMS = (Platform.facebook, Platform.instagram)

router = APIRouter(prefix="/meta", tags=["meta"])


class Reporter(BaseModel):
    organization: str = Field(min_length=1, max_length=200)
    case_number: str | None = Field(None, max_length=200)


class MetaReport(BaseModel):
    surface: Literal["facebook", "instagram"]
    content_url: str = Field(min_length=1, max_length=4096)
    violation_type: Literal[domain.VIOLATION_TYPES]  # type: ignore[valid-type]
    external_reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    reporter: Reporter
    evidence_hashes: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=list,
                                                                                   max_length=1000)
    callback_url: str = Field(max_length=2048, pattern=CALLBACK_URL_PATTERN)


class MetaReportReceived(BaseModel):
    report_id: str
    state: Literal["received"] = "received"
    duplicate: bool


async def _gate(request: Request) -> None:
    """The surface's persona decides; a body without a valid surface is left to validation (422)."""
    try:
        surface = Platform(json.loads(await request.body()).get("surface"))
    except (ValueError, AttributeError, TypeError):
        return
    if surface in PLATFORMS:
        await admit(sandbox_of(request), surface, report=True)


@router.post("/oauth/token", summary="OAuth2 client credentials (form body)")
async def token(request: Request):
    settings = sandbox_of(request).settings
    return await issue_token(request, dialect=DIALECT, platforms=PLATFORMS,
                             client_id=settings.sandbox_meta_client_id,
                             client_secret=settings.sandbox_meta_client_secret)


@router.post("/v1/reports", status_code=status.HTTP_201_CREATED, response_model=MetaReportReceived,
             dependencies=[Depends(_gate), bearer(DIALECT)],
             responses={200: {"model": MetaReportReceived, "description": "Replayed Idempotency-Key."}})
async def report(body: MetaReport, idempotency_key: IdempotencyKey, request: Request,
                 response: Response) -> MetaReportReceived:
    """Open a report (201); a replayed Idempotency-Key returns the first one (200, duplicate)."""
    ticket, duplicate = open_ticket(request, idempotency_key, dialect=DIALECT, platform=Platform(body.surface),
                                    reference=body.external_reference, url=body.content_url,
                                    callback_url=body.callback_url)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return MetaReportReceived(report_id=ticket.ticket_id, duplicate=duplicate)


class MetaReply(BaseModel):
    external_reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    message: AnswerText
    evidence_hashes: EvidenceHashes


@router.get("/v1/reports/{report_id}", dependencies=[ticket_gate(DIALECT, "report_id", report=False),
                                                      bearer(DIALECT)])
async def report_status(report_id: str, request: Request) -> dict:
    """The report as its callbacks tell it: `{"report_id", "external_reference", "status"}` and its
    `decision` or `information_request`; 404 for an unknown report."""
    return polled(find_ticket(request, report_id, dialect=DIALECT), "report_id", "external_reference")


@router.post("/v1/reports/{report_id}/replies", status_code=status.HTTP_201_CREATED,
             dependencies=[ticket_gate(DIALECT, "report_id", report=True), bearer(DIALECT)],
             responses={200: {"description": "Replayed Idempotency-Key: the first reply, none recorded."}})
async def reply(report_id: str, body: MetaReply, idempotency_key: AnswerKey, request: Request,
                response: Response) -> dict:
    """Reply to the report, e.g. with what its information request asked (201 `{"reply_id", "report_id",
    "duplicate"}`); 404 for an unknown report, 409 for one about another reference."""
    ticket = find_ticket(request, report_id, dialect=DIALECT)
    answer, duplicate = take_answer(request, response, ticket, idempotency_key, reference=body.external_reference,
                                    text=body.message, evidence=body.evidence_hashes)
    return {"reply_id": answer.answer_id, "report_id": report_id, "duplicate": duplicate}


def notifier(settings: SandboxSettings) -> Notifier:
    """A ticket's callback: a webhook of one entry, which joins with others due to the same URL."""
    secret = settings.sandbox_meta_app_secret

    def sign(raw: bytes) -> dict[str, str]:
        return {"X-Hub-Signature-256": domain.hex_signature(secret, raw)}

    def webhook(url: str, entries: list[bytes]) -> Callback:
        body = b'{"object":"takedown_report","entry":[' + b",".join(entries) + b"]}"
        return Callback(url, body, sign, parts=tuple(entries),
                        join=lambda due: webhook(url, [entry for c in due for entry in c.parts]))

    def notify(ticket: Ticket) -> Callback | None:
        if not ticket.callback_url:
            return None
        entry = {"report_id": ticket.ticket_id, "external_reference": ticket.reference, "time": int(time.time()),
                 **news(ticket)}
        return webhook(ticket.callback_url, [to_json(entry)])

    return notify

