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


CONTENT_TYPE = "application/json"


def to_kafka(event: Event) -> tuple[bytes, bytes, dict[str, str]]:
    """Return (key, value, headers) for binary-mode CloudEvents; the key is the referral id."""
    data = event.data
    subject = str(data.referral_id)
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.id),
        "ce_source": event.source,
        "ce_type": data.event_type,
        "ce_time": event.time.isoformat(),
        "ce_subject": subject,
        "ce_schemaversion": _SCHEMA_VERSIONS[data.event_type],
        "ce_actor": event.actor,
        "content-type": CONTENT_TYPE,
    }
    if event.credential:
        headers["ce_credential"] = event.credential
    # The serializer model_dump_json calls, without its per-call keyword handling: the same bytes.
    return subject.encode(), data.__pydantic_serializer__.to_json(data), headers


_SCHEMA_VERSIONS = {name: str(cls.schema_version) for name, cls in EVENT_TYPES.items()}


def from_kafka(headers: dict[str, str], body: bytes) -> Event:
    """Parse a binary-mode CloudEvent; raise InvalidEvent naming what is wrong."""
    # Undecodable header bytes arrive as U+FFFD: an audit entry must not carry a guessed actor.
    if _suspect(headers) and (garbled := _garbled(headers)):
        raise InvalidEvent(f"header {garbled!r} is not UTF-8 text")
    if headers.get("ce_specversion") != SPEC_VERSION:
        raise InvalidEvent(f"ce_specversion must be {SPEC_VERSION!r}")
    data_cls = EVENT_TYPES.get(headers.get("ce_type", ""))
    if data_cls is None:
        raise InvalidEvent(f"unknown ce_type {headers.get('ce_type')!r}")
    try:
        # The data from its JSON, then the envelope around it in one validation (the data, an
        # instance already, is taken as it is).
        event = Event.model_validate({
            "id": headers.get("ce_id"), "source": headers.get("ce_source"), "actor": headers.get("ce_actor"),
            "credential": headers.get("ce_credential"), "time": headers.get("ce_time"),
            "data": data_cls.model_validate_json(body)})
    except ValidationError as exc:
        raise InvalidEvent(describe_errors(exc)) from exc
    if headers.get("ce_subject") != str(event.data.referral_id):
        raise InvalidEvent("ce_subject does not match the referral id in the data")
    return event


def _suspect(headers: dict[str, str]) -> bool:
    """Whether any header may hold U+FFFD: one search over all values at once, not one per header."""
    try:
        return "\ufffd" in "".join(headers.values())
    except TypeError:  # a value that is not text: looked at one by one
        return True


def _garbled(headers: dict[str, str]) -> str | None:
    """The first (by name) ce_* header holding U+FFFD, if any."""
    return min((k for k, v in headers.items() if k.startswith("ce_") and isinstance(v, str) and "\ufffd" in v),
               default=None)


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad field, for dead-letter reasons and logs."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)


Kind = Literal["agency", "service", "platform", "user"]


def actor(kind: Kind, name: str) -> str:
    """The actor string recorded with every event, e.g. 'agency:NCA'."""
    return f"{kind}:{name}"
