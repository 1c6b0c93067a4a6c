"""The data of every lifecycle event, one model per event type."""

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.events.vocabulary import (AccountAction, Category, Ground, NoActionReason, Outcome, Platform,
                                      Priority, Visibility)

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]


def storable(value: Any) -> Any:
    """value, unless it is text that cannot be stored: JSON can carry a NUL character or an unpaired
    surrogate (\\u0000, \\ud800), but Postgres text cannot hold the one nor UTF-8 encode the other.

    A model applies it to its fields with an after-validator, so their own constraints come first.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode (it has an unpaired surrogate)") from None
    return value


StoredText = Annotated[str, AfterValidator(storable)]


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: Sha256
    captured_at: datetime
    archive_url: str | None = Field(None, max_length=2048)

    _storable = field_validator("archive_url")(storable)


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
    dispatch: int = Field(1, ge=1, description="1 for the referral; 2, 3... when escalated or appealed.")

    @property
    def delivery_key(self) -> str:
        """The idempotency key of this dispatch at the platform: one report per dispatch."""
        return str(self.referral_id) if self.dispatch == 1 else f"{self.referral_id}/{self.dispatch}"


class ReferralDispatched(EventData):
    """The platform accepted the report and gave it a ticket id."""

    event_type: ClassVar[str] = "referral.dispatched"

    platform: Platform
    adapter: str
    ticket_id: str
    attempts: int = 1
    dispatch: int = Field(1, ge=1, description="Which dispatch of the referral this was.")


class ReferralDispatchFailed(EventData):
    """The report could not be delivered to the platform."""

    event_type: ClassVar[str] = "referral.dispatch_failed"

    platform: Platform
    adapter: str
    reason: str
    attempts: int = 1
    permanent: bool = True
    dispatch: int = Field(1, ge=1, description="Which dispatch of the referral this was.")


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


class TakedownAcknowledged(EventData):
    """The platform says the report is under review (optional: not every platform says so)."""

    event_type: ClassVar[str] = "takedown.acknowledged"

    platform: Platform
    ticket_id: str


class InformationSupplied(EventData):
    """The agency answered a platform's request for information; the deadline clock runs again."""

    event_type: ClassVar[str] = "referral.information_supplied"

    answer: str = Field(min_length=1, max_length=10_000)
    evidence: list[Evidence] = Field(default_factory=list)


class InformationForwarded(EventData):
    """The agency's answer reached the platform, on the ticket that asked for it."""

    event_type: ClassVar[str] = "referral.information_forwarded"

    platform: Platform
    adapter: str
    ticket_id: str
    answer_event_id: UUID = Field(description="The referral.information_supplied event forwarded.")
    attempts: int = 1


class InformationForwardFailed(EventData):
    """The agency's answer could not be forwarded to the platform (the answer itself stays recorded)."""

    event_type: ClassVar[str] = "referral.information_forward_failed"

    platform: Platform | None = None
    adapter: str
    answer_event_id: UUID
    reason: str
    attempts: int = 1
    permanent: bool = True


class ReferralEscalated(EventData):
    """The agency escalates a pending referral: it is dispatched again, linked to the first."""

    event_type: ClassVar[str] = "referral.escalated"

    reason: str = Field(min_length=1, max_length=10_000)
    referral: ReferralSubmitted = Field(description="What is dispatched again (its dispatch number >= 2).")


class ReferralAppealed(EventData):
    """The agency appeals a rejection with more evidence: it is dispatched again, linked to the first."""

    event_type: ClassVar[str] = "referral.appealed"

    reason: str = Field(min_length=1, max_length=10_000)
    evidence: list[Evidence] = Field(default_factory=list)
    referral: ReferralSubmitted = Field(description="What is dispatched again, with the new evidence.")


class ReferralWithdrawn(EventData):
    """The agency withdraws its referral."""

    event_type: ClassVar[str] = "referral.withdrawn"

    reason: str | None = Field(None, max_length=10_000)


class ReferralOverdue(EventData):
    """No decision by the deadline for this category and platform."""

    event_type: ClassVar[str] = "referral.overdue"

    deadline: AwareDatetime


class ReferralExpired(EventData):
    """Given up waiting: no decision long after the deadline."""

    event_type: ClassVar[str] = "referral.expired"


class ContentReappeared(EventData):
    """A stays-down check found removed content reachable again; the referral reopens."""

    event_type: ClassVar[str] = "content.reappeared"

    url: str
    checked_at: AwareDatetime


class ContentStillDown(EventData):
    """A stays-down check found removed content still gone."""

    event_type: ClassVar[str] = "content.still_down"

    url: str
    checked_at: AwareDatetime


class ContentGoneWithoutReply(EventData):
    """A liveness check found referred content gone before the platform decided: not a platform decision."""

    event_type: ClassVar[str] = "content.gone_without_reply"

    url: str
    checked_at: AwareDatetime


class ReferralClosed(EventData):
    """The referral needs nothing more (by the agency, or by the system once settled)."""

    event_type: ClassVar[str] = "referral.closed"

    reason: str | None = Field(None, max_length=10_000)


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls
    for cls in (ReferralSubmitted, ReferralDispatched, ReferralDispatchFailed, TakedownDecided,
                TakedownInformationRequested, TakedownAcknowledged, InformationSupplied, InformationForwarded,
                InformationForwardFailed, ReferralEscalated,
                ReferralAppealed, ReferralWithdrawn, ReferralOverdue, ReferralExpired, ContentReappeared,
                ContentStillDown, ContentGoneWithoutReply, ReferralClosed)
}
