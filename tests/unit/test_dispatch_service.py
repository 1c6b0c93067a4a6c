"""The dispatcher without Kafka: registry, service, stable ids, and the reporting-API adapter."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.dispatcher import domain
from services.dispatcher.adapters.base import DeliveryError, Receipt
from services.dispatcher.adapters.registry import AdapterRegistry, UnknownPlatform
from services.dispatcher.adapters.reporting_api import ReportingApiAdapter, ReportingApiConfig
from services.dispatcher.handlers import parse_referral
from services.dispatcher.service import DispatchService
from shared.embedded import free_port
from shared.events import Event, Outcome, Platform, ReferralDispatched, ReferralDispatchFailed, to_kafka
from shared.reliability import Poison
from shared.topics import REFERRALS_DISPATCH, TAKEDOWN_DECISIONS
from tests.fakes import FakeAdapter, RecordingBroker, referral
from tests.support import serving

# --- AdapterRegistry -------------------------------------------------------------------------


def test_the_registry_finds_the_adapter_serving_a_platform():
    registry = AdapterRegistry()
    meta = FakeAdapter("meta", (Platform.facebook, Platform.instagram))
    tube = FakeAdapter("tube", (Platform.youtube,))
    registry.register(meta)
    registry.register(tube)

    assert registry.for_platform(Platform.instagram) is meta
    assert registry.for_platform(Platform.youtube) is tube
    assert registry.by_slug("meta") is meta
    assert list(registry) == [meta, tube]


def test_a_platform_served_by_two_adapters_is_a_configuration_error():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("first", (Platform.x,)))

    with pytest.raises(ValueError, match="already served by first"):
        registry.register(FakeAdapter("second", (Platform.x,)))


def test_an_adapter_slug_registered_twice_is_a_configuration_error():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("same", (Platform.x,)))

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(FakeAdapter("same", (Platform.tiktok,)))


def test_a_refused_adapter_leaves_the_registry_as_it_was():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("tube", (Platform.youtube,)))

    with pytest.raises(ValueError):
        registry.register(FakeAdapter("greedy", (Platform.facebook, Platform.youtube)))

    with pytest.raises(UnknownPlatform):
        registry.for_platform(Platform.facebook)
    assert [a.slug for a in registry] == ["tube"]


def test_a_platform_nobody_serves_raises_unknown_platform():
    registry = AdapterRegistry()
    registry.register(FakeAdapter("tube", (Platform.youtube,)))

    with pytest.raises(UnknownPlatform, match="telegram"):
        registry.for_platform(Platform.telegram)


# --- DispatchService -------------------------------------------------------------------------


def service_with(*adapters: FakeAdapter, attempts: int = 5) -> tuple[DispatchService, RecordingBroker]:
    registry, broker = AdapterRegistry(), RecordingBroker()
    for adapter in adapters:
        registry.register(adapter)
    return DispatchService(registry, broker, attempts=attempts, backoff_base_s=0.001), broker


async def test_an_accepted_referral_is_published_as_dispatched_with_its_ticket_keyed_by_referral_id():
    adapter = FakeAdapter.succeeding("FB-42")
    service, broker = service_with(adapter)
    ref = referral()

    await service.dispatch(ref)

    assert adapter.calls == [ref]
    [event] = broker.events(REFERRALS_DISPATCH)
    assert event.type == "referral.dispatched" and event.actor == "service:dispatcher"
    assert event.data == ReferralDispatched(referral_id=ref.referral_id, platform=Platform.facebook,
                                            adapter="fake", ticket_id="FB-42", attempts=1)
    assert broker.keys(REFERRALS_DISPATCH) == [ref.referral_id]


async def test_a_permanent_failure_is_published_once_as_dispatch_failed_without_a_retry():
    adapter = FakeAdapter.failing_permanently("HTTP 400: url rejected")
    service, broker = service_with(adapter)
    ref = referral()

    await service.dispatch(ref)

    assert len(adapter.calls) == 1
    [event] = broker.events(REFERRALS_DISPATCH)
    assert event.data == ReferralDispatchFailed(referral_id=ref.referral_id, platform=Platform.facebook,
                                                adapter="fake", reason="HTTP 400: url rejected",
                                                attempts=1, permanent=True)


async def test_transient_failures_are_retried_until_the_platform_accepts():
    adapter = FakeAdapter.failing_transiently(times=2, then="FB-7")
    service, broker = service_with(adapter)

    await service.dispatch(referral())

    assert len(adapter.calls) == 3
    [event] = broker.events(REFERRALS_DISPATCH)
    assert isinstance(event.data, ReferralDispatched)
    assert (event.data.ticket_id, event.data.attempts) == ("FB-7", 3)


async def test_a_transient_failure_on_every_attempt_ends_in_a_dispatch_failed_that_is_not_permanent():
    adapter = FakeAdapter.always_failing_transiently("HTTP 503")
    service, broker = service_with(adapter, attempts=4)

    await service.dispatch(referral())

    assert len(adapter.calls) == 4
    [event] = broker.events(REFERRALS_DISPATCH)
    assert isinstance(event.data, ReferralDispatchFailed)
    assert (event.data.reason, event.data.attempts, event.data.permanent) == ("HTTP 503", 4, False)


async def test_a_referral_for_a_platform_without_an_adapter_fails_permanently_with_adapter_none():
    adapter = FakeAdapter.succeeding(platforms=(Platform.youtube,))
    service, broker = service_with(adapter)

    await service.dispatch(referral(Platform.telegram))

    assert adapter.calls == []
    [event] = broker.events(REFERRALS_DISPATCH)
    assert isinstance(event.data, ReferralDispatchFailed)
    assert (event.data.adapter, event.data.permanent, event.data.attempts) == ("none", True, 0)
    assert "telegram" in event.data.reason


async def test_a_decision_is_published_as_takedown_decided_by_the_platform_at_decision_time():
    service, broker = service_with()
    decided_at = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    callback = domain.DecisionCallback(ticket_id="FB-1", reference=uuid4(), outcome=Outcome.rejected,
                                       reason="no_violation", note="no breach", decided_at=decided_at)

    await service.record_decision(Platform.facebook, callback)

    [event] = broker.events(TAKEDOWN_DECISIONS)
    assert (event.actor, event.time, event.referral_id) == ("platform:facebook", decided_at, callback.reference)
    assert (event.data.outcome, event.data.reason, event.data.platform_note) == ("rejected", "no_violation",
                                                                                 "no breach")


# --- stable ids and parsing --------------------------------------------------------------------


def test_the_same_inputs_always_give_the_same_event_id():
    rid = uuid4()

    assert domain.stable_id(rid, "dispatched", "T-1") == domain.stable_id(rid, "dispatched", "T-1")
    assert (domain.dispatched(rid, Platform.x, "a", "T-1", 1).id
            == domain.dispatched(rid, Platform.x, "a", "T-1", 2).id)


def test_a_different_ticket_or_referral_gives_a_different_event_id():
    rid = uuid4()
    first = domain.dispatched(rid, Platform.x, "a", "T-1", 1).id

    assert domain.dispatched(rid, Platform.x, "a", "T-2", 1).id != first
    assert domain.dispatched(uuid4(), Platform.x, "a", "T-1", 1).id != first
    assert domain.dispatch_failed(rid, Platform.x, "a", "T-1", 1, permanent=True).id != first


def test_a_cloudevent_of_another_type_on_referrals_submitted_is_poison():
    other = Event(source="/test", actor="service:test",
                  data=ReferralDispatched(referral_id=uuid4(), platform=Platform.x, adapter="a", ticket_id="T"))
    _, value, headers = to_kafka(other)

    with pytest.raises(Poison, match="expected referral.submitted, got referral.dispatched"):
        parse_referral(headers, value)


# --- ReportingApiAdapter against a real HTTP server ----------------------------------------------


class PlatformApi:
    """A reporting API that answers scripted (status, body) pairs and records each request."""

    def __init__(self, *answers: tuple[int, dict | str]):
        self.answers, self.requests = list(answers), []
        self.app = FastAPI(title="fake platform API")
        self.app.add_api_route("/platforms/{platform}/reports", self.receive, methods=["POST"])

    async def receive(self, platform: str, request: Request):
        self.requests.append({"platform": platform, "headers": dict(request.headers), "body": await request.json()})
        status, body = self.answers.pop(0)
        return JSONResponse(body, status) if isinstance(body, dict) else PlainTextResponse(body, status)


async def submit_to(api: PlatformApi, ref) -> Receipt:
    async with serving(api.app) as url:
        return await submit_at(url, ref)


async def submit_at(url: str, ref) -> Receipt:
    adapter = ReportingApiAdapter("api", (ref.platform,), ReportingApiConfig(
        base_url=url, callback_base_url="http://dispatcher.test", timeout_s=5))
    try:
        return await adapter.submit(ref)
    finally:
        await adapter.close()


async def test_a_201_from_the_reporting_api_is_a_receipt_for_a_report_keyed_by_referral_id():
    api, ref = PlatformApi((201, {"ticket_id": "yt-1", "duplicate": False})), referral(Platform.youtube)

    receipt = await submit_to(api, ref)

    assert receipt == Receipt(ticket_id="yt-1", duplicate=False)
    [seen] = api.requests
    assert seen["platform"] == "youtube"
    assert seen["headers"]["idempotency-key"] == str(ref.referral_id)
    assert seen["body"]["reference"] == str(ref.referral_id)
    assert seen["body"]["url"] == ref.canonical_url
    assert seen["body"]["callback_url"] == "http://dispatcher.test/v1/callbacks/youtube"


async def test_a_replayed_report_is_a_receipt_marked_duplicate():
    receipt = await submit_to(PlatformApi((200, {"ticket_id": "yt-1", "duplicate": True})), referral())

    assert receipt == Receipt(ticket_id="yt-1", duplicate=True)


@pytest.mark.parametrize("status", [429, 503])
async def test_a_busy_or_unavailable_reporting_api_is_a_transient_delivery_error(status):
    with pytest.raises(DeliveryError) as caught:
        await submit_to(PlatformApi((status, "slow down")), referral())

    assert caught.value.permanent is False and caught.value.reason == f"HTTP {status}"


async def test_a_400_from_the_reporting_api_is_a_permanent_delivery_error_with_its_body():
    with pytest.raises(DeliveryError) as caught:
        await submit_to(PlatformApi((400, "url is not on this platform")), referral())

    assert caught.value.permanent is True
    assert caught.value.reason == "HTTP 400: url is not on this platform"


@pytest.mark.parametrize("status, body, permanent", [(201, {"status": "received"}, False),
                                                     (201, "<html>ok</html>", False), (302, "elsewhere", True)])
async def test_a_reply_without_a_ticket_is_a_delivery_error_not_a_crash(status, body, permanent):
    with pytest.raises(DeliveryError) as caught:
        await submit_to(PlatformApi((status, body)), referral())

    assert caught.value.reason.startswith(f"HTTP {status}") and caught.value.permanent is permanent


async def test_a_reporting_api_nobody_listens_on_is_a_transient_delivery_error():
    with pytest.raises(DeliveryError) as caught:
        await submit_at(f"http://127.0.0.1:{free_port()}", referral())

    assert caught.value.permanent is False and "ConnectError" in caught.value.reason
