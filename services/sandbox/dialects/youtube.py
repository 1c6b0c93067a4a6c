"""youtube: API key (X-Api-Key, 403 if wrong), flags, a polling endpoint for decisions and
responses to the flag's information request."""

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from services.sandbox import domain
from services.sandbox.dialects.common import (AnswerKey, AnswerText, EvidenceHashes, IdempotencyKey, api_key,
                                              find_ticket, gate, open_ticket, polled, take_answer)
from shared.events import Platform

DIALECT = "youtube"
PLATFORM = Platform.youtube

router = APIRouter(prefix="/youtube/v1", tags=["youtube"])


class Flag(BaseModel):
    video_url: str = Field(min_length=1, max_length=4096)
    reason_code: Literal[domain.REASON_CODES] = Field(  # type: ignore[valid-type]
        description="The category upper-cased, e.g. PEOPLE_SMUGGLING.")
    flagger_reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    notes: str | None = Field(None, max_length=10_000)


class FlagReceived(BaseModel):
    flag_id: str
    duplicate: bool


@router.post("/flags", status_code=status.HTTP_201_CREATED, response_model=FlagReceived,
             dependencies=[gate(PLATFORM, report=True), api_key("sandbox_youtube_api_key")],
             responses={200: {"model": FlagReceived, "description": "Replayed Idempotency-Key."}})
async def flag(body: Flag, idempotency_key: IdempotencyKey, request: Request, response: Response) -> FlagReceived:
    """Flag a video (201); a replayed Idempotency-Key returns the first flag (200, duplicate)."""
    ticket, duplicate = open_ticket(request, idempotency_key, dialect=DIALECT, platform=PLATFORM,
                                    reference=body.flagger_reference, url=body.video_url)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return FlagReceived(flag_id=ticket.ticket_id, duplicate=duplicate)


@router.get("/flags/{flag_id}", dependencies=[gate(PLATFORM, report=False), api_key("sandbox_youtube_api_key")])
async def poll(flag_id: str, request: Request) -> dict:
    """The flag's status: open, information_requested (with the request) or decided (with the decision)."""
    return polled(find_ticket(request, flag_id, dialect=DIALECT, platform=PLATFORM), "flag_id")


class FlagResponse(BaseModel):
    flagger_reference: str = Field(min_length=1, max_length=200, description="The referral id.")
    response_text: AnswerText
    evidence_hashes: EvidenceHashes


@router.post("/flags/{flag_id}/responses", status_code=status.HTTP_201_CREATED,
             dependencies=[gate(PLATFORM, report=True), api_key("sandbox_youtube_api_key")],
             responses={200: {"description": "Replayed Idempotency-Key: the first response, none recorded."}})
async def respond(flag_id: str, body: FlagResponse, idempotency_key: AnswerKey, request: Request,
                  response: Response) -> dict:
    """Answer the flag's information request (201 `{"response_id", "flag_id", "duplicate"}`); 404 unknown flag."""
    ticket = find_ticket(request, flag_id, dialect=DIALECT, platform=PLATFORM)
    answer, duplicate = take_answer(request, response, ticket, idempotency_key, reference=body.flagger_reference,
                                    text=body.response_text, evidence=body.evidence_hashes)
    return {"response_id": answer.answer_id, "flag_id": flag_id, "duplicate": duplicate}
