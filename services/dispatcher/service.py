"""Dispatcher's service layer: deliver a referral through its adapter, publish what happened."""

import asyncio
import logging

from faststream.kafka import KafkaBroker

from services.dispatcher import domain
from services.dispatcher.adapters.base import DeliveryError
from services.dispatcher.adapters.registry import AdapterRegistry, UnknownPlatform
from shared.events import Platform, ReferralSubmitted
from shared.kafka import publish_event
from shared.reliability import backoff
from shared.topics import REFERRALS_DISPATCH, TAKEDOWN_DECISIONS

log = logging.getLogger(__name__)


class DispatchService:
    def __init__(self, registry: AdapterRegistry, broker: KafkaBroker, attempts: int, backoff_base_s: float):
        self.registry, self.broker, self.attempts = registry, broker, attempts
        self.backoff_base_s = backoff_base_s

    async def dispatch(self, referral: ReferralSubmitted) -> None:
        """Deliver one referral, retrying transient failures; publish dispatched or dispatch_failed."""
        rid, platform = referral.referral_id, referral.platform
        try:
            adapter = self.registry.for_platform(platform)
        except UnknownPlatform as exc:
            event = domain.dispatch_failed(rid, platform, "none", str(exc), 0, permanent=True)
            await publish_event(self.broker, REFERRALS_DISPATCH, event)
            return
        for attempt in range(1, self.attempts + 1):
            try:
                receipt = await adapter.submit(referral)
            except DeliveryError as exc:
                if exc.permanent or attempt == self.attempts:
                    log.warning("referral %s to %s failed after %s attempts: %s", rid, platform, attempt, exc)
                    event = domain.dispatch_failed(rid, platform, adapter.slug, exc.reason, attempt, exc.permanent)
                    await publish_event(self.broker, REFERRALS_DISPATCH, event)
                    return
                log.info("referral %s to %s: attempt %s failed (%s), retrying", rid, platform, attempt, exc)
                await asyncio.sleep(backoff(attempt, base=self.backoff_base_s, cap=10.0))
                continue
            event = domain.dispatched(rid, platform, adapter.slug, receipt.ticket_id, attempt)
            await publish_event(self.broker, REFERRALS_DISPATCH, event)
            log.info("referral %s dispatched to %s as ticket %s", rid, platform, receipt.ticket_id)
            return

    async def record_decision(self, platform: Platform, callback: domain.DecisionCallback) -> None:
        """Publish a platform's decision as takedown.decided."""
        await publish_event(self.broker, TAKEDOWN_DECISIONS, domain.decided(platform, callback))
