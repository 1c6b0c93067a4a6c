"""Meta (Facebook, Instagram): OAuth2 client credentials; decisions come back by signed webhook."""

import logging
from collections.abc import Mapping

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, DeliveryError,
                                               InvalidCallback, PlatformAnswer, Receipt)
from services.dispatcher.adapters.http import (OAuth2Adapter, callback_answer, callback_json, callback_url,
                                               hex_signature, idempotency, lower_keys, receipt_from,
                                               signatures_match)
from shared.events import Category, Platform, ReferralSubmitted

log = logging.getLogger(__name__)

VIOLATION_TYPES = {
    Category.people_smuggling: "human_exploitation",
    Category.human_trafficking: "human_exploitation",
    Category.terrorism: "dangerous_organizations",
    Category.violent_extremism: "dangerous_organizations",
    Category.fraud: "fraud_and_scams",
    Category.illegal_goods: "restricted_goods",
    Category.other: "other",
}
SURFACES = (Platform.facebook, Platform.instagram)


class MetaConfig(AdapterConfig):
    """Meta's settings; secrets default to the sandbox's."""

    client_id: str = Field("sandbox-meta", description="OAuth2 client id.")
    client_secret: SecretStr = Field(SecretStr("sandbox-meta-secret"), description="OAuth2 client secret.")
    app_secret: SecretStr = Field(SecretStr("sandbox-meta-app-secret"),
                                  description="Verifies callbacks' X-Hub-Signature-256.")


class MetaAdapter(OAuth2Adapter):
    """Reports to Meta's law-enforcement API; reads its signed callbacks."""

    slug = "meta"
    title = "Meta (Facebook, Instagram)"
    hosts = ("facebook.com", "fb.com", "fb.me", "fb.watch", "instagram.com", "instagr.am")
    auth = AuthKind.oauth2_client_credentials
    decisions = DecisionMode.webhook
    Config = MetaConfig
    default_platforms = SURFACES
    token_path = "/meta/oauth/token"
    config: MetaConfig

    def payload(self, referral: ReferralSubmitted) -> dict:
        """The body of meta's report for referral."""
        if referral.platform not in SURFACES:
            raise DeliveryError(f"meta reports only facebook and instagram, not {referral.platform}", permanent=True)
        return {
            "surface": referral.platform.value,
            "content_url": referral.canonical_url,
            "violation_type": VIOLATION_TYPES[referral.category],
            "external_reference": str(referral.referral_id),
            "reporter": {"organization": referral.agency, "case_number": referral.case_reference},
            "evidence_hashes": [item.sha256 for item in referral.evidence],
            "callback_url": callback_url(self.config, referral),
        }

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Report referral; the decision comes back to the callback URL."""
        response = await self.send("POST", "/meta/v1/reports", json=self.payload(referral),
                                   headers=idempotency(referral))
        receipt = receipt_from(response, "report_id", secrets=self.secrets())
        log.debug("meta: referral %s reported as %s", referral.referral_id, receipt.ticket_id)
        return receipt

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[PlatformAnswer]:
        """Verify X-Hub-Signature-256 and read every entry's decision or information request."""
        given = lower_keys(headers).get("x-hub-signature-256", "").lower()
        if not signatures_match(hex_signature(self.config.app_secret, body), given):
            raise InvalidCallback("missing or wrong X-Hub-Signature-256")
        data = callback_json(body)
        entries = data.get("entry")
        if data.get("object") != "takedown_report" or not isinstance(entries, list) or not entries:
            raise InvalidCallback("expected a takedown_report object with entries")
        return [callback_answer(entry, "report_id", "external_reference") for entry in entries]
