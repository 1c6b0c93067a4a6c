"""The CloudEvents 1.0 envelope, and its binary mode on Kafka (ce_* headers, JSON body)."""

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.events.lifecycle import EVENT_TYPES, EventData

SPEC_VERSION = "1.0"


class Event(BaseModel):
    """A CloudEvents envelope around one event's data."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    source: str = Field(min_length=1, description="URI-reference of the service that emitted the event.")
    actor: str = Field(min_length=1, description="Who caused it: agency:<name>, user:<name>, service:<name> or "
                                                 "platform:<slug>.")
    credential: str | None = Field(None, max_length=300, description="What proved the actor's identity: "
                                   "key:<key id>, oidc:<issuer>#<subject>, signed:<agency> (a signed Kafka record).")
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
    if event.credential:
        headers["ce_credential"] = event.credential
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
            credential=headers.get("ce_credential"),
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
