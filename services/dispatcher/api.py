"""Dispatcher's HTTP routes: platforms call back with their decisions (proved by their signature),
operators record answers platforms gave by e-mail (proved by their bearer token)."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status

from services.dispatcher.adapters.answers import InvalidAnswer
from services.dispatcher.adapters.base import Decision, InvalidCallback, VerifiedCallback
from services.dispatcher.adapters.registry import UnknownPlatform
from services.dispatcher import reconciler
from services.dispatcher.decisions import Decisions, NotAnsweredByHand, UnknownTicket
from shared.auth import DENIED, Caller, Role, guard, require
from shared.events import Platform, StoredText


@dataclass(frozen=True)
class SignedCallback:
    """A callback whose signature verified: the platform it proves, and what it says."""

    platform: Platform
    verified: VerifiedCallback


def _service(request: Request) -> Decisions:
    return request.app.state.decisions


async def signed_by_platform(platform: str, request: Request) -> SignedCallback:
    """The callbacks' guard: a platform is who its signature proves, nothing else (401 if it does
    not verify: stale, replayed on the wire, wrongly signed, or signed for another platform)."""
    try:
        slug = Platform(platform)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no platform {platform!r} takes callbacks here") from None
    try:
        verified = _service(request).verify_callback(slug, request.headers, await request.body())
    except UnknownPlatform:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no platform {platform!r} takes callbacks here") from None
    except InvalidCallback as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"callback refused: {exc}") from None
    except ValueError as exc:  # a signed body that does not read as an answer
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"callback refused: {exc}") from None
    request.state.principal = _service(request).caller(slug)
    return SignedCallback(slug, verified)


Signed = Annotated[SignedCallback, Depends(signed_by_platform)]
callbacks = APIRouter(prefix="/v1", tags=["callbacks"], dependencies=[guard(signed_by_platform)], responses={
    401: {"description": "The signature does not verify (missing, wrong, stale, replayed, another platform's)."},
    404: {"description": "No adapter of this platform takes callbacks."},
    409: {"description": "A ticket we do not hold (yet): retry later."}})
operators = APIRouter(prefix="/v1", tags=["operators"], dependencies=[require(Role.operator)], responses={
    **DENIED, 404: {"description": "No such ticket."},
    409: {"description": "The platform answers through its API, not by e-mail."}})


@callbacks.post("/callbacks/{platform}", status_code=status.HTTP_202_ACCEPTED)
async def decision_callback(callback: Signed, request: Request) -> dict:
    """A platform's signed decision: 202 once recorded (it is published from the outbox); 401 if
    it does not verify; 409 for a ticket we do not hold (yet: the platform should retry); 503 if
    the database is down."""
    try:
        count = await _service(request).accept_callback(callback.platform, callback.verified)
    except InvalidCallback as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"callback refused: {exc}") from None
    except UnknownTicket as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return {"status": "accepted", "answers": count}


@operators.post("/tickets/{platform}/{ticket_id}/answer", status_code=status.HTTP_202_ACCEPTED)
async def record_answer(
    platform: Platform, ticket_id: StoredText, request: Request, caller: Caller,
    envelope: Annotated[dict[str, Any], Body(examples=[{"decision": {
        "visibility": ["content_removed"], "ground": "illegal_content", "territorial_scope": ["GB"],
        "explanation": "removed after our e-mail", "decided_at": "2026-11-22T10:00:00Z"}}])],
) -> dict:
    """Record a platform's answer given outside its API (e-mail channels only): a decision or an
    information request, in the decision-object format, under the operator's identity."""
    try:
        answer = await _service(request).record_by_hand(platform, ticket_id, envelope, by=caller)
    except (UnknownTicket, UnknownPlatform) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except NotAnsweredByHand as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidAnswer as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    kind = "decision" if isinstance(answer, Decision) else "information_request"
    return {"status": "accepted", "recorded": kind, "referral_id": str(answer.referral_id)}


@operators.get("/operators/stuck")
async def stuck_work(request: Request, older_than_s: Annotated[float | None, Query(ge=0)] = None) -> list[dict]:
    """What made no progress within the bound (default REDRIVE_AFTER_S), per step and platform: due
    deliveries, undecided tickets, events outcomes has not confirmed (as `takedown reconcile`)."""
    bound = request.app.state.redrive_after_s if older_than_s is None else older_than_s
    async with request.app.state.sessions() as session:
        return [row.as_json() for row in await reconciler.stuck(session, bound)]
