"""Liveness checks against a real broker, database and sandbox: content that disappears before the platform
answered is recorded as content.gone_without_reply, once, and a later decision still lands; the scheduler makes
again an event it published that was never recorded."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest

from services.outcomes.config import OutcomesSettings
from services.outcomes.probe import HttpContentProbe
from services.outcomes.scheduler import Scheduler
from services.sandbox.app import create_app as create_sandbox
from services.sandbox.config import SandboxSettings
from shared import db, topics
from shared.events import Category, Platform
from shared.kafka import make_broker, publish_event
from tests.integration.test_deadlines_and_checks import (SECOND, YOUTUBE_KEY, answered, dispatched, guarded,
                                                         host_port, outcomes, publish, quick, referral_when, removed,
                                                         submitted, ts, types)
from tests.support import TopicReader, eventually, headers_of, serving

pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def sandbox():
    """The sandbox, deciding every report removed at once (its content then answers 410), and a client of it."""
    settings = SandboxSettings(sandbox_policy="removed=1", sandbox_decision_delay_s=0, sandbox_seed="tests")
    async with serving(create_sandbox(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def taken_down_unannounced(client: httpx.AsyncClient, rid: UUID, url: str) -> None:
    """The platform takes the content down; outcomes is not told (no decision is published to it)."""
    flag = {"video_url": url, "reason_code": "FRAUD", "flagger_reference": str(rid)}
    response = await client.post("/youtube/v1/flags", json=flag, headers={**YOUTUBE_KEY, "Idempotency-Key": str(rid)})
    assert response.status_code == 201, response.text
    assert (await client.get("/content", params={"url": url})).status_code == 410


def checking(settings_env: dict, sandbox_url: str, **overrides) -> OutcomesSettings:
    return quick(settings_env, content_check_url=f"{sandbox_url}/content?url={{url}}",
                 fetch_allow=[host_port(sandbox_url)], **overrides)


@contextlib.asynccontextmanager
async def schedulers(settings: OutcomesSettings, count: int, sandbox_url: str):
    """count schedulers of their own (brokers and probes) on outcomes' database, checking through the sandbox."""
    engine = db.make_engine(settings.database_url)
    brokers = [make_broker(settings, f"scheduler-{n}") for n in range(count)]
    try:
        for broker in brokers:
            await broker.connect()
        yield [Scheduler(db.make_sessions(engine), broker,
                         HttpContentProbe(f"{sandbox_url}/content?url={{url}}", guarded(host_port(sandbox_url))),
                         settings) for broker in brokers]
    finally:
        for broker in brokers:
            await broker.stop()
        await engine.dispose()


async def attrition(client: httpx.AsyncClient) -> dict:
    [youtube, _] = (await client.get("/v1/reports/attrition")).json()["rows"]
    return {k: youtube[k] for k in ("referred", "removed", "pending", "removed_without_reply", "gone_before_reply")}


async def test_content_taken_down_before_the_platform_answered_is_gone_without_reply_and_the_decision_still_lands(
        settings_env, kafka, credentials):
    rid = uuid4()
    url = f"https://youtube.com/watch?v={rid.hex}"
    async with sandbox() as platform:
        settings = checking(settings_env, str(platform.base_url), liveness_checks_s=[0.2, 0.5, 1, 2, 4, 8, 16, 30])
        async with outcomes(settings, credentials) as client:
            now = datetime.now(UTC)
            await publish(kafka, submitted(rid, now, Category.fraud, Platform.youtube, url),
                          dispatched(rid, now, Platform.youtube))
            await referral_when(client, rid, lambda b: b["status"] == "dispatched", "the referral dispatched")
            await taken_down_unannounced(platform, rid, url)

            gone = await referral_when(client, rid, lambda b: b["status"] == "gone_without_reply", "content gone")
            without_reply = await attrition(client)
            await publish(kafka, removed(rid, datetime.now(UTC), Platform.youtube))
            decided = await referral_when(client, rid, lambda b: b["status"] == "decided", "the late decision")
            after_decision = await attrition(client)

    [found] = [h for h in decided["history"] if h["event_type"] == "content.gone_without_reply"]
    assert types(decided) == ["referral.submitted", "referral.dispatched", "content.gone_without_reply",
                              "takedown.decided"]
    assert (found["actor"], found["data"]["url"], ts(found["data"]["checked_at"])) == (
        "service:outcomes", url, ts(found["occurred_at"]))
    assert (gone["outcome"], decided["outcome"], decided["anomalies"]) == (None, "removed", [])
    assert [t["to"] for t in decided["transitions"]] == ["submitted", "dispatched", "gone_without_reply", "decided"]
    assert without_reply == {"referred": 1, "removed": 0, "pending": 0, "removed_without_reply": 1,
                             "gone_before_reply": 1}
    assert after_decision == {"referred": 1, "removed": 1, "pending": 0, "removed_without_reply": 0,
                              "gone_before_reply": 1}


