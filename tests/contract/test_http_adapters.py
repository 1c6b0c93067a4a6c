"""The HTTP adapters against the real sandbox (docs/platform-apis.md's dialects), one contract each.

Every test gets a sandbox of its own that decides at once, and a receiver that keeps each
callback's raw headers and body, so `GET /stats` counts this test's reports only. Every one of
these platforms has a status API, and takes the agency's answers to its questions.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI, Request

from services.dispatcher.adapters.base import (Decision, DeliveryError, InformationRequest, PlatformAdapter,
                                               Receipt)
from services.dispatcher.adapters.meta import MetaAdapter
from services.dispatcher.adapters.tiktok import TikTokAdapter
from services.dispatcher.adapters.webhook import WebhookAdapter
from services.dispatcher.adapters.x import XAdapter
from services.dispatcher.adapters.youtube import YouTubeAdapter
from services.sandbox.app import create_app
from services.sandbox.config import SandboxSettings
from shared.events import AccountAction, Ground, NoActionReason, Platform, ReferralSubmitted, Visibility
from tests.contract.contract import AdapterContract, AnswersComeBack, SignedCallbacks, StatusApi
from tests.support import eventually, serving


@dataclass
class Callback:
    platform: str
    headers: dict[str, str]
    body: bytes


@dataclass
class SandboxPeer:
    url: str
    receiver_url: str
    http: httpx.AsyncClient
    callbacks: list[Callback] = field(default_factory=list)


def receiver(callbacks: list[Callback]) -> FastAPI:
    """The dispatcher's callback route as a platform sees it: keeps each raw callback."""
    app = FastAPI(title="callback receiver")

    @app.post("/v1/callbacks/{platform}")
    async def receive(platform: str, request: Request) -> dict:
        callbacks.append(Callback(platform, dict(request.headers), await request.body()))
        return {"status": "accepted"}

    return app


async def sandbox_peer(policy: str):
    """A sandbox deciding every report at once by policy, and a receiver for its callbacks."""
    callbacks: list[Callback] = []
    settings = SandboxSettings(sandbox_policy=policy, sandbox_decision_delay_s=0)
    async with (serving(create_app(settings)) as url, serving(receiver(callbacks)) as receiver_url,
                httpx.AsyncClient(base_url=url) as http):
        yield SandboxPeer(url, receiver_url, http, callbacks)


