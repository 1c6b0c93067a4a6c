"""Answers from platforms: the decision object of docs/platform-apis.md, polled ticket states
and callback items, as Decision or InformationRequest."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from services.dispatcher.adapters.base import Decision, InformationRequest, InvalidCallback, PlatformAnswer
from shared.events import AccountAction, Ground, NoActionReason, Visibility, describe_errors, storable
from shared.redact import redact

EXCERPT_CHARS = 200


def excerpt(text: str, secrets: tuple[str, ...] = ()) -> str:
    """The start of a body on one line, with credentials and secrets (these and those registered) blanked out."""
    text = " ".join(redact(text, secrets).split())  # redacted before it is cut: a cut secret would not match
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def an_id(value: Any) -> str | None:
    """value as a ticket id (a non-blank string or an integer Postgres can store), else None."""
    ok = isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip()
    try:
        return storable(str(value)) if ok else None
    except ValueError:
        return None


# -- the decision object ---------------------------------------------------------------------------

class InvalidAnswer(ValueError):
    """A decision object or information request that does not follow the contract."""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are ignored; enums are strict

    _storable = field_validator("*")(storable)


class DecisionObject(_Lenient):
    """The decision object of docs/platform-apis.md."""

    visibility: list[Visibility] = Field(default_factory=list)
    account: AccountAction | None = None
    ground: Ground | None = None
    territorial_scope: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(default_factory=list)
    no_action_reason: NoActionReason | None = None
    explanation: str | None = None
    decided_at: datetime

    @field_validator("visibility", "territorial_scope", mode="before")
    @classmethod
    def _lists(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return []  # null reads as none
        if info.field_name == "territorial_scope" and isinstance(value, list):
            return [v.strip().upper() if isinstance(v, str) else v for v in value]
        return value


class InformationRequestObject(_Lenient):
    """What a platform sends in place of a decision when it needs to know more."""

    question: str = Field(min_length=1)
    requested_at: datetime


def parse_answer(envelope: Mapping[str, Any], ticket_id: str, referral_id: UUID) -> PlatformAnswer:
    """The Decision or InformationRequest an object carries under `decision` or `information_request`."""
    decision, request = envelope.get("decision"), envelope.get("information_request")
    if (decision is None) == (request is None):
        raise InvalidAnswer("expected exactly one of 'decision' and 'information_request'")
    try:
        if request is not None:
            asked = InformationRequestObject.model_validate(request)
            return InformationRequest(ticket_id, referral_id, _utc(asked.requested_at), asked.question)
        d = DecisionObject.model_validate(decision)
    except ValidationError as exc:
        raise InvalidAnswer(describe_errors(exc)) from None
    return Decision(ticket_id=ticket_id, referral_id=referral_id, decided_at=_utc(d.decided_at),
                    visibility=tuple(d.visibility), account=d.account, ground=d.ground,
                    territorial_scope=tuple(d.territorial_scope), no_action_reason=d.no_action_reason,
                    explanation=d.explanation)


def answer_from_status(body: Mapping[str, Any], ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
    """A polled ticket's answer: None while `status` is open, else its decision or information request."""
    status, answered = body.get("status"), "decision" in body or "information_request" in body
    if status in ("open", "received") or (status is None and not answered):
        return None
    if status not in (None, "decided", "information_requested"):
        raise InvalidAnswer(f"unknown ticket status {excerpt(str(status))!r}")
    return parse_answer(body, ticket_id, referral_id)


# -- callbacks ---------------------------------------------------------------------------------------

def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with lower-case names, whatever mapping they came in."""
    return {k.lower(): v for k, v in headers.items()}


def callback_json(body: bytes) -> dict[str, Any]:
    """A callback's JSON object; InvalidCallback when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's parser goes
        raise InvalidCallback("callback body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidCallback("callback body is not a JSON object")
    return data


def callback_answer(item: Any, ticket_key: str, reference_key: str) -> PlatformAnswer:
    """The answer one callback item carries (ticket and referral id under the given keys)."""
    if not isinstance(item, dict):
        raise InvalidCallback("callback item is not a JSON object")
    ticket = an_id(item.get(ticket_key))
    if ticket is None:
        raise InvalidCallback(f"callback without {ticket_key!r}")
    try:
        referral_id = UUID(str(item.get(reference_key)))
    except ValueError:
        raise InvalidCallback(f"callback {reference_key!r} is not a referral id") from None
    try:
        return parse_answer(item, ticket, referral_id)
    except InvalidAnswer as exc:
        raise InvalidCallback(f"invalid decision object: {exc}") from None
