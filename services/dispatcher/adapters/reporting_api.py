"""A platform reporting API over HTTP: POST a report, get a ticket, decisions come by webhook.

This is the shape the sandbox speaks; platform-specific adapters build on it.
"""

import httpx
from pydantic import BaseModel, Field

from services.dispatcher.adapters.base import DeliveryError, PlatformAdapter, Receipt
from shared.events import Platform, ReferralSubmitted

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ReportingApiConfig(BaseModel):
    base_url: str = Field(description="Base URL of the reporting API.")
    callback_base_url: str = Field(description="Where the platform sends decisions back.")
    timeout_s: float = 10.0


class ReportingApiAdapter(PlatformAdapter):
    """Reports to `{base_url}/platforms/{platform}/reports` with the referral id as idempotency key."""

    Config = ReportingApiConfig

    def __init__(self, slug: str, platforms: tuple[Platform, ...], config: ReportingApiConfig):
        self.slug, self.title = slug, f"Reporting API ({slug})"
        self._platforms, self.config = platforms, config
        self._client = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout_s)

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return self._platforms

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        payload = {
            "reference": str(referral.referral_id),
            "url": referral.canonical_url,
            "category": referral.category.value,
            "agency": referral.agency,
            "case_reference": referral.case_reference,
            "notes": referral.notes,
            "callback_url": f"{self.config.callback_base_url.rstrip('/')}/v1/callbacks/{referral.platform.value}",
        }
        try:
            response = await self._client.post(
                f"/platforms/{referral.platform.value}/reports",
                json=payload,
                headers={"Idempotency-Key": str(referral.referral_id)},
            )
        except httpx.TransportError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
        if response.status_code in RETRYABLE_STATUS:
            raise DeliveryError(f"HTTP {response.status_code}", permanent=False)
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code}: {response.text[:500]}", permanent=True)
        try:
            body = response.json()
            ticket_id = body["ticket_id"]
        except (ValueError, KeyError, TypeError) as exc:
            # The report may have been taken: retrying with the same Idempotency-Key is safe.
            raise DeliveryError(f"HTTP {response.status_code} without a ticket id: {response.text[:200]}",
                                permanent=False) from exc
        return Receipt(ticket_id=str(ticket_id), duplicate=bool(body.get("duplicate")))

    async def close(self) -> None:
        await self._client.aclose()
