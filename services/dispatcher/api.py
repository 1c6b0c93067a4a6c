"""Dispatcher's HTTP routes: platforms call back here with their decisions."""

from fastapi import APIRouter, HTTPException, Request, status

from services.dispatcher.domain import DecisionCallback
from services.dispatcher.service import DispatchService
from shared.events import Platform

router = APIRouter(prefix="/v1", tags=["callbacks"])


@router.post("/callbacks/{platform}", status_code=status.HTTP_202_ACCEPTED)
async def decision_callback(platform: str, callback: DecisionCallback, request: Request) -> dict:
    """Record a platform's decision; 202 once it is on Kafka, 503 (retry later) if it cannot be."""
    try:
        slug = Platform(platform)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown platform {platform!r}") from None
    service: DispatchService = request.app.state.dispatcher
    await service.record_decision(slug, callback)
    return {"status": "accepted", "referral_id": str(callback.reference)}
