"""YouTube: an API key; decisions are polled."""

import logging
from uuid import UUID

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, PlatformAnswer, Receipt)
from services.dispatcher.adapters.http import (HttpAdapter, idempotency,
                                               receipt_from)
from shared.events import Platform, ReferralSubmitted

log = logging.getLogger(__name__)


class YouTubeConfig(AdapterConfig):
    """YouTube's settings; the key defaults to the sandbox's."""

    api_key: SecretStr = Field(SecretStr("sandbox-youtube-key"), description="Sent as X-Api-Key.")


class YouTubeAdapter(HttpAdapter):
    """Flags videos to YouTube and polls the flags."""

    slug = "youtube"
    title = "YouTube"
    hosts = ("youtube.com", "youtu.be")
    auth = AuthKind.api_key
    decisions = DecisionMode.polling
    Config = YouTubeConfig
    default_platforms = (Platform.youtube,)
    api_key_header = "X-Api-Key"
    config: YouTubeConfig

    def payload(self, referral: ReferralSubmitted) -> dict:
        """The body of youtube's flag for referral."""
        return {
            "video_url": referral.canonical_url,
            "reason_code": referral.category.value.upper(),
            "flagger_reference": str(referral.referral_id),
            "notes": referral.notes,
        }

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Flag referral's video; its decision is polled."""
        response = await self.send("POST", "/youtube/v1/flags", json=self.payload(referral),
                                   headers=idempotency(referral))
        receipt = receipt_from(response, "flag_id", secrets=self.secrets())
        log.debug("youtube: referral %s flagged as %s", referral.referral_id, receipt.ticket_id)
        return receipt

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        """The flag's decision or information request; None while it is open."""
        return await self.poll_ticket("/youtube/v1/flags", ticket_id, referral_id)
