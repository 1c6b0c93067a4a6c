"""A generic JSON webhook, Standard Webhooks both ways (shared/webhooks.py): reports and decision
callbacks carry webhook-id, webhook-timestamp and webhook-signature, and name in their signed
body the platform they are for.

The report goes to `{base_url}/reports`; the sandbox serves it at `/platforms/{platform}/reports`,
so the default base_url is the sandbox's `/platforms/other`. A ticket's status is
`GET {base_url}/reports/{ticket_id}/status` (no body: the signature covers the ticket id in its
place) and the agency's answer `POST {base_url}/reports/{ticket_id}/information`, signed alike.
"""

import json
import logging
import time
from collections.abc import Callable, Mapping
from uuid import UUID

from pydantic import ConfigDict, Field, SecretStr, field_validator

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, InvalidCallback,
                                               PlatformAnswer, Receipt, VerifiedCallback)
from services.dispatcher.adapters.http import (HttpAdapter, callback_answer, callback_json, callback_url, excerpt,
                                               idempotency, receipt_from, ticket_path)
from shared import webhooks
from shared.events import InformationSupplied, Platform, ReferralSubmitted

log = logging.getLogger(__name__)


class WebhookConfig(AdapterConfig):
    """The webhook's settings; the secret defaults to the sandbox's."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a malformed secret is not echoed

    base_url: str = Field("http://127.0.0.1:8090/platforms/other",
                          description="Reports are posted to {base_url}/reports.")
    secret: SecretStr = Field(SecretStr("whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="),
                              description="`whsec_<base64>`: signs reports, verifies callbacks.")
    previous_secret: SecretStr | None = Field(
        None, description="The secret being rotated out: callbacks signed with it still verify, and "
                          "reports are signed with it too, until the platform has the new one.")

    @field_validator("secret", "previous_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            webhooks.check_secret(value.get_secret_value())
        return value


class WebhookAdapter(HttpAdapter):
    """Posts signed JSON reports; reads callbacks signed the same way."""

    slug = "webhook"
    title = "Generic JSON webhook (Standard Webhooks)"
    version = "2"
    auth = AuthKind.hmac
    decisions = DecisionMode.webhook
    Config = WebhookConfig
    default_platforms = (Platform.other,)
    has_status_api = True
    config: WebhookConfig
    clock: Callable[[], float] = staticmethod(time.time)

    def signing_secrets(self) -> list[str]:
        """The current secret, then the one being rotated out (if any)."""
        secrets = [self.config.secret, self.config.previous_secret]
        return [s.get_secret_value() for s in secrets if s is not None]

    def signed(self, payload: bytes) -> dict[str, str]:
        """Standard Webhooks headers for payload, as a new message (a new webhook-id)."""
        return webhooks.sign(self.signing_secrets(), payload, webhooks.new_message_id(), int(self.clock()))

    def payload(self, referral: ReferralSubmitted) -> dict:
        """The body of the webhook's report for referral."""
        return {
            "platform": referral.platform.value,
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
        # A new webhook-id per attempt: the platform refuses an id it has taken, and a retry of a
        # report it took (our timeout, its 201) must reach it; the Idempotency-Key makes it one ticket.
        headers = {**idempotency(referral), "Content-Type": "application/json", **self.signed(body)}
        response = await self.send("POST", "reports", content=body, headers=headers)
        receipt = receipt_from(response, "ticket_id", secrets=self.secrets())
        log.debug("webhook: referral %s reported as %s", referral.referral_id, receipt.ticket_id)
        return receipt

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        """The ticket's decision or information request, as its callback would tell; None while it is open."""
        return await self.poll_ticket(ticket_path("reports", ticket_id, "/status"), ticket_id, referral_id,
                                      headers=self.signed(ticket_id.encode()))

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """Post the agency's answer to the ticket, signed (each attempt a new message; the key makes it one answer)."""
        payload = {"ticket_id": ticket_id, "reference": str(supplied.referral_id), "answer": supplied.answer,
                   "evidence": [item.model_dump(mode="json") for item in supplied.evidence]}
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        await self.post_answer(ticket_path("reports", ticket_id, "/information"), idempotency_key, content=body,
                               headers={"Content-Type": "application/json", **self.signed(body)})

    def parse_callback(self, headers: Mapping[str, str], body: bytes, platform: Platform) -> VerifiedCallback:
        """Verify the Standard Webhooks signature and time, and that it was signed for platform."""
        try:
            signed = webhooks.verify(self.signing_secrets(), headers, body, now=self.clock())
        except webhooks.Refused as exc:
            raise InvalidCallback(str(exc)) from None
        data = callback_json(body)
        if data.get("platform") != platform.value:
            raise InvalidCallback(f"signed for another platform ({excerpt(str(data.get('platform')))!r}), "
                                  f"not {platform.value}")
        return VerifiedCallback((callback_answer(data, "ticket_id", "reference"),),
                                replay_key=f"webhook-id:{signed.message_id}", fresh_until=signed.fresh_until())
