"""Dispatcher's domain: platform answers as lifecycle events, with stable event ids. No I/O.

Event ids are derived from what happened (uuid5), so a redelivered referral, a repeated
callback or a second poll of the same answer produces the same event id, and the outcomes
service records it once.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from services.dispatcher.adapters.base import Decision, InformationRequest, PlatformAnswer
from shared.auth.principal import Principal
from shared.events import (Event, InformationForwarded, InformationForwardFailed, Platform, ReferralDispatched,
                           ReferralDispatchFailed, TakedownDecided, TakedownInformationRequested, actor, summarise)
from shared.redact import redact

SOURCE = "/takedown/dispatcher"
SERVICE = actor("service", "dispatcher")


def stable_id(*parts: object) -> UUID:
    return uuid5(NAMESPACE_URL, "takedown:" + ":".join(str(p) for p in parts))


def dispatched(referral_id: UUID, platform: Platform, adapter: str, ticket_id: str, attempts: int,
               dispatch: int = 1, at: datetime | None = None) -> Event:
    """The referral reached the platform; at is when the report was sent, so that a decision the
    platform made before we had written this down is still after it in the referral's history."""
    data = ReferralDispatched(referral_id=referral_id, platform=platform, adapter=adapter,
                              ticket_id=ticket_id, attempts=attempts, dispatch=dispatch)
    return Event(id=stable_id(referral_id, "dispatched", ticket_id), source=SOURCE, actor=SERVICE, data=data,
                 **({"time": at} if at else {}))


def dispatch_failed(referral_id: UUID, platform: Platform, adapter: str, reason: str,
                    attempts: int, permanent: bool, dispatch: int = 1) -> Event:
    """The referral could not be delivered; credentials and secrets in reason (a platform may echo them) blanked out."""
    data = ReferralDispatchFailed(referral_id=referral_id, platform=platform, adapter=adapter,
                                  reason=redact(reason), attempts=attempts, permanent=permanent, dispatch=dispatch)
    return Event(id=stable_id(referral_id, "dispatch_failed", dispatch, attempts), source=SOURCE,
                 actor=SERVICE, data=data)


def forwarded(answer: Event, platform: Platform, adapter: str, ticket_id: str, attempts: int) -> Event:
    """The agency's answer (the referral.information_supplied event) reached the platform's ticket."""
    data = InformationForwarded(referral_id=answer.referral_id, platform=platform, adapter=adapter,
                                ticket_id=ticket_id, answer_event_id=answer.id, attempts=attempts)
    return Event(id=stable_id(answer.referral_id, "information_forwarded", answer.id), source=SOURCE, actor=SERVICE,
                 data=data)


def forward_failed(referral_id: UUID, answer_id: UUID, platform: Platform | None, adapter: str, reason: str,
                   attempts: int, permanent: bool) -> Event:
    """The agency's answer (event answer_id) could not be forwarded; secrets in reason blanked out."""
    data = InformationForwardFailed(referral_id=referral_id, platform=platform, adapter=adapter,
                                    answer_event_id=answer_id, reason=redact(reason), attempts=attempts,
                                    permanent=permanent)
    return Event(id=stable_id(referral_id, "information_forward_failed", answer_id, attempts), source=SOURCE,
                 actor=SERVICE, data=data)


def answered(platform: Platform, answer: PlatformAnswer, by: Principal | None = None) -> Event:
    """A platform's decision or request for information, as the event that records it.

    `by` is who told us, as authenticated: the platform by its signed callback, or an operator who
    recorded an answer given by e-mail; without it (a poll, a receipt), the platform itself.
    """
    who, credential = (by.actor, by.credential) if by else (actor("platform", platform.value), None)
    if isinstance(answer, InformationRequest):
        data = TakedownInformationRequested(referral_id=answer.referral_id, platform=platform,
                                            ticket_id=answer.ticket_id, question=answer.question)
        return Event(id=stable_id(answer.referral_id, "information_requested", answer.ticket_id, answer.requested_at),
                     source=SOURCE, actor=who, credential=credential, time=answer.requested_at, data=data)
    return Event(id=stable_id(answer.referral_id, "decided", answer.ticket_id, answer.decided_at),
                 source=SOURCE, actor=who, credential=credential, time=answer.decided_at,
                 data=decided_data(platform, answer))


def decided_data(platform: Platform, decision: Decision) -> TakedownDecided:
    return TakedownDecided(
        referral_id=decision.referral_id, platform=platform, ticket_id=decision.ticket_id,
        outcome=summarise(decision.visibility, decision.account, decision.no_action_reason),
        decision_visibility=list(decision.visibility), decision_account=decision.account,
        decision_ground=decision.ground, territorial_scope=list(decision.territorial_scope),
        no_action_reason=decision.no_action_reason, platform_explanation=decision.explanation,
    )
