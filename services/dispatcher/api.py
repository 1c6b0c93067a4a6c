"""Dispatcher's HTTP routes: platforms call back here with their decisions."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Request, status

from services.dispatcher.adapters.base import Decision, InvalidCallback
from services.dispatcher.adapters.answers import InvalidAnswer
from services.dispatcher.adapters.registry import UnknownPlatform
from services.dispatcher.service import DispatchService, NotAnsweredByHand, UnknownTicket
from shared.events import Platform, StoredText

router = APIRouter(prefix="/v1", tags=["callbacks"])


@router.post("/callbacks/{platform}", status_code=status.HTTP_202_ACCEPTED)
async def decision_callback(platform: str, request: Request) -> dict:
    """A platform's signed decision: 202 once on Kafka; 401 if it does not verify; 409 for a
    ticket we do not hold (yet: the platform should retry); 503 if Kafka is down."""
    try:
        slug = Platform(platform)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown platform {platform!r}") from None
    service: DispatchService = request.app.state.dispatcher
    try:
        count = await service.callback(slug, request.headers, await request.body())
    except UnknownPlatform as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except InvalidCallback as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"callback refused: {exc}") from None
    except UnknownTicket as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return {"status": "accepted", "answers": count}


@router.post("/tickets/{platform}/{ticket_id}/answer", status_code=status.HTTP_202_ACCEPTED, tags=["operators"])
async def record_answer(
    platform: Platform, ticket_id: StoredText, request: Request,
    envelope: Annotated[dict[str, Any], Body(examples=[{"decision": {
        "visibility": ["content_removed"], "ground": "illegal_content", "territorial_scope": ["GB"],
        "explanation": "removed after our e-mail", "decided_at": "2026-11-22T10:00:00Z"}}])],
    x_actor: Annotated[str, Header(pattern=r"^user:.+", description="Who records it, e.g. user:alice")],
) -> dict:
    """Record a platform's answer given outside its API (e-mail channels): a decision or an
    information request, in the decision-object format, under the operator's name."""
    service: DispatchService = request.app.state.dispatcher
    try:
        answer = await service.record_by_hand(platform, ticket_id, envelope, who=x_actor)
    except (UnknownTicket, UnknownPlatform) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except NotAnsweredByHand as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidAnswer as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    kind = "decision" if isinstance(answer, Decision) else "information_request"
    return {"status": "accepted", "recorded": kind, "referral_id": str(answer.referral_id)}
