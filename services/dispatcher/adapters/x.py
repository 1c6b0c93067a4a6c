"""X: OAuth2 client credentials; decisions come back by webhook signed with a timestamp, and can be
asked for; answers are replies to the report."""

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from uuid import UUID

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, InvalidCallback,
                                               PlatformAnswer, Receipt, VerifiedCallback)
from services.dispatcher.adapters.http import (OAuth2Adapter, base64_signature, callback_answer, callback_json,
                                               callback_url, evidence_hashes, idempotency, lower_keys, receipt_from,
                                               signatures_match, ticket_path)
from shared.events import InformationSupplied, Platform, ReferralSubmitted

log = logging.getLogger(__name__)

MAX_SIGNATURE_AGE_S = 300
UNIX_SECONDS = re.compile(r"\d{1,12}")


class XConfig(AdapterConfig):
    """X's settings; secrets default to the sandbox's."""

    client_id: str = Field("sandbox-x", description="OAuth2 client id.")
    client_secret: SecretStr = Field(SecretStr("sandbox-x-secret"), description="OAuth2 client secret.")
    consumer_secret: SecretStr = Field(SecretStr("sandbox-x-consumer-secret"),
                                       description="Verifies callbacks' X-Signature.")


class XAdapter(OAuth2Adapter):
    """Reports to X; reads its timestamped, signed callbacks."""

    slug = "x"
    title = "X"
    hosts = ("x.com", "twitter.com")
    auth = AuthKind.oauth2_client_credentials
    decisions = DecisionMode.webhook
    Config = XConfig
    default_platforms = (Platform.x,)
    token_path = "/x/oauth2/token"
    has_status_api = True
    config: XConfig
    clock: Callable[[], float] = staticmethod(time.time)

    def payload(self, referral: ReferralSubmitted) -> dict:
        """The body of x's report for referral."""
        return {
            "url": referral.canonical_url,
            "policy": referral.category.value,
            "reporter_reference": str(referral.referral_id),
            "callback_url": callback_url(self.config, referral),
        }

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Report referral; the decision comes back to the callback URL."""
        response = await self.send("POST", "/x/2/reports", json=self.payload(referral), headers=idempotency(referral))
        receipt = receipt_from(response, "data", "report_id", secrets=self.secrets())
        log.debug("x: referral %s reported as %s", referral.referral_id, receipt.ticket_id)
        return receipt

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        """The report's decision or information request (under `data`); None while it is open."""
        return await self.poll_ticket(ticket_path("/x/2/reports", ticket_id), ticket_id, referral_id, within="data")

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """Post the agency's answer as a reply to the report."""
        body = {"reporter_reference": str(supplied.referral_id), "text": supplied.answer,
                "evidence_hashes": evidence_hashes(supplied)}
        await self.post_answer(ticket_path("/x/2/reports", ticket_id, "/replies"), idempotency_key, json=body)

    def parse_callback(self, headers: Mapping[str, str], body: bytes, platform: Platform) -> VerifiedCallback:
        """Verify X-Timestamp and X-Signature (refused after 5 minutes) and read the answer."""
        lowered = lower_keys(headers)
        timestamp = lowered.get("x-timestamp", "").strip()
        if not UNIX_SECONDS.fullmatch(timestamp):
            raise InvalidCallback("missing or malformed X-Timestamp")
        age = self.clock() - int(timestamp)
        if abs(age) > MAX_SIGNATURE_AGE_S:
            raise InvalidCallback(f"X-Timestamp is {age:.0f} s from now; at most {MAX_SIGNATURE_AGE_S} s allowed")
        signed = timestamp.encode() + b"." + body
        if not signatures_match(base64_signature(self.config.consumer_secret, signed), lowered.get("x-signature")):
            raise InvalidCallback("missing or wrong X-Signature")
        return VerifiedCallback((callback_answer(callback_json(body), "report_id", "reporter_reference"),),
                                replay_key="sha256:" + hashlib.sha256(signed).hexdigest(),
                                fresh_until=int(timestamp) + MAX_SIGNATURE_AGE_S)
