"""Intake's HTTP routes: thin, they validate and call the service."""

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.intake.db import OUTBOX
from services.intake.domain import Submission
from services.intake.service import IntakeService, WrongAgency, own_agency, validate_each
from shared.auth import DENIED, Caller, Role, require
from shared.stuck import outbox_stuck

BATCH_MAX = 1000
router = APIRouter(prefix="/v1", tags=["referrals"], dependencies=[require(Role.agency)], responses=DENIED)
operators = APIRouter(prefix="/v1/operators", tags=["operators"], dependencies=[require(Role.operator)],
                      responses=DENIED)


class ReferralAccepted(BaseModel):
    referral_id: UUID
    platform: str = Field(examples=["facebook"])
    canonical_url: str
    duplicate: bool = Field(description="True when the idempotency key was seen before: the first referral is returned.")


class FieldError(BaseModel):
    field: str = Field(examples=["url"])
    message: str


class BatchItemResult(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "invalid"]
    referral_id: UUID | None = None
    platform: str | None = None
    canonical_url: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    referrals: list[Any] = Field(min_length=1, max_length=BATCH_MAX, description="Submissions, each validated on its own.")


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    invalid: int
    results: list[BatchItemResult]


def _service(request: Request) -> IntakeService:
    return request.app.state.intake


# Answered by app.py's handler of Refused (services/intake/backpressure.py), raised before anything is stored.
REFUSED = {"responses": {429: {"description": "Intake is at its bound of work not yet dispatched: nothing was "
                                              "accepted (a batch is refused whole); retry after Retry-After seconds."}}}


@router.post("/referrals", status_code=status.HTTP_202_ACCEPTED, response_model=ReferralAccepted, **REFUSED)
async def submit_referral(submission: Submission, request: Request, caller: Caller) -> ReferralAccepted:
    """Accept one referral from the caller's agency; 202 once it is durably stored, with its id,
    platform and canonical URL."""
    _check_agency([submission], caller)
    [accepted] = await _service(request).submit([(submission, caller)], via="http")
    return ReferralAccepted(**accepted.__dict__)


@router.post("/referrals/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchResult, **REFUSED)
async def submit_batch(batch: BatchRequest, request: Request, caller: Caller) -> BatchResult:
    """Accept up to 1,000 referrals from the caller's agency; each item gets its own result, invalid
    ones their errors. An item naming another agency refuses the whole batch (403)."""
    checked = validate_each(batch.referrals)
    valid = [(i, s) for i, s in enumerate(checked) if isinstance(s, Submission)]
    _check_agency([s for _, s in valid], caller)
    accepted = await _service(request).submit([(s, caller) for _, s in valid], via="http")
    results = [
        BatchItemResult(index=i, status="invalid", errors=field_errors(s))
        for i, s in enumerate(checked) if isinstance(s, ValidationError)
    ]
    for (i, _), a in zip(valid, accepted, strict=True):
        results.append(BatchItemResult(
            index=i, status="duplicate" if a.duplicate else "accepted", referral_id=a.referral_id,
            platform=a.platform, canonical_url=a.canonical_url))
    results.sort(key=lambda r: r.index)
    dupes = sum(r.status == "duplicate" for r in results)
    return BatchResult(accepted=len(valid) - dupes, duplicates=dupes,
                       invalid=len(results) - len(valid), results=results)


def _check_agency(submissions: list[Submission], caller: Caller) -> None:
    """403 if any submission names an agency other than the caller's."""
    for submission in submissions:
        try:
            own_agency(submission, caller)
        except WrongAgency as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


def field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(field=".".join(str(p) for p in e["loc"]) or "body", message=e["msg"])
        for e in exc.errors()
    ]


@operators.get("/stuck")
async def stuck_work(request: Request, older_than_s: Annotated[float | None, Query(ge=0)] = None) -> list[dict]:
    """Events the dispatcher or outcomes has not confirmed within the bound (default REDRIVE_AFTER_S),
    per topic and reader: they are published again until confirmed (as `takedown reconcile`)."""
    bound = request.app.state.redrive_after_s if older_than_s is None else older_than_s
    async with request.app.state.sessions() as session:
        return [row.as_json() for row in await outbox_stuck(session, OUTBOX, "intake", bound)]
