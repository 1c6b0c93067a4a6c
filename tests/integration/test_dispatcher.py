"""The dispatcher against a real broker and the real sandbox: referrals out, decisions back."""

import json
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import uuid4

import httpx
import pytest

from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.app import create_app
from services.dispatcher.config import DispatcherSettings
from services.sandbox.app import create_app as create_sandbox
from services.sandbox.config import SandboxSettings
from shared import topics
from shared.embedded import free_port
from shared.events import Event, Platform, from_kafka, to_kafka
from tests.fakes import FakeAdapter, referral
from tests.support import TopicReader, headers_of, produce, serving

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def running_dispatcher(settings_env: dict, *adapters: FakeAdapter, sandbox_url: str | None = None,
                             **overrides):
    """The dispatcher, on a port chosen first so platforms know where to call back; with adapters
    given, they replace the reporting-API adapters (and no platform API is needed)."""
    port = free_port()
    sandbox_url = sandbox_url or f"http://127.0.0.1:{free_port()}"
    settings = DispatcherSettings(**settings_env, sandbox_url=sandbox_url,
                                  dispatcher_callback_base_url=f"http://127.0.0.1:{port}",
                                  delivery_backoff_base_s=0.01, **overrides)
    registry = None
    if adapters:
        registry = AdapterRegistry()
        for adapter in adapters:
            registry.register(adapter)
    async with serving(create_app(settings, registry=registry), port=port) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


@pytest.fixture
async def sandbox():
    app = create_sandbox(SandboxSettings(sandbox_policy="removed=1", sandbox_decision_delay_s=0.05))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


def submitted_record(ref) -> tuple[bytes, bytes, dict[str, str]]:
    """A referral.submitted record as intake publishes it: (key, value, headers)."""
    return to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=ref))


async def submit(kafka: str, ref) -> None:
    key, value, headers = submitted_record(ref)
    await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)


def events(records) -> list[Event]:
    return [from_kafka(headers_of(r), r.value) for r in records]


async def dispatch_events(kafka: str, count: int) -> list:
    async with TopicReader(kafka, topics.REFERRALS_DISPATCH) as reader:
        return await reader.wait_for(lambda rs: len(rs) >= count, what=f"{count} dispatch events")


def decision(reference, **overrides) -> dict:
    return {"ticket_id": "facebook-1", "reference": str(reference), "outcome": "removed",
            "reason": None, "note": "gone", "decided_at": "2025-03-01T12:30:00+00:00", **overrides}


# --- referrals out to the sandbox, decisions back ----------------------------------------------


async def test_a_submitted_referral_is_reported_to_its_platform_and_published_as_dispatched(
        settings_env, kafka, sandbox):
    ref = referral(Platform.youtube)

    async with running_dispatcher(settings_env, sandbox_url=str(sandbox.base_url)):
        await submit(kafka, ref)
        [record] = await dispatch_events(kafka, 1)

    headers, data = headers_of(record), json.loads(record.value)
    assert record.key.decode() == str(ref.referral_id)
    assert headers["ce_type"] == "referral.dispatched" and headers["ce_actor"] == "service:dispatcher"
    ticket = (await sandbox.get(f"/platforms/youtube/reports/{data['ticket_id']}")).json()
    assert ticket["reference"] == str(ref.referral_id) and ticket["url"] == ref.canonical_url
    assert (data["platform"], data["attempts"]) == ("youtube", 1)
    stats = (await sandbox.get("/stats")).json()
    assert stats["reports"] == 1 and stats["by_platform"]["youtube"]["reports"] == 1


async def test_the_platforms_decision_comes_back_through_the_webhook_as_takedown_decided(
        settings_env, kafka, sandbox):
    ref = referral(Platform.tiktok)

    async with running_dispatcher(settings_env, sandbox_url=str(sandbox.base_url)):
        await submit(kafka, ref)
        async with TopicReader(kafka, topics.TAKEDOWN_DECISIONS) as reader:
            [record] = await reader.wait_for(lambda rs: len(rs) >= 1, what="a decision")

    [decided] = events([record])
    ticket = (await sandbox.get(f"/platforms/tiktok/reports/{decided.data.ticket_id}")).json()
    assert headers_of(record)["ce_type"] == "takedown.decided"
    assert record.key.decode() == str(ref.referral_id) and decided.referral_id == ref.referral_id
    assert decided.actor == "platform:tiktok" and decided.data.outcome == "removed"
    assert decided.time == datetime.fromisoformat(ticket["decided_at"])
    assert decided.data.platform_note == "The content breached our terms and has been removed."


async def test_a_referral_submitted_twice_is_reported_once_and_dispatched_under_one_event_id(
        settings_env, kafka, sandbox):
    key, value, headers = submitted_record(referral(Platform.x))

    async with running_dispatcher(settings_env, sandbox_url=str(sandbox.base_url)):
        await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)
        await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)
        first, second = await dispatch_events(kafka, 2)

    assert headers_of(first)["ce_id"] == headers_of(second)["ce_id"]
    assert json.loads(first.value)["ticket_id"] == json.loads(second.value)["ticket_id"]
    x = (await sandbox.get("/stats")).json()["by_platform"]["x"]
    assert (x["reports"], x["duplicates"]) == (1, 1)


