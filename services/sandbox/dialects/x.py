"""x: OAuth2 client credentials, reports, webhook callbacks signed with a timestamp:
X-Timestamp (unix seconds) and X-Signature: sha256=<base64 HMAC-SHA256(consumer secret,
timestamp + "." + raw body)>, signed afresh for each delivery attempt; a report's status and
replies to it, with the bearer token too."""

import time

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox import domain
from services.sandbox.callbacks import Notifier
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects.common import (CALLBACK_URL_PATTERN, AnswerKey, AnswerText, EvidenceHashes,
                                              IdempotencyKey, bearer, find_ticket, gate, issue_token, news,
                                              open_ticket, polled, take_answer, to_json)
from services.sandbox.posting import Callback
from services.sandbox.runtime import sandbox_of
from services.sandbox.state import Ticket
from shared.events import Category, Platform

DIALECT = "x"
PLATFORM = Platform.x

router = APIRouter(prefix="/x", tags=["x"])


class XReport(BaseModel):
    url: str = Field(min_length=1, max_length=4096)
    policy: Category
    reporter_reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    callback_url: str = Field(max_length=2048, pattern=CALLBACK_URL_PATTERN)


class XReportData(BaseModel):
    report_id: str
    duplicate: bool


class XReportReceived(BaseModel):
    data: XReportData


@router.post("/oauth2/token", summary="OAuth2 client credentials (form body)")
async def token(request: Request):
    settings = sandbox_of(request).settings
    return await issue_token(request, dialect=DIALECT, platforms=(PLATFORM,),
                             client_id=settings.sandbox_x_client_id, client_secret=settings.sandbox_x_client_secret)


@router.post("/2/reports", status_code=status.HTTP_201_CREATED, response_model=XReportReceived,
             dependencies=[gate(PLATFORM, report=True), bearer(DIALECT)],
             responses={200: {"model": XReportReceived, "description": "Replayed Idempotency-Key."}})
async def report(body: XReport, idempotency_key: IdempotencyKey, request: Request,
                 response: Response) -> XReportReceived:
    """Report (201, `{"data": {"report_id"}}`); a replayed Idempotency-Key returns the first (200, duplicate)."""
    ticket, duplicate = open_ticket(request, idempotency_key, dialect=DIALECT, platform=PLATFORM,
                                    reference=body.reporter_reference, url=body.url, callback_url=body.callback_url)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return XReportReceived(data=XReportData(report_id=ticket.ticket_id, duplicate=duplicate))


class XReply(BaseModel):
    reporter_reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    text: AnswerText
    evidence_hashes: EvidenceHashes


@router.get("/2/reports/{report_id}", dependencies=[gate(PLATFORM, report=False), bearer(DIALECT)])
async def report_status(report_id: str, request: Request) -> dict:
    """`{"data": {"report_id", "reporter_reference", "status"}}` and the `decision` or `information_request`
    its callbacks carry; 404 for an unknown report."""
    ticket = find_ticket(request, report_id, dialect=DIALECT, platform=PLATFORM)
    return {"data": polled(ticket, "report_id", "reporter_reference")}


@router.post("/2/reports/{report_id}/replies", status_code=status.HTTP_201_CREATED,
             dependencies=[gate(PLATFORM, report=True), bearer(DIALECT)],
             responses={200: {"description": "Replayed Idempotency-Key: the first reply, none recorded."}})
async def reply(report_id: str, body: XReply, idempotency_key: AnswerKey, request: Request,
                response: Response) -> dict:
    """Reply to the report (201 `{"data": {"reply_id", "report_id", "duplicate"}}`); 404 for an unknown one."""
    ticket = find_ticket(request, report_id, dialect=DIALECT, platform=PLATFORM)
    answer, duplicate = take_answer(request, response, ticket, idempotency_key, reference=body.reporter_reference,
                                    text=body.text, evidence=body.evidence_hashes)
    return {"data": {"reply_id": answer.answer_id, "report_id": report_id, "duplicate": duplicate}}


def notifier(settings: SandboxSettings) -> Notifier:
    secret = settings.sandbox_x_consumer_secret

    def sign(raw: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {"X-Timestamp": timestamp, "X-Signature": domain.timestamped_signature(secret, timestamp, raw)}

    def notify(ticket: Ticket) -> Callback | None:
        if not ticket.callback_url:
            return None
        body = to_json({"report_id": ticket.ticket_id, "reporter_reference": ticket.reference, **news(ticket)})
        return Callback(ticket.callback_url, body, sign)

    return notify
