"""Fakes for tests: a scriptable platform adapter (our port) and a recording broker (FastStream's)."""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, Decision, DecisionMode, DeliveryError,
                                               InformationRequest, InvalidCallback, PlatformAdapter, PlatformAnswer,
                                               Receipt, VerifiedCallback)
from shared.events import (Category, Event, InformationSupplied, NoActionReason, Platform, ReferralSubmitted, Visibility,
                           from_kafka)

SIGNATURE = "x-fake-signature"
DELIVERY = "x-fake-delivery"  # the callback's id, when a test wants replays recognised


def referral(platform: Platform = Platform.facebook, **overrides) -> ReferralSubmitted:
    """A valid referral.submitted payload for platform."""
    values = {
        "referral_id": uuid4(), "agency": "NCA", "url": f"https://{platform.value}.example/post/1?utm_source=x",
        "canonical_url": f"https://{platform.value}.example/post/1", "platform": platform,
        "category": Category.people_smuggling, "case_reference": "OP-1", "submitted_at": datetime.now(UTC),
        **overrides,
    }
    return ReferralSubmitted(**values)


def removal(ticket_id: str, referral_id: UUID) -> Decision:
    return Decision(ticket_id=ticket_id, referral_id=referral_id, decided_at=datetime.now(UTC),
                    visibility=(Visibility.content_removed,))


def rejection(ticket_id: str, referral_id: UUID) -> Decision:
    return Decision(ticket_id=ticket_id, referral_id=referral_id, decided_at=datetime.now(UTC),
                    no_action_reason=NoActionReason.no_violation)


class FakeAdapter(PlatformAdapter):
    """An adapter that answers from a script and records every referral it was given.

    Each submit takes the next answer from `script` (a ticket id, or a DeliveryError to raise);
    once it is used up, `then` answers every call. Tests may change `then` at any time (a
    platform going down or coming back). Tickets are "<ticket>-<delivery key>", one per dispatch.
    """

    slug = "fake"
    title = "Fake platform"
    auth = AuthKind.none
    decisions = DecisionMode.webhook

    def __init__(self, slug: str = "fake", platforms: tuple[Platform, ...] = (Platform.facebook,),
                 script: list[str | DeliveryError] | None = None, then: str | DeliveryError = "T",
                 decisions: DecisionMode = DecisionMode.webhook, answer_in_receipt: bool = False,
                 poll_answers: list[str] | None = None, max_in_flight: int = 8):
        super().__init__(AdapterConfig(max_in_flight=max_in_flight, poll_interval_s=0.05), platforms)
        self.slug, self.decisions, self.answer_in_receipt = slug, decisions, answer_in_receipt
        self.script, self.then = list(script or []), then
        self.poll_answers = list(poll_answers or [])  # "open", "removed" or "information" per poll
        self.calls: list[ReferralSubmitted] = []
        self.polls: list[str] = []
        self.answers: list[tuple[str, str, str]] = []  # (ticket, answer, idempotency key) as forwarded
        self.closed = False

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        self.calls.append(referral)
        answer = self.script.pop(0) if self.script else self.then
        if isinstance(answer, DeliveryError):
            raise DeliveryError(answer.reason, permanent=answer.permanent, retry_after=answer.retry_after)
        ticket = f"{answer}-{referral.delivery_key}"
        decision = removal(ticket, referral.referral_id) if self.answer_in_receipt else None
        return Receipt(ticket_id=ticket, answer=decision)

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        self.answers.append((ticket_id, supplied.answer, idempotency_key))

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        self.polls.append(ticket_id)
        step = self.poll_answers.pop(0) if self.poll_answers else "open"
        if step == "removed":
            return removal(ticket_id, referral_id)
        if step == "information":
            return InformationRequest(ticket_id, referral_id, datetime(2026, 1, 1, tzinfo=UTC), "Which post?")
        return None

    def parse_callback(self, headers, body: bytes, platform: Platform) -> VerifiedCallback:
        if headers.get(SIGNATURE) != "valid":
            raise InvalidCallback("signature does not verify")
        data = json.loads(body)
        return VerifiedCallback((rejection(data["ticket_id"], UUID(data["referral_id"])),),
                                replay_key=headers.get(DELIVERY), fresh_until=time.time() + 300)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Published:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def event(self) -> Event:
        return from_kafka(self.headers, self.value)


@dataclass
class RecordingBroker:
    """Stands in for FastStream's KafkaBroker: keeps what was published instead of sending it."""

    published: list[Published] = field(default_factory=list)

    async def publish(self, message: bytes, topic: str, *, key: bytes | None = None,
                      headers: dict[str, str] | None = None, **_: object) -> None:
        self.published.append(Published(topic, key, message, dict(headers or {})))

    def on(self, topic: str) -> list[Published]:
        return [p for p in self.published if p.topic == topic]

    def events(self, topic: str) -> list[Event]:
        return [p.event for p in self.on(topic)]
