"""Dispatcher's domain: platform answers as lifecycle events, with stable event ids. No I/O.

Event ids are derived from what happened (uuid5), so a redelivered referral or a repeated
callback produces the same event id and the outcomes service records it once.
"""

from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events import (Event, Outcome, Platform, ReferralDispatched, ReferralDispatchFailed,
                           TakedownDecided, actor)

SOURCE = "/takedown/dispatcher"
SERVICE = actor("service", "dispatcher")


class DecisionCallback(BaseModel):
    """A platform's decision on a reported item, as its webhook sends it."""

    model_config = ConfigDict(extra="ignore")

    ticket_id: str = Field(min_length=1, max_length=200)
    reference: UUID = Field(description="Our referral id, echoed back by the platform.")
    outcome: Outcome
    reason: str | None = Field(None, max_length=200)
    note: str | None = Field(None, max_length=10_000)
    decided_at: AwareDatetime


def stable_id(*parts: object) -> UUID:
    return uuid5(NAMESPACE_URL, "takedown:" + ":".join(str(p) for p in parts))


def dispatched(referral_id: UUID, platform: Platform, adapter: str, ticket_id: str, attempts: int) -> Event:
    data = ReferralDispatched(referral_id=referral_id, platform=platform, adapter=adapter,
                              ticket_id=ticket_id, attempts=attempts)
    return Event(id=stable_id(referral_id, "dispatched", ticket_id), source=SOURCE, actor=SERVICE, data=data)


def dispatch_failed(referral_id: UUID, platform: Platform, adapter: str, reason: str,
                    attempts: int, permanent: bool) -> Event:
    data = ReferralDispatchFailed(referral_id=referral_id, platform=platform, adapter=adapter,
                                  reason=reason, attempts=attempts, permanent=permanent)
    return Event(id=stable_id(referral_id, "dispatch_failed", attempts, reason), source=SOURCE,
                 actor=SERVICE, data=data)


def decided(platform: Platform, callback: DecisionCallback) -> Event:
    data = TakedownDecided(referral_id=callback.reference, platform=platform, ticket_id=callback.ticket_id,
                           outcome=callback.outcome, reason=callback.reason, platform_note=callback.note)
    return Event(
        id=stable_id(callback.reference, "decided", callback.ticket_id, callback.outcome, callback.decided_at),
        source=SOURCE, actor=actor("platform", platform.value), time=callback.decided_at, data=data,
    )
