"""A generic JSON webhook: reports and decisions both ways signed with one HMAC secret.

The report goes to `{base_url}/reports`; the sandbox serves it at `/platforms/{platform}/reports`,
so the default base_url is the sandbox's `/platforms/other`.
"""

import json
import logging
from collections.abc import Mapping

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, InvalidCallback,
                                               PlatformAnswer, Receipt)
from services.dispatcher.adapters.http import (HttpAdapter, callback_answer, callback_json, callback_url,
                                               hex_signature, idempotency, lower_keys, receipt_from,
                                               signatures_match)
from shared.events import Platform, ReferralSubmitted

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Takedown-Signature"


class WebhookConfig(AdapterConfig):
    """The webhook's settings; the secret defaults to the sandbox's."""

    base_url: str = Field("http://127.0.0.1:8090/platforms/other",
                          description="Reports are posted to {base_url}/reports.")
    secret: SecretStr = Field(SecretStr("sandbox-webhook-secret"),
                              description="Signs reports and verifies callbacks (X-Takedown-Signature).")


class WebhookAdapter(HttpAdapter):
    """Posts signed JSON reports; reads callbacks signed the same way."""

    slug = "webhook"
    title = "Generic JSON webhook"
    auth = AuthKind.hmac
    decisions = DecisionMode.webhook
    Config = WebhookConfig
    default_platforms = (Platform.other,)
    config: WebhookConfig

    def payload(self, referral: ReferralSubmitted) -> dict:
        """The body of the webhook's report for referral."""
        return {
            "reference": str(referral.referral_id),
            "url": referral.canonical_url,
            "category": referral.category.value,
            "agency": referral.agency,
            "case_reference": referral.case_reference,
            "notes": referral.notes,
            "callback_url": callback_url(self.config, referral),
        }

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Post the signed report; the decision comes back to the callback URL, signed the same way."""
        body = json.dumps(self.payload(referral), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {**idempotency(referral), "Content-Type": "application/json",
                   SIGNATURE_HEADER: hex_signature(self.config.secret, body)}
        response = await self.send("POST", "reports", content=body, headers=headers)
        receipt = receipt_from(response, "ticket_id", secrets=self.secrets())
        log.debug("webhook: referral %s reported as %s", referral.referral_id, receipt.ticket_id)
        return receipt

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[PlatformAnswer]:
        """Verify X-Takedown-Signature and read the decision or information request."""
        given = lower_keys(headers).get(SIGNATURE_HEADER.lower(), "").lower()
        if not signatures_match(hex_signature(self.config.secret, body), given):
            raise InvalidCallback(f"missing or wrong {SIGNATURE_HEADER}")
        return [callback_answer(callback_json(body), "ticket_id", "reference")]
