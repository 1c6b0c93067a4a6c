"""The dispatcher against a real broker and database, with fake platforms behind its lanes:
routing, retries through retry topics, dead letters, circuit breaking, isolation of platforms,
and answers coming back by receipt, callback and polling."""

import json
from contextlib import asynccontextmanager

import httpx

from services.dispatcher.adapters.base import DecisionMode, DeliveryError
from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.app import create_app
from services.dispatcher.config import DispatcherSettings
from services.dispatcher.outbound import NOT_BEFORE
from shared import topics
from shared.embedded import free_port
from shared.events import Event, Platform, from_kafka, to_kafka
from tests.fakes import SIGNATURE, FakeAdapter, referral
from tests.support import TopicReader, bearer, eventually, headers_of, produce, serving

FAST = {"delivery_backoff_base_s": 0.05, "breaker_failures": 2, "breaker_reset_s": 0.2,
        "breaker_max_reset_s": 0.5, "poll_tick_s": 0.05}


@asynccontextmanager
async def running(settings_env: dict, *adapters: FakeAdapter, **overrides):
    """The dispatcher with these adapters, served; yields an HTTP client for its API."""
    registry = AdapterRegistry()
    for adapter in adapters:
        registry.register(adapter)
    settings = DispatcherSettings(**{**settings_env, **FAST, **overrides})
    async with serving(create_app(settings, registry=registry), port=free_port()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


async def submit(kafka: str, *refs) -> None:
    for ref in refs:
        key, value, headers = to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=ref))
        await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)


def events_of(records, event_type: str) -> list[Event]:
    return [e for e in (from_kafka(headers_of(r), r.value) for r in records) if e.type == event_type]


async def wait_for_events(kafka: str, topic: str, event_type: str, count: int, timeout: float = 30) -> list[Event]:
    async with TopicReader(kafka, topic) as reader:
        records = await reader.wait_for(lambda rs: len(events_of(rs, event_type)) >= count, timeout,
                                        f"{count} {event_type}")
    return events_of(records, event_type)


async def test_a_referral_is_routed_to_its_platforms_lane_and_published_as_dispatched(settings_env, kafka):
    adapter, ref = FakeAdapter(), referral()
    async with running(settings_env, adapter):
        await submit(kafka, ref)
        [event] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        async with TopicReader(kafka, topics.lane("facebook")) as lane:
            [laned] = await lane.wait_for(lambda rs: len(rs) >= 1)

    assert event.data.ticket_id == f"T-{ref.referral_id}" and event.data.adapter == "fake"
    assert event.actor == "service:dispatcher" and event.data.attempts == 1
    assert laned.key == str(ref.referral_id).encode()
    assert [c.referral_id for c in adapter.calls] == [ref.referral_id]


async def test_a_failed_report_goes_round_the_retry_topic_and_is_dispatched_on_a_later_attempt(settings_env, kafka):
    adapter = FakeAdapter(script=[DeliveryError("HTTP 503", permanent=False)] * 2)
    async with running(settings_env, adapter, breaker_failures=10):
        await submit(kafka, referral())
        [event] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        async with TopicReader(kafka, topics.retry_lane("facebook")) as retries:
            parked = await retries.wait_for(lambda rs: len(rs) >= 2)

    assert event.data.attempts == 3 and len(adapter.calls) == 3
    assert [headers_of(r)["x-takedown-attempt"] for r in parked] == ["2", "3"]
    assert headers_of(parked[0])["x-takedown-last-error"] == "HTTP 503"


async def test_retry_after_is_honoured_before_the_next_attempt(settings_env, kafka):
    adapter = FakeAdapter(script=[DeliveryError("HTTP 429", permanent=False, retry_after=1.5)])
    async with running(settings_env, adapter):
        await submit(kafka, referral())
        await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        async with TopicReader(kafka, topics.retry_lane("facebook")) as retries:
            [parked] = await retries.wait_for(lambda rs: len(rs) >= 1)

    assert float(headers_of(parked)[NOT_BEFORE]) - parked.timestamp / 1000 >= 1.4


