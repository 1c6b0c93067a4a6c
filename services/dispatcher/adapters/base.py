"""The port every platform adapter implements, and what it answers with."""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events import (AccountAction, Ground, InformationSupplied, NoActionReason, Platform,
                           ReferralSubmitted, Visibility)


class AuthKind(StrEnum):
    none = "none"
    api_key = "api_key"
    oauth2_client_credentials = "oauth2_client_credentials"
    hmac = "hmac"
    smtp = "smtp"


class DecisionMode(StrEnum):
    """How a platform's decisions come back."""

    response = "response"  # in the answer to the report (or else by polling)
    webhook = "webhook"  # the platform calls the dispatcher back
    polling = "polling"  # the dispatcher asks about open tickets on a schedule
    manual = "manual"  # an operator records what the platform answered (e-mail channels)


class RateLimit(BaseModel):
    per_second: float = Field(10.0, gt=0, description="Sustained requests per second.")
    burst: int = Field(20, ge=1, description="Requests allowed at once after a quiet spell.")


class AdapterConfig(BaseModel):
    """Settings every adapter has; adapters extend it (secrets as SecretStr, never logged)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8090", description="The platform API's base URL.")
    timeout_s: float = Field(10.0, gt=0)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    max_in_flight: int = Field(8, ge=1, description="Most reports under way at once.")
    callback_base_url: str = Field("http://127.0.0.1:8002", description="Where decisions are called back.")
    poll_interval_s: float = Field(60.0, gt=0, description="How often open tickets are polled.")


@dataclass(frozen=True)
class Decision:
    """A platform's decision, in the DSA statement-of-reasons vocabulary."""

    ticket_id: str
    referral_id: UUID
    decided_at: datetime
    visibility: tuple[Visibility, ...] = ()
    account: AccountAction | None = None
    ground: Ground | None = None
    territorial_scope: tuple[str, ...] = ()
    no_action_reason: NoActionReason | None = None
    explanation: str | None = None


@dataclass(frozen=True)
class InformationRequest:
    """The platform needs more from the agency before it decides."""

    ticket_id: str
    referral_id: UUID
    requested_at: datetime
    question: str


PlatformAnswer = Decision | InformationRequest


@dataclass(frozen=True)
class Receipt:
    """The platform's acknowledgement of a report, with its answer if it gave one at once."""

    ticket_id: str
    duplicate: bool = False
    answer: PlatformAnswer | None = field(default=None)


class DeliveryError(Exception):
    """A report (or answer) the platform did not take; permanent errors are not worth retrying."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.permanent, self.retry_after = reason, permanent, retry_after


class InvalidCallback(Exception):
    """A callback whose signature or content does not check out; it is refused."""


@dataclass(frozen=True)
class VerifiedCallback:
    """A callback whose signature checked out: its answers, and how to recognise it if it comes again.

    replay_key identifies this delivery among the adapter's (a webhook-id, a digest of what was
    signed); fresh_until (unix seconds) is when it turns stale and would be refused anyway, so the
    key need not be remembered longer. None for either: nothing to recognise a replay by.
    """

    answers: tuple[PlatformAnswer, ...]
    replay_key: str | None = None
    fresh_until: float | None = None


class PlatformAdapter(ABC):
    """Delivers referrals to one or more platforms the way they take them."""

    slug: ClassVar[str]
    title: ClassVar[str]
    version: ClassVar[str] = "1"
    hosts: ClassVar[tuple[str, ...]] = ()
    auth: ClassVar[AuthKind]
    decisions: ClassVar[DecisionMode]
    Config: ClassVar[type[AdapterConfig]] = AdapterConfig
    default_platforms: ClassVar[tuple[Platform, ...]] = ()
    # Whether poll() works: the platform has a status API, whatever way its decisions come back. The
    # dispatcher may then poll a webhook platform's undecided tickets, lest a lost callback lose a decision.
    has_status_api: ClassVar[bool] = False

    def __init__(self, config: AdapterConfig, platforms: tuple[Platform, ...] | None = None):
        self.config = config
        self.platforms = platforms or self.default_platforms

    @abstractmethod
    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Report one referral; the same referral twice must not make two reports."""

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        """The answer on an open ticket, or None while it is still open (adapters with has_status_api)."""
        raise NotImplementedError(f"{self.slug} does not poll")

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """Forward the agency's answer to the platform's ticket, in its dialect.

        The same idempotency_key twice records one answer at the platform. Raises DeliveryError as
        submit() does: transient (retry, after retry_after if given) or permanent (e.g. unknown ticket)."""
        raise NotImplementedError(f"{self.slug} cannot forward answers")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, platform: Platform) -> VerifiedCallback:
        """Verify and read a decision callback posted for platform (webhook adapters); InvalidCallback if it fails."""
        raise NotImplementedError(f"{self.slug} takes no callbacks")

    async def close(self) -> None:
        """Release connections; adapters without any need not override it."""