class SandboxContract(AdapterContract):
    """The contract against the sandbox: the adapter class and its wrong credentials vary."""

    adapter_class: ClassVar[type[PlatformAdapter]]
    bad_credentials: ClassVar[dict[str, Any] | None]
    sandbox_path: ClassVar[str] = ""  # where the sandbox serves the dialect, under its root

    @pytest.fixture
    async def peer(self):
        async for peer in sandbox_peer("removed=1"):
            yield peer

    def configured(self, base_url: str, callback_base_url: str, **overrides: Any) -> PlatformAdapter:
        config = self.adapter_class.Config(base_url=base_url + self.sandbox_path,
                                           callback_base_url=callback_base_url, **overrides)
        return self.adapter_class(config, (self.platform,))

    async def make_adapter(self, peer: SandboxPeer) -> PlatformAdapter:
        return self.configured(peer.url, peer.receiver_url)

    async def make_adapter_with_bad_credentials(self, peer: SandboxPeer) -> PlatformAdapter | None:
        return self.configured(peer.url, peer.receiver_url, **self.bad_credentials)

    async def make_unreachable_adapter(self, peer: SandboxPeer, port: int) -> PlatformAdapter:
        return self.configured(f"http://127.0.0.1:{port}", peer.receiver_url)

    async def reports_at_peer(self, peer: SandboxPeer, referral: ReferralSubmitted) -> int:
        return (await peer.http.get("/stats")).json()["by_platform"][referral.platform.value]["reports"]

    async def answers_at_peer(self, peer: SandboxPeer, receipt: Receipt, referral: ReferralSubmitted) -> int:
        """The answers the sandbox recorded on the ticket (its inspection, whichever the dialect)."""
        response = await peer.http.get(f"/platforms/{referral.platform.value}/reports/{receipt.ticket_id}")
        assert response.status_code == 200, response.text
        return len(response.json()["answers"])

    async def callback_for(self, peer: SandboxPeer, referral: ReferralSubmitted) -> tuple[Mapping[str, str], bytes]:
        async def called_back() -> Callback | None:
            return next((c for c in peer.callbacks if str(referral.referral_id).encode() in c.body), None)

        found = await eventually(called_back, self.decision_timeout_s, f"a callback on {referral.referral_id}")
        assert found.platform == referral.platform.value, "called back at the referral's platform"
        return found.headers, found.body

    async def test_the_sandbox_counts_the_replay(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        await adapter.submit(referral)
        await adapter.submit(referral)
        stats = (await peer.http.get("/stats")).json()["by_platform"][self.platform.value]
        assert (stats["reports"], stats["duplicates"]) == (1, 1)

    async def test_an_outage_is_a_transient_delivery_error_with_the_platforms_retry_after(self, peer):
        down = await peer.http.post(f"/admin/{self.platform.value}/outage", json={"seconds": 30})
        assert down.json()["down"]
        with pytest.raises(DeliveryError) as failed:
            await (await self.adapter(peer)).submit(self.make_referral())
        assert not failed.value.permanent and "503" in failed.value.reason
        assert 25 <= failed.value.retry_after <= 30

    async def test_an_answer_during_an_outage_is_transient_with_the_platforms_retry_after(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        receipt = await adapter.submit(referral)
        await peer.http.post(f"/admin/{self.platform.value}/outage", json={"seconds": 30})
        with pytest.raises(DeliveryError) as failed:
            await adapter.answer(receipt.ticket_id, self.make_answer(referral), "answer-1")
        assert not failed.value.permanent and "503" in failed.value.reason
        assert 25 <= failed.value.retry_after <= 30
        await peer.http.post(f"/admin/{self.platform.value}/outage", json={"seconds": 0})
        await adapter.answer(receipt.ticket_id, self.make_answer(referral), "answer-1")
        assert await self.answers_at_peer(peer, receipt, referral) == 1

    async def test_an_answer_to_an_unknown_ticket_is_a_permanent_delivery_error(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        with pytest.raises(DeliveryError) as refused:
            await adapter.answer(f"{self.platform.value}-nothing", self.make_answer(referral), "answer-1")
        assert refused.value.permanent and "404" in refused.value.reason

    async def test_polling_an_unknown_ticket_is_a_permanent_delivery_error(self, peer):
        adapter = await self.adapter(peer)
        with pytest.raises(DeliveryError) as refused:
            await adapter.poll(f"{self.platform.value}-nothing", self.make_referral().referral_id)
        assert refused.value.permanent and "404" in refused.value.reason


class TestMetaAdapter(SandboxContract, AnswersComeBack, StatusApi, SignedCallbacks):
    platform = Platform.instagram
    adapter_class = MetaAdapter
    bad_credentials = {"client_secret": "not-the-secret"}


class TestYouTubeAdapter(SandboxContract, AnswersComeBack, StatusApi):
    platform = Platform.youtube
    adapter_class = YouTubeAdapter
    bad_credentials = {"api_key": "not-the-key"}


class TestXAdapter(SandboxContract, AnswersComeBack, StatusApi, SignedCallbacks):
    platform = Platform.x
    adapter_class = XAdapter
    bad_credentials = {"client_id": "not-the-client"}


class TestTikTokAdapter(SandboxContract, AnswersComeBack, StatusApi):
    platform = Platform.tiktok
    adapter_class = TikTokAdapter
    bad_credentials = {"api_key": "not-the-key"}


class TestWebhookAdapter(SandboxContract, AnswersComeBack, StatusApi, SignedCallbacks):
    platform = Platform.other
    adapter_class = WebhookAdapter
    bad_credentials = {"secret": "whsec_bm90LXRoZS1zYW5kYm94LXNlY3JldA=="}
    sandbox_path = "/platforms/other"


# -- every outcome the sandbox draws reads as the DSA fields, by callback and in the response --

OUTCOMES = {
    "removed": dict(visibility=(Visibility.content_removed,), ground=Ground.illegal_content),
    "restricted": dict(visibility=(Visibility.content_age_restricted,), ground=Ground.incompatible_with_terms),
    "account_suspended": dict(account=AccountAction.account_suspended, ground=Ground.incompatible_with_terms),
    "rejected": dict(no_action_reason=NoActionReason.no_violation),
    "insufficient_information": dict(no_action_reason=NoActionReason.insufficient_information),
    "content_not_found": dict(no_action_reason=NoActionReason.content_not_found),
}


@pytest.mark.parametrize("contract", [TestWebhookAdapter, TestTikTokAdapter], ids=["callback", "response"])
@pytest.mark.parametrize("outcome", [*OUTCOMES, "information_request"])
async def test_every_sandbox_outcome_comes_back_in_the_dsa_vocabulary(contract, outcome):
    suite = contract()
    async for peer in sandbox_peer(f"{outcome}=1"):
        adapter, referral = await suite.make_adapter(peer), suite.make_referral()
        try:
            receipt = await adapter.submit(referral)
            answer = await suite.answer_for(peer, adapter, receipt, referral)
        finally:
            await adapter.close()
    if outcome == "information_request":
        assert isinstance(answer, InformationRequest) and "legal basis" in answer.question
        return
    assert isinstance(answer, Decision)
    expected = {"visibility": (), "account": None, "ground": None, "no_action_reason": None, **OUTCOMES[outcome]}
    assert {name: getattr(answer, name) for name in expected} == expected
    assert answer.territorial_scope == ("GB",) and answer.explanation


# -- a question is decided once the agency's answer reached the platform, for every adapter ------------

CONTRACTS = [TestMetaAdapter, TestYouTubeAdapter, TestXAdapter, TestTikTokAdapter, TestWebhookAdapter]


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.adapter_class.slug for c in CONTRACTS])
async def test_a_question_is_decided_once_the_adapter_forwarded_the_answer(contract):
    suite = contract()
    async for peer in sandbox_peer("information_request=1"):
        adapter, referral = await suite.make_adapter(peer), suite.make_referral()
        try:
            receipt = await adapter.submit(referral)
            asked = await suite.answer_for(peer, adapter, receipt, referral)
            assert isinstance(asked, InformationRequest), asked
            assert await adapter.poll(receipt.ticket_id, referral.referral_id) == asked, "still asking"

            await adapter.answer(receipt.ticket_id, suite.make_answer(referral), f"{referral.referral_id}/answer/1")

            async def decision() -> Decision | None:
                answer = await adapter.poll(receipt.ticket_id, referral.referral_id)
                return answer if isinstance(answer, Decision) else None

            decided = await eventually(decision, 10, "the decision after the answer")
        finally:
            await adapter.close()
    assert decided.visibility == (Visibility.content_removed,)
