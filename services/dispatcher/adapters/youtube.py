"""YouTube: an API key; decisions are polled; answers to its questions are responses to the flag."""

import logging
from uuid import UUID

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, PlatformAnswer, Receipt)
from services.dispatcher.adapters.http import (HttpAdapter, evidence_hashes, idempotency, receipt_from,
                                               ticket_path)
from shared.events import InformationSupplied, Platform, ReferralSubmitted

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
    has_status_api = True
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
        return await self.poll_ticket(ticket_path("/youtube/v1/flags", ticket_id), ticket_id, referral_id)

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """Post the agency's answer as a response to the flag."""
        body = {"flagger_reference": str(supplied.referral_id), "response_text": supplied.answer,
                "evidence_hashes": evidence_hashes(supplied)}
        await self.post_answer(ticket_path("/youtube/v1/flags", ticket_id, "/responses"), idempotency_key, json=body)
