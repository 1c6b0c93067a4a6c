"""Lifecycle events, carried as CloudEvents 1.0 in Kafka binary mode (ce_* headers, JSON body).

Each event has a unique id, the referral id (as `subject` and in its data), the time it
happened, a schema version and the actor who caused it (agency, service or platform).
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

SPEC_VERSION = "1.0"


class Platform(StrEnum):
    facebook = "facebook"
    instagram = "instagram"
    youtube = "youtube"
    x = "x"
    tiktok = "tiktok"
    telegram = "telegram"
    other = "other"


class Category(StrEnum):
    people_smuggling = "people_smuggling"
    human_trafficking = "human_trafficking"
    terrorism = "terrorism"
    violent_extremism = "violent_extremism"
    fraud = "fraud"
    illegal_goods = "illegal_goods"
    other = "other"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Outcome(StrEnum):
    """The summary of a decision, for counting: derived from the DSA fields."""

    removed = "removed"
    restricted = "restricted"
    rejected = "rejected"


class Visibility(StrEnum):
    """DSA statement of reasons: restrictions of the visibility of content."""

    content_removed = "content_removed"
    content_disabled = "content_disabled"
    content_demoted = "content_demoted"
    content_age_restricted = "content_age_restricted"
    content_interaction_restricted = "content_interaction_restricted"
    content_labelled = "content_labelled"


class AccountAction(StrEnum):
    """DSA statement of reasons: suspension or termination of the account."""

    account_suspended = "account_suspended"
    account_terminated = "account_terminated"


class Ground(StrEnum):
    """DSA statement of reasons: the ground the platform decided on."""

    illegal_content = "illegal_content"
    incompatible_with_terms = "incompatible_with_terms"


class NoActionReason(StrEnum):
    """Why a platform did not act: the structured reasons the DSA schema lacks."""

    no_violation = "no_violation"  # terms and conditions not breached
    insufficient_information = "insufficient_information"
    content_not_found = "content_not_found"
    already_removed = "already_removed"
    out_of_scope = "out_of_scope"
    duplicate = "duplicate"


REMOVING = {Visibility.content_removed, Visibility.content_disabled}


def summarise(visibility: tuple[Visibility, ...] | list[Visibility], account: AccountAction | None,
              no_action_reason: NoActionReason | None) -> Outcome:
    """removed if the content or account is gone, restricted if limited, rejected otherwise."""
    if no_action_reason is not None or not (visibility or account):
        return Outcome.rejected
    if REMOVING & set(visibility) or account is not None:
        return Outcome.removed
    return Outcome.restricted


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: Sha256
    captured_at: datetime
    archive_url: str | None = Field(None, max_length=2048)


class EventData(BaseModel):
    """Base of every event's data: the event type and the schema version it belongs to."""

    model_config = ConfigDict(frozen=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    referral_id: UUID


class ReferralSubmitted(EventData):
    """An agency's referral, validated and canonicalised by intake."""

    event_type: ClassVar[str] = "referral.submitted"

    agency: str
    url: str = Field(description="The URL as the agency submitted it.")
    canonical_url: str
    platform: Platform
    category: Category
    priority: Priority = Priority.normal
    case_reference: str | None = None
    idempotency_key: str | None = None
    notes: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    received_via: Literal["http", "kafka"] = "http"
    submitted_at: datetime


class ReferralDispatched(EventData):
    """The platform accepted the report and gave it a ticket id."""

    event_type: ClassVar[str] = "referral.dispatched"

    platform: Platform
    adapter: str
    ticket_id: str
    attempts: int = 1


class ReferralDispatchFailed(EventData):
    """The report could not be delivered to the platform."""

    event_type: ClassVar[str] = "referral.dispatch_failed"

    platform: Platform
    adapter: str
    reason: str
    attempts: int = 1
    permanent: bool = True


class TakedownDecided(EventData):
    """The platform decided on a reported item (DSA statement-of-reasons fields)."""

    event_type: ClassVar[str] = "takedown.decided"

    platform: Platform
    ticket_id: str
    outcome: Outcome = Field(description="Summary: removed, restricted or rejected.")
    decision_visibility: list[Visibility] = Field(default_factory=list)
    decision_account: AccountAction | None = None
    decision_ground: Ground | None = None
    territorial_scope: list[str] = Field(default_factory=list, description="ISO 3166-1 alpha-2, or WW.")
    no_action_reason: NoActionReason | None = None
    platform_explanation: str | None = Field(None, description="The platform's own words.")


class TakedownInformationRequested(EventData):
    """The platform asks the agency for more information before it decides."""

    event_type: ClassVar[str] = "takedown.information_requested"

    platform: Platform
    ticket_id: str
    question: str


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls
    for cls in (ReferralSubmitted, ReferralDispatched, ReferralDispatchFailed, TakedownDecided,
                TakedownInformationRequested)
}


class Event(BaseModel):
    """A CloudEvents envelope around one event's data."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    source: str = Field(min_length=1, description="URI-reference of the service that emitted the event.")
    actor: str = Field(min_length=1, description="Who caused it: agency:<name>, service:<name> or platform:<slug>.")
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC), description="When it happened.")
    data: EventData

    @property
    def type(self) -> str:
        return self.data.event_type

    @property
    def referral_id(self) -> UUID:
        return self.data.referral_id


class InvalidEvent(ValueError):
    """A Kafka record that is not a valid takedown CloudEvent."""


def to_kafka(event: Event) -> tuple[bytes, bytes, dict[str, str]]:
    """Return (key, value, headers) for binary-mode CloudEvents; the key is the referral id."""
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.id),
        "ce_source": event.source,
        "ce_type": event.type,
        "ce_time": event.time.isoformat(),
        "ce_subject": str(event.referral_id),
        "ce_schemaversion": str(event.data.schema_version),
        "ce_actor": event.actor,
        "content-type": "application/json",
    }
    return str(event.referral_id).encode(), event.data.model_dump_json().encode(), headers


def from_kafka(headers: dict[str, str], body: bytes) -> Event:
    """Parse a binary-mode CloudEvent; raise InvalidEvent naming what is wrong."""
    # Undecodable header bytes arrive as U+FFFD: an audit entry must not carry a guessed actor.
    if garbled := sorted(k for k, v in headers.items() if k.startswith("ce_") and "\ufffd" in v):
        raise InvalidEvent(f"header {garbled[0]!r} is not UTF-8 text")
    if headers.get("ce_specversion") != SPEC_VERSION:
        raise InvalidEvent(f"ce_specversion must be {SPEC_VERSION!r}")
    data_cls = EVENT_TYPES.get(headers.get("ce_type", ""))
    if data_cls is None:
        raise InvalidEvent(f"unknown ce_type {headers.get('ce_type')!r}")
    try:
        data = data_cls.model_validate_json(body)
        event = Event(
            id=headers.get("ce_id"),
            source=headers.get("ce_source"),
            actor=headers.get("ce_actor"),
            time=headers.get("ce_time"),
            data=data,
        )
    except ValidationError as exc:
        raise InvalidEvent(describe_errors(exc)) from exc
    if headers.get("ce_subject") != str(event.referral_id):
        raise InvalidEvent("ce_subject does not match the referral id in the data")
    return event


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad field, for dead-letter reasons and logs."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)


Kind = Literal["agency", "service", "platform", "user"]


def actor(kind: Kind, name: str) -> str:
    """The actor string recorded with every event, e.g. 'agency:NCA'."""
    return f"{kind}:{name}"
