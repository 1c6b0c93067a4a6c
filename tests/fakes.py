"""Fakes for tests: a scriptable platform adapter (our port) and a recording broker (FastStream's)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import BaseModel

from services.dispatcher.adapters.base import DeliveryError, PlatformAdapter, Receipt
from shared.events import Category, Event, Platform, ReferralSubmitted, from_kafka


def referral(platform: Platform = Platform.facebook, **overrides) -> ReferralSubmitted:
    """A valid referral.submitted payload for platform."""
    values = {
        "referral_id": uuid4(),
        "agency": "NCA",
        "url": f"https://{platform.value}.example/post/1?utm_source=x",
        "canonical_url": f"https://{platform.value}.example/post/1",
        "platform": platform,
        "category": Category.people_smuggling,
        "case_reference": "OP-1",
        "submitted_at": datetime.now(UTC),
        **overrides,
    }
    return ReferralSubmitted(**values)


class FakeAdapter(PlatformAdapter):
    """An adapter that answers from a script and records every referral it was given.

    Each call takes the next answer from `script` (a ticket id to succeed with, or a
    DeliveryError to raise); once the script is used up, `then` answers every call.
    """

    class Config(BaseModel):
        """A fake needs no configuration."""

    def __init__(self, slug: str = "fake", platforms: tuple[Platform, ...] = (Platform.facebook,),
                 script: list[str | DeliveryError] | None = None, then: str | DeliveryError = "T-1"):
        self.slug, self.title = slug, f"Fake ({slug})"
        self._platforms = platforms
        self.script, self.then = list(script or []), then
        self.calls: list[ReferralSubmitted] = []
        self.closed = False

    @classmethod
    def succeeding(cls, ticket_id: str = "T-1", **kwargs) -> "FakeAdapter":
        return cls(then=ticket_id, **kwargs)

    @classmethod
    def failing_permanently(cls, reason: str = "HTTP 400: bad report", **kwargs) -> "FakeAdapter":
        return cls(then=DeliveryError(reason, permanent=True), **kwargs)

    @classmethod
    def failing_transiently(cls, times: int, then: str = "T-1", reason: str = "HTTP 503",
                            **kwargs) -> "FakeAdapter":
        return cls(script=[DeliveryError(reason, permanent=False)] * times, then=then, **kwargs)

    @classmethod
    def always_failing_transiently(cls, reason: str = "HTTP 503", **kwargs) -> "FakeAdapter":
        return cls(then=DeliveryError(reason, permanent=False), **kwargs)

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return self._platforms

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        self.calls.append(referral)
        answer = self.script.pop(0) if self.script else self.then
        if isinstance(answer, DeliveryError):
            raise DeliveryError(answer.reason, permanent=answer.permanent)
        return Receipt(ticket_id=answer)

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

    def events(self, topic: str) -> list[Event]:
        return [p.event for p in self.published if p.topic == topic]

    def keys(self, topic: str) -> list[UUID]:
        return [UUID(p.key.decode()) for p in self.published if p.topic == topic]
