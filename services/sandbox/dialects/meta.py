"""meta (facebook, instagram): OAuth2 client credentials, reports, webhook callbacks signed
X-Hub-Signature-256 (hex HMAC-SHA256 of the raw body with the app secret), each entry dated by
its `time` (unix seconds) as Meta's webhooks are."""

import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox import domain
from services.sandbox.callbacks import Callback, Notifier
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects.common import (CALLBACK_URL_PATTERN, IdempotencyKey, admit, bearer, issue_token,
                                              news, open_ticket, to_json)
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


def notifier(settings: SandboxSettings) -> Notifier:
    secret = settings.sandbox_meta_app_secret

    def notify(ticket: Ticket) -> Callback | None:
        if not ticket.callback_url:
            return None
        entry = {"report_id": ticket.ticket_id, "external_reference": ticket.reference, "time": int(time.time()),
                 **news(ticket)}
        body = to_json({"object": "takedown_report", "entry": [entry]})
        return Callback(ticket.callback_url, body,
                        lambda raw: {"X-Hub-Signature-256": domain.hex_signature(secret, raw)})

    return notify