async def test_two_schedulers_record_content_gone_once_find_content_up_without_a_trace_and_stop_checking_it(
        settings_env, kafka, credentials):
    rid = uuid4()
    url = f"https://youtube.com/watch?v={rid.hex}"
    async with sandbox() as platform:
        base = str(platform.base_url)
        settings = checking(settings_env, base, scheduler_enabled=False, liveness_checks_s=[60, 3600, 7200],
                            deadline_overrides={"fraud/youtube": 1 * SECOND}, expire_after_factor=2)
        async with outcomes(settings, credentials) as client:
            at = datetime.now(UTC) - timedelta(minutes=1)
            await publish(kafka, submitted(rid, at, Category.fraud, Platform.youtube, url),
                          dispatched(rid, at, Platform.youtube))
            await referral_when(client, rid, lambda b: b["status"] == "dispatched", "the referral dispatched")
            async with schedulers(settings, 2, base) as (first, second):
                assert await asyncio.gather(first.liveness(at + timedelta(seconds=61)),
                                            second.liveness(at + timedelta(seconds=61))) == [0, 0]  # up
                await taken_down_unannounced(platform, rid, url)
                checked_from = datetime.now(UTC)
                assert await asyncio.gather(first.liveness(at + timedelta(seconds=3601)),
                                            second.liveness(at + timedelta(seconds=3601))) == [1, 1]
                # Same key, same partition: once this answer is recorded, both copies were consumed.
                await publish_event(first.broker, topics.REFERRALS_LIFECYCLE, answered(rid, datetime.now(UTC)))
                body = await referral_when(client, rid, lambda b: "referral.information_supplied" in types(b),
                                           "the sentinel")
                async with schedulers(settings, 1, base) as (fresh,):  # knows nothing but the database
                    later = at + timedelta(days=100)
                    assert [await s.liveness(later) for s in (first, second, fresh)] == [0, 0, 0]
                    assert await fresh.deadlines(later) == 0  # gone: neither overdue nor expired
    assert types(body) == ["referral.submitted", "referral.dispatched", "content.gone_without_reply",
                           "referral.information_supplied"]
    assert (body["status"], body["overdue"], body["anomalies"]) == ("gone_without_reply", False, [])
    assert checked_from <= ts(body["history"][2]["data"]["checked_at"]) <= datetime.now(UTC)  # when it was found


async def test_an_event_published_but_never_recorded_is_published_again_once_the_hold_has_passed(
        settings_env, kafka, credentials):
    settings = quick(settings_env, scheduler_enabled=False, scheduler_republish_s=0.5,
                     deadline_overrides={"terrorism/facebook": 1 * SECOND}, expire_after_factor=1000)
    rid, then = uuid4(), datetime.now(UTC) - timedelta(seconds=10)
    async with outcomes(settings, credentials) as client:
        await publish(kafka, submitted(rid, then, Category.terrorism), dispatched(rid, then))
        await referral_when(client, rid, lambda b: len(b["history"]) == 2, "the referral dispatched")
    # Outcomes is stopped: what the scheduler publishes now is not recorded, as if it were lost.
    async with schedulers(settings, 1, "http://127.0.0.1:9") as (scheduler,):
        assert [await scheduler.tick(), await scheduler.tick()] == [1, 0]  # held back: not sent every tick
        assert await eventually(scheduler.tick, 10, "the overdue published again") == 1
    async with TopicReader(kafka, topics.REFERRALS_LIFECYCLE) as lifecycle:
        records = await lifecycle.wait_for(lambda rs: len(rs) >= 2, what="both copies")
    assert [headers_of(r)["ce_type"] for r in records] == ["referral.overdue"] * 2
    assert len({headers_of(r)["ce_id"] for r in records}) == 1
