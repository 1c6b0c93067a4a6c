"""The contract every platform adapter passes, whatever it speaks (HTTP, e-mail, ...).

Subclass AdapterContract once per adapter, as `Test<Something>` (the base itself is not
collected; its test methods run in every subclass). The subclass provides a `peer` fixture
(whatever stands in for the platform: the sandbox, an SMTP server...; the hooks receive it)
and implements the hooks:

    class TestMyAdapter(AdapterContract):
        platform = Platform.other

        @pytest.fixture
        async def peer(self):
            async with serving(create_app(SandboxSettings(sandbox_decision_delay_s=0))) as url:
                yield url

        async def make_adapter(self, peer):
            return MyAdapter(MyAdapter.Config(base_url=peer))

        async def make_adapter_with_bad_credentials(self, peer):
            return MyAdapter(MyAdapter.Config(base_url=peer, api_key="wrong"))  # None: no credentials

        async def make_unreachable_adapter(self, peer, port):
            return MyAdapter(MyAdapter.Config(base_url=f"http://127.0.0.1:{port}"))

        async def reports_at_peer(self, peer, referral):
            ...  # how many distinct reports of this referral the peer holds

        async def answers_at_peer(self, peer, receipt, referral):
            ...  # how many distinct answers (agency -> platform) the peer holds on the ticket

        async def callback_for(self, peer, referral):
            ...  # webhook adapters only: the raw (headers, body) the peer called back with

How an answer comes back is answer_for's business; its default follows the adapter's
DecisionMode: the receipt's answer, else polling with a deadline (polling, response), the
callback_for callback parsed (webhook), or None (manual: an operator records decisions).
Adapters whose platform has a status API (has_status_api) also take the StatusApi tests.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import uuid4

import pytest

from services.dispatcher.adapters.base import (Decision, DecisionMode, DeliveryError, InformationRequest,
                                               InvalidCallback, PlatformAdapter, PlatformAnswer, Receipt)
from shared.embedded import free_port
from shared.events import Category, Evidence, InformationSupplied, Platform, ReferralSubmitted
from tests.support import eventually


class AdapterContract:
    """Tests every adapter must pass; subclasses provide `peer` and the hooks below."""

    platform: ClassVar[Platform]
    replays_are_flagged: ClassVar[bool] = True  # False if the peer cannot tell the adapter of a replay
    decision_timeout_s: ClassVar[float] = 20.0

    # -- hooks ---------------------------------------------------------------------------------

    async def make_adapter(self, peer: Any) -> PlatformAdapter:
        """An adapter configured to deliver to peer."""
        raise NotImplementedError

    async def make_adapter_with_bad_credentials(self, peer: Any) -> PlatformAdapter | None:
        """An adapter whose credentials peer refuses; None if the adapter has none."""
        raise NotImplementedError

    async def make_unreachable_adapter(self, peer: Any, port: int) -> PlatformAdapter:
        """An adapter pointed at 127.0.0.1:port, where nothing listens."""
        raise NotImplementedError

    async def reports_at_peer(self, peer: Any, referral: ReferralSubmitted) -> int:
        """How many distinct reports of referral the peer holds."""
        raise NotImplementedError

    async def answers_at_peer(self, peer: Any, receipt: Receipt, referral: ReferralSubmitted) -> int:
        """How many distinct answers to its questions the peer holds on receipt's ticket."""
        raise NotImplementedError

    async def callback_for(self, peer: Any, referral: ReferralSubmitted) -> tuple[Mapping[str, str], bytes]:
        """Webhook adapters: the raw headers and body of the peer's callback on referral."""
        raise NotImplementedError(f"{type(self).__name__} must capture callbacks")

    async def answer_for(self, peer: Any, adapter: PlatformAdapter, receipt: Receipt,
                         referral: ReferralSubmitted) -> PlatformAnswer | None:
        """The platform's answer on referral, found the way adapter's decisions come back."""
        if receipt.answer is not None:
            return receipt.answer
        if adapter.decisions is DecisionMode.manual:
            return None
        if adapter.decisions is DecisionMode.webhook:
            verified = adapter.parse_callback(*await self.callback_for(peer, referral), self.platform)
            return next((a for a in verified.answers if a.referral_id == referral.referral_id), None)
        return await eventually(lambda: adapter.poll(receipt.ticket_id, referral.referral_id),
                                self.decision_timeout_s, f"{adapter.slug} to answer on {receipt.ticket_id}")

    def make_referral(self) -> ReferralSubmitted:
        """A new, valid referral to this contract's platform."""
        return ReferralSubmitted(
            referral_id=uuid4(), agency="NCA", url=f"https://{self.platform.value}.example/p/1?utm_source=x",
            canonical_url=f"https://{self.platform.value}.example/p/1", platform=self.platform,
            category=Category.people_smuggling, case_reference="OP-CONTRACT", notes="Crossings for sale.",
            evidence=[Evidence(sha256="ab" * 32, captured_at=datetime.now(UTC))], submitted_at=datetime.now(UTC))

    def make_answer(self, referral: ReferralSubmitted) -> InformationSupplied:
        """The agency's answer to a question the platform asked about referral."""
        return InformationSupplied(referral_id=referral.referral_id, answer="Terrorism Act 2006, s.2; order OP-7.",
                                   evidence=[Evidence(sha256="cd" * 32, captured_at=datetime.now(UTC))])

    # -- plumbing --------------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    async def _adapters_are_closed(self):
        self._opened: list[PlatformAdapter] = []
        yield
        for adapter in self._opened:
            await adapter.close()

    def _track(self, adapter: PlatformAdapter | None) -> PlatformAdapter | None:
        if adapter is not None:
            self._opened.append(adapter)
        return adapter

    async def adapter(self, peer: Any) -> PlatformAdapter:
        """make_adapter's adapter, closed when the test ends."""
        return self._track(await self.make_adapter(peer))

    # -- the contract ------------------------------------------------------------------------------

    async def test_a_report_gets_a_ticket(self, peer):
        referral = self.make_referral()
        receipt = await (await self.adapter(peer)).submit(referral)
        assert receipt.ticket_id.strip() and not receipt.duplicate
        assert await self.reports_at_peer(peer, referral) == 1

    async def test_the_same_referral_twice_makes_one_report_and_returns_the_same_ticket(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        first, again = await adapter.submit(referral), await adapter.submit(referral)
        assert again.ticket_id == first.ticket_id
        assert await self.reports_at_peer(peer, referral) == 1
        if self.replays_are_flagged:
            assert (first.duplicate, again.duplicate) == (False, True)

    async def test_a_replay_from_a_restarted_adapter_still_returns_the_first_ticket(self, peer):
        referral = self.make_referral()
        first = await (await self.adapter(peer)).submit(referral)
        again = await (await self.adapter(peer)).submit(referral)
        assert again.ticket_id == first.ticket_id
        assert await self.reports_at_peer(peer, referral) == 1

    async def test_bad_credentials_are_a_permanent_delivery_error(self, peer):
        adapter = self._track(await self.make_adapter_with_bad_credentials(peer))
        assert adapter is not None, "every adapter here authenticates; one that does not needs no such test"
        referral = self.make_referral()
        with pytest.raises(DeliveryError) as refused:
            await adapter.submit(referral)
        assert refused.value.permanent, refused.value.reason
        assert await self.reports_at_peer(peer, referral) == 0

    async def test_an_unreachable_platform_is_a_transient_delivery_error(self, peer):
        adapter = self._track(await self.make_unreachable_adapter(peer, free_port()))
        with pytest.raises(DeliveryError) as failed:
            await adapter.submit(self.make_referral())
        assert not failed.value.permanent, failed.value.reason

    async def test_an_answer_reaches_the_platform_once_per_idempotency_key(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        receipt = await adapter.submit(referral)
        supplied = self.make_answer(referral)
        await adapter.answer(receipt.ticket_id, supplied, "answer-1")
        await adapter.answer(receipt.ticket_id, supplied, "answer-1")
        await (await self.adapter(peer)).answer(receipt.ticket_id, supplied, "answer-1")  # after a restart
        assert await self.answers_at_peer(peer, receipt, referral) == 1, "a replay is not a second answer"
        await adapter.answer(receipt.ticket_id, supplied, "answer-2")
        assert await self.answers_at_peer(peer, receipt, referral) == 2

    async def test_an_answer_with_bad_credentials_is_a_permanent_delivery_error(self, peer):
        referral = self.make_referral()
        receipt = await (await self.adapter(peer)).submit(referral)
        adapter = self._track(await self.make_adapter_with_bad_credentials(peer))
        with pytest.raises(DeliveryError) as refused:
            await adapter.answer(receipt.ticket_id, self.make_answer(referral), "answer-1")
        assert refused.value.permanent, refused.value.reason
        assert await self.answers_at_peer(peer, receipt, referral) == 0

    async def test_an_answer_to_an_unreachable_platform_is_a_transient_delivery_error(self, peer):
        adapter, referral = self._track(await self.make_unreachable_adapter(peer, free_port())), self.make_referral()
        with pytest.raises(DeliveryError) as failed:
            await adapter.answer("ticket-1", self.make_answer(referral), "answer-1")
        assert not failed.value.permanent, failed.value.reason


class AnswersComeBack(AdapterContract):
    """For adapters whose platform answers by itself: in the response, by webhook or by polling."""

    async def test_the_decision_comes_back_for_this_referral_and_ticket(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        receipt = await adapter.submit(referral)
        answer = await self.answer_for(peer, adapter, receipt, referral)
        assert answer is not None, "no answer came back"
        assert isinstance(answer, Decision | InformationRequest)
        assert (answer.referral_id, answer.ticket_id) == (referral.referral_id, receipt.ticket_id)


class StatusApi(AdapterContract):
    """For adapters whose platform has a status API: poll() tells what the platform decided, however
    its decisions otherwise come back (a callback the platform gave up on is not a decision lost)."""

    async def test_polling_after_the_decision_returns_it(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        assert adapter.has_status_api
        receipt = await adapter.submit(referral)
        came_back = await self.answer_for(peer, adapter, receipt, referral)
        assert isinstance(came_back, Decision), came_back
        assert await adapter.poll(receipt.ticket_id, referral.referral_id) == came_back


class SignedCallbacks(AdapterContract):
    """For adapters whose platform calls back: only a correctly signed callback is believed."""

    async def test_a_callback_with_a_wrong_signature_is_refused(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        assert adapter.decisions is DecisionMode.webhook
        await adapter.submit(referral)
        headers, body = await self.callback_for(peer, referral)
        assert adapter.parse_callback(headers, body, self.platform).answers, "the genuine callback is accepted"
        with pytest.raises(InvalidCallback):
            adapter.parse_callback(headers, body + b" ", self.platform)  # still JSON, no longer what was signed
        with pytest.raises(InvalidCallback):
            adapter.parse_callback({k: v for k, v in headers.items() if "signature" not in k.lower()}, body,
                                   self.platform)
