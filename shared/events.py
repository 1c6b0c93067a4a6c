"""Lifecycle events, carried as CloudEvents 1.0 in Kafka binary mode (ce_* headers, JSON body).

Each event has a unique id, the referral id (as `subject` and in its data), the time it
happened, a schema version and the actor who caused it (agency, service or platform).
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    removed = "removed"
    restricted = "restricted"
    rejected = "rejected"


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
    """The platform decided on a reported item."""

    event_type: ClassVar[str] = "takedown.decided"

    platform: Platform
    ticket_id: str
    outcome: Outcome
    reason: str | None = Field(None, description="Why, e.g. no_violation for a rejection.")
    platform_note: str | None = None


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls
    for cls in (ReferralSubmitted, ReferralDispatched, ReferralDispatchFailed, TakedownDecided)
}


class Event(BaseModel):
    """A CloudEvents envelope around one event's data."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    source: str = Field(description="URI-reference of the service that emitted the event.")
    actor: str = Field(description="Who caused it: agency:<name>, service:<name> or platform:<slug>.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
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
    if headers.get("ce_specversion") != SPEC_VERSION:
        raise InvalidEvent(f"ce_specversion must be {SPEC_VERSION!r}")
    data_cls = EVENT_TYPES.get(headers.get("ce_type", ""))
    if data_cls is None:
        raise InvalidEvent(f"unknown ce_type {headers.get('ce_type')!r}")
    try:
        data = data_cls.model_validate_json(body)
        return Event(
            id=headers.get("ce_id"),
            source=headers.get("ce_source"),
            actor=headers.get("ce_actor", "unknown"),
            time=headers.get("ce_time"),
            data=data,
        )
    except ValidationError as exc:
        raise InvalidEvent(describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad field, for dead-letter reasons and logs."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)


Kind = Literal["agency", "service", "platform", "user"]


def actor(kind: Kind, name: str) -> str:
    """The actor string recorded with every event, e.g. 'agency:NCA'."""
    return f"{kind}:{name}"
