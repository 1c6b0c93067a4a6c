"""Meta (Facebook, Instagram): OAuth2 client credentials; decisions come back by signed webhook.

Meta's callbacks are signed X-Hub-Signature-256 (the body's HMAC with the app secret) and carry
no message id: each entry's `time` (unix seconds) dates them, and a replay is recognised by the
digest of the body. A report's status can be asked for (GET), and replies posted to it, with the
same bearer token as reports.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from pydantic import Field, SecretStr

from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, DeliveryError,
                                               InvalidCallback, PlatformAnswer, Receipt, VerifiedCallback)
from services.dispatcher.adapters.http import (OAuth2Adapter, callback_answer, callback_json, callback_url,
                                               evidence_hashes, hex_signature, idempotency, lower_keys, receipt_from,
                                               signatures_match, ticket_path)
from shared.events import Category, InformationSupplied, Platform, ReferralSubmitted
from shared.webhooks import TOLERANCE_S

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
    previous_app_secret: SecretStr | None = Field(
        None, description="The app secret being rotated out: callbacks signed with it still verify.")
    callback_tolerance_s: int = Field(
        TOLERANCE_S, ge=1, description="Entries dated further than this from now are refused. Meta sends a "
                                       "callback again, unchanged, for hours: one we could not take for longer "
                                       "than this (an outage) is then refused as stale.")


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
    has_status_api = True
    config: MetaConfig
    clock: Callable[[], float] = staticmethod(time.time)

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

    async def poll(self, ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
        """The report's decision or information request, as its callbacks would tell; None while it is open."""
        return await self.poll_ticket(ticket_path("/meta/v1/reports", ticket_id), ticket_id, referral_id)

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """Post the agency's answer as a reply to the report."""
        body = {"external_reference": str(supplied.referral_id), "message": supplied.answer,
                "evidence_hashes": evidence_hashes(supplied)}
        await self.post_answer(ticket_path("/meta/v1/reports", ticket_id, "/replies"), idempotency_key, json=body)

    def parse_callback(self, headers: Mapping[str, str], body: bytes, platform: Platform) -> VerifiedCallback:
        """Verify X-Hub-Signature-256 (either app secret) and every entry's time, and read each entry's answer.

        Meta's callbacks do not name the surface: a ticket of the other one is not found for platform."""
        given = lower_keys(headers).get("x-hub-signature-256", "").lower()
        secrets = [s for s in (self.config.app_secret, self.config.previous_app_secret) if s is not None]
        if not any([signatures_match(hex_signature(secret, body), given) for secret in secrets]):
            raise InvalidCallback("wrong signature: missing or wrong X-Hub-Signature-256")
        data = callback_json(body)
        entries = data.get("entry")
        if data.get("object") != "takedown_report" or not isinstance(entries, list) or not entries:
            raise InvalidCallback("expected a takedown_report object with entries")
        oldest = min(self._entry_time(entry) for entry in entries)
        return VerifiedCallback(tuple(callback_answer(entry, "report_id", "external_reference") for entry in entries),
                                replay_key="sha256:" + hashlib.sha256(body).hexdigest(),
                                fresh_until=oldest + self.config.callback_tolerance_s)

    def _entry_time(self, entry: Any) -> int:
        """An entry's `time`, refused when it is missing or more than callback_tolerance_s from now."""
        moment = entry.get("time") if isinstance(entry, dict) else None
        if not isinstance(moment, int) or isinstance(moment, bool) or not 0 <= moment < 10**12:
            raise InvalidCallback("an entry without a time (unix seconds)")
        age, tolerance = self.clock() - moment, self.config.callback_tolerance_s
        if age > tolerance:
            raise InvalidCallback(f"stale: an entry's time is {age:.0f} s ago, at most {tolerance} s allowed")
        if age < -tolerance:
            raise InvalidCallback(f"an entry's time is {-age:.0f} s in the future, at most {tolerance} s allowed")
        return moment
