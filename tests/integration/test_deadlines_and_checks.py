"""Deadlines and stays-down checks against a real broker, database and sandbox: the scheduler publishes
referral.overdue, referral.expired and content checks, and outcomes records each once."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI, Response

from services.outcomes.app import create_app
from services.outcomes.config import OutcomesSettings
from services.outcomes.probe import HttpContentProbe, ProbeFailed, ProbeRefused
from services.outcomes.scheduler import Scheduler
from services.sandbox.app import create_app as create_sandbox
from services.sandbox.config import SandboxSettings
from shared import db, topics
from shared.events import (Category, Event, InformationSupplied, Outcome, Platform, ReferralDispatched,
                           ReferralSubmitted, TakedownDecided, TakedownInformationRequested, Visibility, to_kafka)
from shared.fetch import FetchSettings, GuardedFetcher
from shared.kafka import make_broker, publish_event
from tests.support import TopicReader, bearer, eventually, headers_of, produce, serving

pytestmark = pytest.mark.asyncio

SECOND = 1 / 3600  # in hours, as deadlines are configured
YOUTUBE_KEY = {"X-Api-Key": "sandbox-youtube-key"}


def submitted(rid: UUID, at: datetime, category: Category, platform: Platform = Platform.facebook,
              url: str | None = None) -> Event:
    url = url or f"https://{platform}.com/p/{rid.hex}"
    data = ReferralSubmitted(referral_id=rid, agency="NCA", url=url, canonical_url=url, platform=platform,
                             category=category, submitted_at=at)
    return Event(source="/takedown/intake", actor="agency:NCA", time=at, data=data)


def dispatched(rid: UUID, at: datetime, platform: Platform = Platform.facebook) -> Event:
    data = ReferralDispatched(referral_id=rid, platform=platform, adapter=platform.value, ticket_id=f"T-{rid.hex[:8]}")
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", time=at, data=data)


def asked(rid: UUID, at: datetime) -> Event:
    data = TakedownInformationRequested(referral_id=rid, platform=Platform.facebook, ticket_id=f"T-{rid.hex[:8]}",
                                        question="Which statute?")
    return Event(source="/takedown/dispatcher", actor="platform:facebook", time=at, data=data)


def answered(rid: UUID, at: datetime) -> Event:
    return Event(source="/takedown/intake", actor="agency:NCA", time=at,
                 data=InformationSupplied(referral_id=rid, answer="Terrorism Act 2006, s.2"))


def removed(rid: UUID, at: datetime, platform: Platform) -> Event:
    data = TakedownDecided(referral_id=rid, platform=platform, ticket_id=f"T-{rid.hex[:8]}", outcome=Outcome.removed,
                           decision_visibility=[Visibility.content_removed])
    return Event(source="/takedown/dispatcher", actor=f"platform:{platform}", time=at, data=data)


async def publish(kafka: str, *events: Event) -> None:
    for event in events:
        topic = topics.TAKEDOWN_DECISIONS if event.type.startswith("takedown.") else topics.REFERRALS_SUBMITTED
        key, value, headers = to_kafka(event)
        await produce(kafka, topic, value, key=key, headers=headers)


async def referral_when(client: httpx.AsyncClient, rid: UUID, check, what: str, timeout: float = 20) -> dict:
    async def get() -> dict | None:
        response = await client.get(f"/v1/referrals/{rid}")
        return response.json() if response.status_code == 200 and check(response.json()) else None

    return await eventually(get, timeout, what)


def types(body: dict) -> list[str]:
    return [h["event_type"] for h in body["history"]]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@contextlib.asynccontextmanager
async def outcomes(settings: OutcomesSettings, credentials: dict):
    """Outcomes served, and a client of it signed in as the demo auditor."""
    async with serving(create_app(settings)) as url, \
            httpx.AsyncClient(base_url=url, headers=bearer(credentials["auditor"]["token"])) as client:
        yield client


def guarded(*allow: str, deadline_s: float = 1) -> GuardedFetcher:
    return GuardedFetcher(FetchSettings.allowing(allow, deadline_s=deadline_s))


def host_port(base_url: str) -> str:
    return base_url.removeprefix("http://")


def quick(settings_env: dict, **overrides) -> OutcomesSettings:
    return OutcomesSettings(**{**settings_env, "scheduler_enabled": True, "scheduler_tick_s": 0.1, **overrides})


async def test_a_referral_past_its_deadline_is_overdue_then_expires_each_recorded_once_across_a_restart_and_two_instances(
        settings_env, kafka, credentials):
    settings = quick(settings_env, deadline_overrides={"terrorism/facebook": 1 * SECOND}, expire_after_factor=5)
    rid, now = uuid4(), datetime.now(UTC)
    async with outcomes(settings, credentials) as client:
        await publish(kafka, submitted(rid, now, Category.terrorism), dispatched(rid, now + timedelta(seconds=0.01)))
        overdue = await referral_when(client, rid, lambda b: b["overdue"], "the referral overdue")
    assert overdue["status"] == "dispatched" and ts(overdue["deadline"]) == now + timedelta(seconds=1)
    assert types(overdue).count("referral.overdue") == 1

    async with outcomes(settings, credentials) as first, outcomes(settings, credentials):
        expired = await referral_when(first, rid, lambda b: b["status"] == "expired", "the referral expired")
    assert types(expired) == ["referral.submitted", "referral.dispatched", "referral.overdue", "referral.expired"]
    assert {h["actor"] for h in expired["history"][2:]} == {"service:outcomes"}
    assert ts(expired["history"][3]["occurred_at"]) == now + timedelta(seconds=5)
    async with TopicReader(kafka, topics.REFERRALS_LIFECYCLE) as lifecycle:
        records = await lifecycle.wait_for(lambda rs: len(rs) >= 2, what="the scheduler's events")
    ids = {(h["ce_type"], h["ce_id"]) for h in map(headers_of, records) if h["ce_subject"] == str(rid)}
    assert ids == {(h["event_type"], h["event_id"]) for h in expired["history"][2:]}


async def test_the_same_overdue_published_by_two_schedulers_at_once_is_recorded_once(settings_env, kafka, credentials):
    settings = quick(settings_env, scheduler_tick_s=3600, deadline_overrides={"terrorism/facebook": 0.5 * SECOND},
                     expire_after_factor=1000)
    rid, then = uuid4(), datetime.now(UTC) - timedelta(seconds=1)  # its deadline has passed
    async with outcomes(settings, credentials) as client:  # its own scheduler ticked once at start, before these events
        await publish(kafka, submitted(rid, then, Category.terrorism), dispatched(rid, then))
        await referral_when(client, rid, lambda b: len(b["history"]) == 2, "the referral dispatched")
        engine = db.make_engine(settings.database_url)
        brokers = [make_broker(settings, f"scheduler-{n}") for n in (1, 2)]
        try:
            for broker in brokers:
                await broker.connect()
            schedulers = [Scheduler(db.make_sessions(engine), broker, HttpContentProbe("{url}", guarded()), settings)
                          for broker in brokers]
            assert await asyncio.gather(*(s.tick() for s in schedulers)) == [1, 1]
            await publish_event(brokers[0], topics.REFERRALS_LIFECYCLE, answered(rid, datetime.now(UTC)))
        finally:
            for broker in brokers:
                await broker.stop()
            await engine.dispose()
        # Same key, same partition: once the sentinel is recorded, both copies were consumed.
        body = await referral_when(client, rid, lambda b: "referral.information_supplied" in types(b), "the sentinel")
    assert types(body).count("referral.overdue") == 1 and body["overdue"] is True
    async with TopicReader(kafka, topics.REFERRALS_LIFECYCLE) as lifecycle:
        records = await lifecycle.wait_for(lambda rs: len(rs) >= 3, what="both copies and the sentinel")
    copies = {headers_of(r)["ce_id"] for r in records if headers_of(r)["ce_type"] == "referral.overdue"}
    assert copies == {h["event_id"] for h in body["history"] if h["event_type"] == "referral.overdue"}


async def test_a_referral_whose_platform_asked_for_information_is_not_overdue_until_the_agency_answers(
        settings_env, kafka, credentials):
    settings = quick(settings_env, deadline_overrides={"people_smuggling/facebook": 2 * SECOND}, expire_after_factor=2)
    waiting, control, now = uuid4(), uuid4(), datetime.now(UTC)
    question_at = now + timedelta(seconds=0.2)
    async with outcomes(settings, credentials) as client:
        await publish(kafka, submitted(waiting, now, Category.people_smuggling), dispatched(waiting, now),
                      asked(waiting, question_at), submitted(control, now, Category.people_smuggling),
                      dispatched(control, now))
        await referral_when(client, control, lambda b: b["status"] == "expired", "the control referral expired")
        still = (await client.get(f"/v1/referrals/{waiting}")).json()
        assert (still["status"], still["overdue"]) == ("information_requested", False)
        assert "referral.overdue" not in types(still)

        answer_at = datetime.now(UTC)
        await publish(kafka, answered(waiting, answer_at))
        overdue = await referral_when(client, waiting, lambda b: b["overdue"], "overdue after the answer")
    assert overdue["status"] == "acknowledged"
    assert ts(overdue["deadline"]) == now + timedelta(seconds=2) + (answer_at - question_at)


async def test_removed_content_is_checked_still_down_twice_then_reopens_the_referral_when_it_reappears(
        settings_env, kafka, credentials):
    async with serving(create_sandbox(SandboxSettings(sandbox_policy="removed=1", sandbox_decision_delay_s=0,
                                                      sandbox_seed="tests"))) as sandbox_url, \
            httpx.AsyncClient(base_url=sandbox_url) as sandbox:
        rid = uuid4()
        url = f"https://youtube.com/watch?v={rid.hex}"
        flag = {"video_url": url, "reason_code": "FRAUD", "flagger_reference": str(rid)}
        response = await sandbox.post("/youtube/v1/flags", json=flag, headers={**YOUTUBE_KEY, "Idempotency-Key": str(rid)})
        assert response.status_code == 201, response.text
        assert (await sandbox.get("/content", params={"url": url})).status_code == 410

        settings = quick(settings_env, stays_down_checks_s=[0.2, 0.4, 3.0],
                         content_check_url=f"{sandbox_url}/content?url={{url}}", fetch_allow=[host_port(sandbox_url)])
        async with outcomes(settings, credentials) as client:
            now = datetime.now(UTC)
            await publish(kafka, submitted(rid, now - timedelta(hours=1), Category.fraud, Platform.youtube, url),
                          dispatched(rid, now - timedelta(minutes=59), Platform.youtube),
                          removed(rid, now, Platform.youtube))
            down = await referral_when(client, rid, lambda b: types(b).count("content.still_down") == 2,
                                       "two stays-down checks")
            assert (down["status"], down["reachable"]) == ("decided", False)

            assert (await sandbox.post("/admin/content/reappear", json={"url": url})).json()["reachable"] is True
            back = await referral_when(client, rid, lambda b: b["status"] == "reopened", "the referral reopened")
    assert back["reachable"] is True
    checks = [h for h in back["history"] if h["event_type"].startswith("content.")]
    assert [h["event_type"] for h in checks] == ["content.still_down", "content.still_down", "content.reappeared"]
    assert {h["data"]["url"] for h in checks} == {url}
    assert all(ts(h["occurred_at"]) >= now + timedelta(seconds=s) for h, s in zip(checks, [0.2, 0.4, 3.0]))


@pytest.mark.parametrize(("outcome", "taken_down"), [("removed", True), ("restricted", True),
                                                    ("account_suspended", True), ("rejected", False)])
async def test_the_sandbox_serves_content_until_a_decision_takes_it_down_and_again_once_it_reappears(
        outcome, taken_down):
    app = create_sandbox(SandboxSettings(sandbox_policy=f"{outcome}=1", sandbox_decision_delay_s=0, sandbox_seed="t"))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as sandbox:
        url, other = "https://youtube.com/watch?v=reported", "https://youtube.com/watch?v=other"
        assert (await sandbox.get("/content", params={"url": url})).json() == {"url": url, "reachable": True}
        await sandbox.post("/youtube/v1/flags", json={"video_url": url, "reason_code": "FRAUD", "flagger_reference": "r1"},
                           headers={**YOUTUBE_KEY, "Idempotency-Key": "r1"})

        after = await sandbox.get("/content", params={"url": url})
        assert (after.status_code, after.json()) == ((410, {"url": url, "reachable": False}) if taken_down
                                                     else (200, {"url": url, "reachable": True}))
        assert (await sandbox.get("/content", params={"url": other})).status_code == 200
        assert (await sandbox.post("/admin/content/reappear", json={"url": url})).status_code == 200
        assert (await sandbox.get("/content", params={"url": url})).status_code == 200
        assert (await sandbox.get("/content")).status_code == 422


async def test_the_http_probe_tells_content_up_from_gone_and_anything_else_is_a_failed_check():
    answers = FastAPI(title="content host")

    @answers.get("/{code}")
    async def answer(code: int) -> Response:
        return Response(status_code=code)

    async with serving(answers) as base:
        probe = HttpContentProbe(f"{base}/{{url}}", guarded(host_port(base), deadline_s=5))
        try:
            assert await probe.reachable("200") is True and await probe.reachable("204") is True
            assert await probe.reachable("404") is False and await probe.reachable("410") is False
            for code in ("503", "500", "403", "429"):
                with pytest.raises(ProbeFailed):
                    await probe.reachable(code)
        finally:
            await probe.close()
    unreachable = HttpContentProbe(f"{base}/{{url}}", guarded(host_port(base), deadline_s=1))
    with pytest.raises(ProbeFailed):
        await unreachable.reachable("200")
    await unreachable.close()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:5432/",
                                 "http://[::ffff:10.0.0.1]/", "http://kafka.internal:9092/"])
async def test_the_http_probe_refuses_to_check_a_url_that_is_not_a_public_address(url):
    probe = HttpContentProbe("{url}", guarded())

    with pytest.raises(ProbeRefused, match="is not a public address"):
        await probe.reachable(url)


class ScriptedProbe:
    """A ContentProbe that answers each URL from a script (a reachability, or an exception to raise)."""

    def __init__(self, answers: dict[str, bool | ProbeFailed]):
        self.answers, self.calls = answers, []

    async def reachable(self, url: str) -> bool:
        self.calls.append(url)
        if isinstance(self.answers[url], ProbeFailed):
            raise self.answers[url]
        return self.answers[url]

    async def close(self) -> None:
        pass


async def test_a_failed_or_refused_stays_down_check_waits_instead_of_being_tried_again_every_tick(
        settings_env, kafka, credentials):
    settings = quick(settings_env, scheduler_enabled=False, stays_down_checks_s=[0.1, 3600],
                     content_check_retry_s=60)
    failing, refused, answered = (uuid4() for _ in range(3))
    urls = {rid: f"https://youtube.com/watch?v={rid.hex}" for rid in (failing, refused, answered)}
    probe = ScriptedProbe({urls[failing]: ProbeFailed("HTTP 503"), urls[answered]: False,
                           urls[refused]: ProbeRefused("not a public address")})
    async with outcomes(settings, credentials) as client:
        then = datetime.now(UTC) - timedelta(seconds=1)
        for rid, url in urls.items():
            await publish(kafka, submitted(rid, then - timedelta(hours=1), Category.fraud, Platform.youtube, url),
                          dispatched(rid, then - timedelta(minutes=59), Platform.youtube),
                          removed(rid, then, Platform.youtube))
            await referral_when(client, rid, lambda b: b["status"] == "decided", "the referral decided")
        engine, broker = db.make_engine(settings.database_url), make_broker(settings, "scheduler-backoff")
        await broker.connect()
        try:
            scheduler = Scheduler(db.make_sessions(engine), broker, probe, settings)
            published = [await scheduler.tick() for _ in range(3)]
        finally:
            await broker.stop()
            await engine.dispose()
        down = await referral_when(client, answered, lambda b: "content.still_down" in types(b), "the answered check")
    assert published == [1, 0, 0] and down["reachable"] is False
    assert sorted(probe.calls) == sorted(urls.values())  # each probed once in three ticks