async def test_a_report_the_platform_refuses_is_dead_lettered_and_published_as_dispatch_failed(settings_env, kafka):
    adapter, ref = FakeAdapter(then=DeliveryError("HTTP 400: url not ours", permanent=True)), referral()
    async with running(settings_env, adapter):
        await submit(kafka, ref)
        [failed] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatch_failed", 1)
        async with TopicReader(kafka, topics.DELIVERY_DLQ) as dlq:
            [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1)

    assert failed.data.permanent and failed.data.reason == "HTTP 400: url not ours" and failed.data.attempts == 1
    headers = headers_of(dead)
    assert headers["dlq_reason"] == "HTTP 400: url not ours" and headers["dlq_attempts"] == "1"
    assert headers["dlq_original_topic"] == topics.lane("facebook") and dead.key == str(ref.referral_id).encode()


async def test_a_report_that_keeps_failing_is_given_up_after_the_set_attempts(settings_env, kafka):
    adapter = FakeAdapter(then=DeliveryError("timeout", permanent=False))
    async with running(settings_env, adapter, delivery_attempts=3, breaker_failures=100):
        await submit(kafka, referral())
        [failed] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatch_failed", 1)

    assert not failed.data.permanent and failed.data.attempts == 3 and len(adapter.calls) == 3
    assert failed.data.reason == "gave up after 3 attempts: timeout"


async def test_one_platform_down_does_not_hold_up_the_others_and_its_lane_drains_when_it_recovers(settings_env, kafka):
    down = FakeAdapter("meta", (Platform.facebook,), then=DeliveryError("connection refused", permanent=False))
    up = FakeAdapter("tube", (Platform.youtube,))
    to_down = [referral(Platform.facebook) for _ in range(20)]
    to_up = [referral(Platform.youtube) for _ in range(50)]
    async with running(settings_env, down, up, delivery_attempts=20):
        await submit(kafka, *to_down, *to_up)
        dispatched = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", len(to_up))
        assert {e.referral_id for e in dispatched} == {r.referral_id for r in to_up}
        calls_while_down = len(down.calls)

        down.then = "T"  # the platform comes back
        everything = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 70, timeout=60)

    assert {e.referral_id for e in everything} == {r.referral_id for r in to_down + to_up}
    assert calls_while_down < len(to_down), "an open circuit stops hammering a platform that is down"


async def test_a_poison_record_on_referrals_submitted_is_dead_lettered_and_routing_goes_on(settings_env, kafka):
    ref = referral()
    async with running(settings_env, FakeAdapter()):
        await produce(kafka, topics.REFERRALS_SUBMITTED, b"{oops", key=str(ref.referral_id).encode(),
                      headers={"ce_specversion": "1.0", "ce_type": "referral.submitted", "content-type": "application/json"})
        await submit(kafka, ref)
        [event] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        async with TopicReader(kafka, topics.DISPATCH_DLQ) as dlq:
            [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1)

    assert event.referral_id == ref.referral_id
    assert dead.value == b"{oops" and headers_of(dead)["dlq_reason"]


async def test_a_decision_in_the_receipt_is_published_right_after_the_dispatch(settings_env, kafka):
    ref = referral(Platform.tiktok)
    async with running(settings_env, FakeAdapter("tok", (Platform.tiktok,), decisions=DecisionMode.response,
                                                 answer_in_receipt=True)):
        await submit(kafka, ref)
        [decided] = await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "takedown.decided", 1)

    assert decided.referral_id == ref.referral_id and decided.data.outcome == "removed"
    assert decided.actor == "platform:tiktok"


async def test_open_tickets_are_polled_until_the_platform_decides(settings_env, kafka):
    adapter = FakeAdapter("tube", (Platform.youtube,), decisions=DecisionMode.polling,
                          poll_answers=["open", "information", "open", "removed"])
    ref = referral(Platform.youtube)
    async with running(settings_env, adapter):
        await submit(kafka, ref)
        [decided] = await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "takedown.decided", 1)
        [asked] = await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "takedown.information_requested", 1)

    assert decided.referral_id == asked.referral_id == ref.referral_id
    assert asked.data.question == "Which post?" and len(adapter.polls) == 4


