"""What an agency can do with a referral it made: escalate it, appeal a rejection, answer a
platform's question, or withdraw it. Each becomes a lifecycle event through the outbox, keyed
by the referral, so it follows the submission on the same partition.

Intake does not know the referral's current status; an action that does not fit it (say,
appealing a removal) is recorded all the same and shown as an anomaly in its history. Only the
agency that made a referral can act on it: to any other caller it does not exist (404). The
re-dispatches of one referral (escalations and appeals) are limited by MAX_REDISPATCHES, so a
client cannot make us report one item without end.
"""

from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.intake import db
from shared.auth import DENIED, Caller, Principal, Role, require
from shared.events import (Event, Evidence, InformationSupplied, ReferralAppealed, ReferralEscalated,
                           ReferralSubmitted, ReferralWithdrawn, storable)

SOURCE = "/takedown/intake"
router = APIRouter(prefix="/v1/referrals", tags=["agency actions"], dependencies=[require(Role.agency)],
                   responses={**DENIED, 404: {"description": "No such referral of the caller's agency."},
                              409: {"description": "The referral was re-dispatched as often as allowed."}})


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agency: str | None = Field(None, min_length=1, max_length=200,
                               description="Optional: the caller's own agency (another one is refused, 403).")

    _storable = field_validator("*")(storable)


class Escalation(Action):
    reason: str = Field(min_length=1, max_length=10_000, examples=["no answer after 72 hours"])


class Appeal(Action):
    reason: str = Field(min_length=1, max_length=10_000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)


class Withdrawal(Action):
    reason: str | None = Field(None, max_length=10_000)


class Answer(Action):
    answer: str = Field(min_length=1, max_length=10_000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)


class ActionAccepted(BaseModel):
    referral_id: UUID
    action: str
    event_id: UUID
    dispatch: int | None = Field(None, description="The new dispatch this action starts, if any.")


def again(original: ReferralSubmitted, dispatch: int, reason: str, evidence: list[Evidence]) -> ReferralSubmitted:
    """The referral as it is dispatched again: a new dispatch number, the new evidence and why."""
    notes = "\n\n".join(n for n in (original.notes, f"Dispatch {dispatch}: {reason}") if n)
    return original.model_copy(update={"dispatch": dispatch, "evidence": [*original.evidence, *evidence],
                                        "notes": notes})


async def _act(request: Request, caller: Principal, referral_id: UUID, body: Action, build,
               redispatch: bool) -> ActionAccepted:
    if body.agency is not None and body.agency != caller.agency:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"agency {body.agency!r} is not the caller's agency")
    sessions = request.app.state.sessions
    async with sessions() as session, session.begin():
        row = await db.referral_for_action(session, referral_id, redispatch)
        if row is None or row["submission"] is None or row["agency"] != caller.agency:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id}")
        if redispatch and row["dispatches"] > request.app.state.max_redispatches + 1:
            raise HTTPException(status.HTTP_409_CONFLICT, f"referral {referral_id} was dispatched again "
                                f"{request.app.state.max_redispatches} times already; no more re-dispatches")
        original = ReferralSubmitted.model_validate(row["submission"])
        data = build(original, row["dispatches"])
        event = Event(source=SOURCE, actor=caller.actor, credential=caller.credential, time=datetime.now(UTC),
                      data=data)
        await db.queue(session, event)
    request.app.state.relay.wake()
    dispatch = data.referral.dispatch if redispatch else None
    return ActionAccepted(referral_id=referral_id, action=event.type, event_id=event.id, dispatch=dispatch)


@router.post("/{referral_id}/escalate", status_code=status.HTTP_202_ACCEPTED, response_model=ActionAccepted)
async def escalate(referral_id: UUID, body: Escalation, request: Request, caller: Caller) -> ActionAccepted:
    """Escalate a pending referral: it is dispatched to the platform again, linked to the first."""
    return await _act(request, caller, referral_id, body, lambda r, n: ReferralEscalated(
        referral_id=referral_id, reason=body.reason, referral=again(r, n, body.reason, [])), redispatch=True)


@router.post("/{referral_id}/appeal", status_code=status.HTTP_202_ACCEPTED, response_model=ActionAccepted)
async def appeal(referral_id: UUID, body: Appeal, request: Request, caller: Caller) -> ActionAccepted:
    """Appeal a rejection with more evidence: dispatched again with it, in the same history."""
    return await _act(request, caller, referral_id, body, lambda r, n: ReferralAppealed(
        referral_id=referral_id, reason=body.reason, evidence=body.evidence,
        referral=again(r, n, body.reason, body.evidence)), redispatch=True)


@router.post("/{referral_id}/information", status_code=status.HTTP_202_ACCEPTED, response_model=ActionAccepted)
async def supply_information(referral_id: UUID, body: Answer, request: Request, caller: Caller) -> ActionAccepted:
    """Answer a platform's request for information; the deadline clock runs again."""
    return await _act(request, caller, referral_id, body, lambda r, n: InformationSupplied(
        referral_id=referral_id, answer=body.answer, evidence=body.evidence), redispatch=False)


@router.post("/{referral_id}/withdraw", status_code=status.HTTP_202_ACCEPTED, response_model=ActionAccepted)
async def withdraw(referral_id: UUID, body: Withdrawal, request: Request, caller: Caller) -> ActionAccepted:
    """Withdraw a referral."""
    return await _act(request, caller, referral_id, body, lambda r, n: ReferralWithdrawn(
        referral_id=referral_id, reason=body.reason), redispatch=False)