# --- how adapter failures become events ---------------------------------------------------------


async def test_a_permanent_delivery_failure_is_published_as_dispatch_failed_with_its_reason(settings_env, kafka):
    adapter = FakeAdapter.failing_permanently("HTTP 400: url is not ours")
    ref = referral()

    async with running_dispatcher(settings_env, adapter):
        await submit(kafka, ref)
        [record] = await dispatch_events(kafka, 1)

    [failed] = events([record])
    assert failed.type == "referral.dispatch_failed" and failed.referral_id == ref.referral_id
    assert (failed.data.reason, failed.data.permanent, failed.data.attempts) == ("HTTP 400: url is not ours", True, 1)
    assert len(adapter.calls) == 1 and adapter.closed


async def test_a_referral_that_fails_twice_transiently_is_dispatched_on_the_third_attempt(settings_env, kafka):
    adapter = FakeAdapter.failing_transiently(times=2, then="FB-3")

    async with running_dispatcher(settings_env, adapter):
        await submit(kafka, referral())
        [record] = await dispatch_events(kafka, 1)

    [dispatched] = events([record])
    assert dispatched.type == "referral.dispatched"
    assert (dispatched.data.ticket_id, dispatched.data.attempts, dispatched.data.adapter) == ("FB-3", 3, "fake")


async def test_a_referral_that_always_fails_transiently_is_given_up_after_delivery_attempts(settings_env, kafka):
    adapter = FakeAdapter.always_failing_transiently("HTTP 503")

    async with running_dispatcher(settings_env, adapter, delivery_attempts=3):
        await submit(kafka, referral())
        [record] = await dispatch_events(kafka, 1)

    [failed] = events([record])
    assert failed.type == "referral.dispatch_failed"
    assert (failed.data.reason, failed.data.attempts, failed.data.permanent) == ("HTTP 503", 3, False)
    assert len(adapter.calls) == 3


# --- poison records ---------------------------------------------------------------------------------


CE_HEADERS = {"ce_specversion": "1.0", "ce_type": "referral.submitted", "ce_id": str(uuid4()),
              "ce_source": "/takedown/intake", "ce_time": "2025-03-01T12:00:00+00:00", "ce_actor": "agency:NCA"}


@pytest.mark.parametrize("value, headers, reason", [
    (b"{not json", CE_HEADERS, "Invalid JSON"),
    (b'{"referral_id": "x"}', {}, "ce_specversion must be '1.0'"),
], ids=["bad-json-with-ce-headers", "no-ce-headers"])
async def test_a_poison_record_is_dead_lettered_with_its_reason_and_the_next_record_is_dispatched(
        settings_env, kafka, value, headers, reason):
    adapter = FakeAdapter.succeeding("FB-9")
    good = referral()
    key = str(good.referral_id).encode()  # same key, same partition: the good record comes after

    async with running_dispatcher(settings_env, adapter):
        await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)
        await submit(kafka, good)
        async with TopicReader(kafka, topics.DISPATCH_DLQ) as dlq:
            [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1, what="the poison record")
        [record] = await dispatch_events(kafka, 1)

    dead_headers = headers_of(dead)
    assert dead.value == value and dead.key == key
    assert reason in dead_headers["dlq_reason"]
    assert dead_headers["dlq_original_topic"] == topics.REFERRALS_SUBMITTED and dead_headers["dlq_attempts"] == "1"
    assert events([record])[0].referral_id == good.referral_id
    assert adapter.calls == [good]


# --- the decision webhook ---------------------------------------------------------------------------


async def test_a_callback_with_an_invalid_body_is_refused_with_422_naming_each_bad_field(settings_env):
    async with running_dispatcher(settings_env) as dispatcher:
        response = await dispatcher.post("/v1/callbacks/facebook",
                                         json=decision(uuid4(), outcome="deleted", decided_at=None))

    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {("body", "outcome"), ("body", "decided_at")}


async def test_a_callback_for_an_unknown_platform_is_refused_with_404(settings_env):
    async with running_dispatcher(settings_env) as dispatcher:
        response = await dispatcher.post("/v1/callbacks/myspace", json=decision(uuid4()))

    assert response.status_code == 404 and "myspace" in response.json()["detail"]


async def test_a_callback_posted_twice_is_published_twice_under_the_same_event_id(settings_env, kafka):
    reference = uuid4()

    async with running_dispatcher(settings_env) as dispatcher:
        answers = [await dispatcher.post("/v1/callbacks/facebook", json=decision(reference)) for _ in range(2)]
        async with TopicReader(kafka, topics.TAKEDOWN_DECISIONS) as reader:
            records = await reader.wait_for(lambda rs: len(rs) >= 2, what="two decisions")

    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == {"status": "accepted", "referral_id": str(reference)}
    first, second = events(records)
    assert first.id == second.id and first.referral_id == reference
    assert first.time == datetime.fromisoformat("2025-03-01T12:30:00+00:00") and first.actor == "platform:facebook"
