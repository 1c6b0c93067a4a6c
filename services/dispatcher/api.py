"""Dispatcher's HTTP routes: platforms call back here with their decisions."""

from fastapi import APIRouter, HTTPException, Request, status

from services.dispatcher.adapters.base import InvalidCallback
from services.dispatcher.adapters.registry import UnknownPlatform
from services.dispatcher.service import DispatchService, UnknownTicket
from shared.events import Platform

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