async def test_a_signed_callback_for_a_ticket_we_hold_is_published_and_others_are_refused(settings_env, kafka):
    ref = referral()
    async with running(settings_env, FakeAdapter()) as api:
        await submit(kafka, ref)
        [dispatched] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        body = json.dumps({"ticket_id": dispatched.data.ticket_id, "referral_id": str(ref.referral_id)})

        async def accepted():
            return (await api.post("/v1/callbacks/facebook", content=body, headers={SIGNATURE: "valid"})).status_code == 202

        await eventually(accepted, 10, "the callback to be accepted")
        forged = await api.post("/v1/callbacks/facebook", content=body, headers={SIGNATURE: "forged"})
        unknown = await api.post("/v1/callbacks/facebook", headers={SIGNATURE: "valid"}, content=json.dumps(
            {"ticket_id": "T-nobody", "referral_id": str(ref.referral_id)}))
        nowhere = await api.post("/v1/callbacks/myspace", content=body)
        [decided] = await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "takedown.decided", 1)

    assert (forged.status_code, unknown.status_code, nowhere.status_code) == (401, 409, 404)
    assert decided.data.no_action_reason == "no_violation" and decided.referral_id == ref.referral_id


async def test_an_operator_records_an_answer_given_by_e_mail_under_their_own_name(settings_env, kafka, credentials):
    ref = referral(Platform.telegram)
    adapter = FakeAdapter("mail", (Platform.telegram,), decisions=DecisionMode.manual)
    decision = {"decision": {"visibility": ["content_removed"], "ground": "illegal_content",
                             "decided_at": "2026-11-22T10:00:00Z", "explanation": "channel closed"}}
    async with running(settings_env, adapter) as api:
        await submit(kafka, ref)
        [dispatched] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        path = f"/v1/tickets/telegram/{dispatched.data.ticket_id}/answer"

        operator = bearer(credentials["operator"]["token"])
        anonymous = await api.post(path, json=decision, headers={"X-Actor": "user:alice"})
        auditor = await api.post(path, json=decision, headers=bearer(credentials["auditor"]["token"]))
        malformed = await api.post(path, json={"decision": {"visibility": ["vanished"]}}, headers=operator)
        unknown = await api.post("/v1/tickets/telegram/nope/answer", json=decision, headers=operator)
        recorded = await api.post(path, json=decision, headers={**operator, "X-Actor": "user:mallory"})
        [decided] = await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "takedown.decided", 1)

    assert (anonymous.status_code, auditor.status_code, malformed.status_code, unknown.status_code) == (401, 403, 422, 404)
    assert recorded.status_code == 202 and recorded.json()["recorded"] == "decision"
    assert decided.actor == "user:demo-operator" and decided.credential.startswith("key:")
    assert decided.referral_id == ref.referral_id
    assert decided.data.outcome == "removed" and decided.data.platform_explanation == "channel closed"


async def test_an_answer_by_hand_for_a_platform_that_answers_through_its_api_is_refused_with_409(
        settings_env, kafka, credentials):
    ref = referral(Platform.facebook)
    decision = {"decision": {"visibility": ["content_removed"], "decided_at": "2026-11-22T10:00:00Z"}}
    async with running(settings_env, FakeAdapter(), FakeAdapter("mail", (Platform.telegram,),
                                                                decisions=DecisionMode.manual)) as api:
        await submit(kafka, ref)
        [dispatched] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        operator = bearer(credentials["operator"]["token"])
        refused = await api.post(f"/v1/tickets/facebook/{dispatched.data.ticket_id}/answer", json=decision,
                                 headers=operator)
        unserved = await api.post("/v1/tickets/youtube/Y1/answer", json=decision, headers=operator)

    assert refused.status_code == 409
    assert refused.json()["detail"] == "facebook answers through its API; only e-mail channels take answers by hand"
    assert unserved.status_code == 404 and "no adapter delivers to youtube" in unserved.json()["detail"]
