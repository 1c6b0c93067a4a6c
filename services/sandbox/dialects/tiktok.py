"""tiktok: API key (X-Api-Key, 403 if wrong); the decision comes in the response when the persona
decides at once (decision delay 0), else by polling; information requested is posted to the report."""

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox.dialects.common import (AnswerKey, AnswerText, EvidenceHashes, IdempotencyKey, api_key,
                                              find_ticket, gate, open_ticket, polled, take_answer)
from shared.events import Category, Platform

DIALECT = "tiktok"
PLATFORM = Platform.tiktok

router = APIRouter(prefix="/tiktok/v1", tags=["tiktok"])


class TiktokReport(BaseModel):
    link: str = Field(min_length=1, max_length=4096)
    category: Category
    reference: str = Field(min_length=1, max_length=200, description="The referral id.")


@router.post("/reports", status_code=status.HTTP_201_CREATED,
             dependencies=[gate(PLATFORM, report=True), api_key("sandbox_tiktok_api_key")],
             responses={200: {"description": "Replayed Idempotency-Key."}})
async def report(body: TiktokReport, idempotency_key: IdempotencyKey, request: Request, response: Response) -> dict:
    """Report (201): `{"report_id", "status": "decided", "decision"}` when decided at once, else
    `{"report_id", "status": "open"}`; a replayed Idempotency-Key answers 200 with the report as it is now."""
    ticket, duplicate = open_ticket(request, idempotency_key, dialect=DIALECT, platform=PLATFORM,
                                    reference=body.reference, url=body.link)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return {**polled(ticket, "report_id"), "duplicate": duplicate}


@router.get("/reports/{report_id}", dependencies=[gate(PLATFORM, report=False), api_key("sandbox_tiktok_api_key")])
async def poll(report_id: str, request: Request) -> dict:
    """The report's status, in the shapes of youtube's poll."""
    return polled(find_ticket(request, report_id, dialect=DIALECT, platform=PLATFORM), "report_id")


class TiktokInformation(BaseModel):
    reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    text: AnswerText
    evidence_hashes: EvidenceHashes


@router.post("/reports/{report_id}/information", status_code=status.HTTP_201_CREATED,
             dependencies=[gate(PLATFORM, report=True), api_key("sandbox_tiktok_api_key")],
             responses={200: {"description": "Replayed Idempotency-Key: the first answer, none recorded."}})
async def supply(report_id: str, body: TiktokInformation, idempotency_key: AnswerKey, request: Request,
                 response: Response) -> dict:
    """The information the report's request asked for (201 `{"information_id", "report_id", "duplicate"}`)."""
    ticket = find_ticket(request, report_id, dialect=DIALECT, platform=PLATFORM)
    answer, duplicate = take_answer(request, response, ticket, idempotency_key, reference=body.reference,
                                    text=body.text, evidence=body.evidence_hashes)
    return {"information_id": answer.answer_id, "report_id": report_id, "duplicate": duplicate}
