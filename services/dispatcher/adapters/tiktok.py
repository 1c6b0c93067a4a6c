"""TikTok: an API key; decided in the response when immediate, else polled; answers are posted to the report."""

import logging
from uuid import UUID

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, PlatformAnswer, Receipt)
from services.dispatcher.adapters.http import (HttpAdapter, InvalidAnswer, answer_from_status, evidence_hashes,
                                               idempotency, json_object, receipt_from, ticket_path)
from shared.events import InformationSupplied, Platform, ReferralSubmitted

log = logging.getLogger(__name__)


class TikTokConfig(AdapterConfig):
    """TikTok's settings; the key defaults to the sandbox's."""

    api_key: SecretStr = Field(SecretStr("sandbox-tiktok-key"), description="Sent as X-Api-Key.")


class TikTokAdapter(HttpAdapter):
    """Reports to TikTok; takes immediate decisions, polls the rest."""

    slug = "tiktok"
    title = "TikTok"
    hosts = ("tiktok.com",)
    auth = AuthKind.api_key
    decisions = DecisionMode.response
    Config = TikTokConfig
    default_platforms = (Platform.tiktok,)
    api_key_header = "X-Api-Key"
    has_status_api = True
    config: TikTokConfig

    def payload(self, referral: ReferralSubmitted) -> dict:
        """The body of tiktok's report for referral."""
        return {"link": referral.canonical_url, "category": referral.category.value,
                "reference": str(referral.referral_id)}

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Report referral; the receipt carries the decision when tiktok decided at once."""
        response = await self.send("POST", "/tiktok/v1/reports", json=self.payload(referral),
                                   headers=idempotency(referral))
        receipt = receipt_from(response, "report_id", secrets=self.secrets())
        try:
            answer = answer_from_status(json_object(response), receipt.ticket_id, referral.referral_id)
        except InvalidAnswer as exc:
            # The report was taken: keep its ticket and learn the decision by polling.
            log.warning("tiktok: report %s answered with an unreadable decision (%s); it will be polled",
                        receipt.ticket_id, exc)
            answer = None
        return Receipt(receipt.ticket_id, receipt.duplicate, answer)

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        """The report's decision or information request; None while it is open."""
        return await self.poll_ticket(ticket_path("/tiktok/v1/reports", ticket_id), ticket_id, referral_id)

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """Post the information the report's request asked for."""
        body = {"reference": str(supplied.referral_id), "text": supplied.answer,
                "evidence_hashes": evidence_hashes(supplied)}
        await self.post_answer(ticket_path("/tiktok/v1/reports", ticket_id, "/information"), idempotency_key,
                               json=body)
