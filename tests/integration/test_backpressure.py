"""Backpressure against a real broker and database, with no dispatcher running (nothing drains until
the test plays its part): past the bound intake answers 429 and stops reading referrals.inbound;
once the backlog drains it accepts again, and everything it accepted goes on."""

import asyncio
import json
from contextlib import asynccontextmanager

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake.app import create_app
from services.intake.config import IntakeSettings
from shared import topics
from shared.auth.records import signed_headers
from shared.lag import LagReader
from tests.support import TopicReader, bearer, eventually, headers_of, produce, serving

BOUND = 5


def submission(n: int) -> dict:
    return {"url": f"https://x.com/post/{n}", "category": "people_smuggling"}


@asynccontextmanager
async def intake(settings_env, **settings):
    """Intake with a bound of 5, sampled five times a second unless settings say otherwise: its app
    and its base URL, once it has taken its first sample."""
    app = create_app(IntakeSettings(**{**settings_env, "backpressure_max_backlog": BOUND,
                                       "backpressure_sample_s": 0.2, **settings}))
    async with serving(app) as url:
        await eventually(holds(lambda: app.state.gauge.reading.outbox is not None), 10, "the first sample")
        yield app, url


def accepting_again(app):
    """A check for eventually(): sample now; is intake accepting?"""
    async def check() -> bool:
        await app.state.gauge.sample()
        return not app.state.gauge.refusing
    return check


async def stored(database_url: str) -> list[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [r[0] for r in await conn.execute(text("SELECT canonical_url FROM intake.referrals"))]
    finally:
        await engine.dispose()


async def confirm_as_the_dispatcher(kafka: str, count: int) -> list[str]:
    """Read the first count events on referrals.submitted and send the receipt the dispatcher's
    router sends once it has routed them; the URLs of the referrals among them."""
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        records = (await reader.wait_for(lambda rs: len(rs) >= count, what=f"{count} events"))[:count]
    receipt = {"by": "dispatcher", "events": [headers_of(r)["ce_id"] for r in records]}
    await produce(kafka, topics.RECEIPTS, json.dumps(receipt).encode(), key=b"dispatcher")
    return [json.loads(r.value)["canonical_url"] for r in records
            if headers_of(r)["ce_type"] == "referral.submitted"]


def holds(condition):
    """condition as the async check eventually() awaits."""
    async def check() -> bool:
        return condition()
    return check


async def samples(app, count: int) -> list[bool]:
    """Wait until the gauge has sampled count more times; whether it refused after each."""
    seen: list[bool] = []
    app.state.gauge.listeners.append(seen.append)
    try:
        await eventually(holds(lambda: len(seen) >= count), 10, f"{count} samples")
    finally:
        app.state.gauge.listeners.remove(seen.append)
    return seen


async def test_past_the_bound_posts_get_429_with_retry_after_store_nothing_and_are_accepted_once_it_drains(
        settings_env, kafka, database_url, credentials):
    # Sampled when the test says: a sample taken while a referral commits may count it twice for a while.
    async with intake(settings_env, backpressure_sample_s=10) as (app, url), httpx.AsyncClient(
            base_url=url, headers=bearer(credentials["agencies"]["NCA"]["token"])) as client:
        accepted = [await client.post("/v1/referrals", json=submission(n)) for n in range(BOUND)]
        refused = await client.post("/v1/referrals", json=submission(BOUND))
        refused_batch = await client.post("/v1/referrals/batch", json={"referrals": [submission(90), submission(91)]})
        escalated = await client.post(f"/v1/referrals/{accepted[0].json()['referral_id']}/escalate",
                                      json={"reason": "no answer"})
        assert [r.status_code for r in accepted] == [202] * BOUND
        assert (refused.status_code, refused_batch.status_code) == (429, 429)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["detail"].startswith("intake is at its bound of work not yet dispatched (")
        assert "nothing was accepted" in refused.json()["detail"]
        assert escalated.status_code == 202  # agency actions are still taken (docs/operations.md)
        assert sorted(await stored(database_url)) == sorted(submission(n)["url"] for n in range(BOUND))

        confirmed = await confirm_as_the_dispatcher(kafka, BOUND + 1)  # the referrals and the escalation
        await eventually(accepting_again(app), 20, "intake to accept again", interval=0.2)
        again = await client.post("/v1/referrals", json=submission(BOUND))

    assert again.status_code == 202
    assert sorted(confirmed) == sorted(f"https://x.com/post/{n}" for n in range(BOUND))
    assert len(await stored(database_url)) == BOUND + 1


async def test_concurrent_posts_do_not_slip_past_the_bound_together(settings_env, kafka, database_url, credentials):
    async with intake(settings_env, backpressure_sample_s=10) as (app, url), httpx.AsyncClient(
            base_url=url, headers=bearer(credentials["agencies"]["NCA"]["token"])) as client:
        answers = await asyncio.gather(*(client.post("/v1/referrals", json=submission(n)) for n in range(BOUND + 7)))
        batch = await client.post("/v1/referrals/batch", json={"referrals": [submission(100)]})

    codes = [a.status_code for a in answers]
    assert (codes.count(202), codes.count(429), batch.status_code) == (BOUND, 7, 429)
    assert sorted(await stored(database_url)) == sorted(a.json()["canonical_url"] for a in answers
                                                        if a.status_code == 202)


async def test_reports_waiting_on_a_lane_count_however_the_broker_batched_them(settings_env, kafka, credentials):
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topics.lane("facebook"), 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=50)
    await producer.start()
    sent = [await producer.send(topics.lane("facebook"), b"report") for _ in range(BOUND)]
    await producer.flush()
    await producer.stop()
    assert all(f.done() for f in sent)

    async with intake(settings_env) as (app, url), httpx.AsyncClient(
            base_url=url, headers=bearer(credentials["agencies"]["NCA"]["token"])) as client:
        await eventually(holds(lambda: app.state.gauge.refusing), 10, "the lane's reports to reach the bound")
        refused = await client.post("/v1/referrals", json=submission(0))
        assert (refused.status_code, app.state.gauge.reading.lanes) == (429, BOUND)

        await commit_lane(kafka, BOUND)  # the lane delivered them
        await eventually(holds(lambda: not app.state.gauge.refusing), 10, "intake to accept again")
        assert (await client.post("/v1/referrals", json=submission(0))).status_code == 202


async def commit_lane(kafka: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=topics.lane_group("facebook"),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topics.lane("facebook"), 0)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def inbound_lag(kafka: str) -> int:
    async with LagReader(kafka) as reader:
        rows = await reader.read({topics.GROUP_INTAKE: (topics.REFERRALS_INBOUND,)}, wait_s=5)
    return sum(r.lag for r in rows)


async def send_signed(kafka: str, secret: str, numbers: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for n in numbers:
            value = json.dumps(submission(n)).encode()
            await producer.send_and_wait(topics.REFERRALS_INBOUND, value, key=b"agency-system", headers=[
                (k, v.encode()) for k, v in signed_headers("NCA", secret, value).items()])
    finally:
        await producer.stop()


async def test_past_the_bound_referrals_inbound_is_paused_unread_and_read_on_once_the_backlog_drains(
        settings_env, kafka, database_url, signing_secrets):
    async with intake(settings_env) as (app, _):
        await send_signed(kafka, signing_secrets["NCA"], range(BOUND))
        await eventually(holds(lambda: app.state.gauge.refusing), 20, "the bound to be reached")
        await send_signed(kafka, signing_secrets["NCA"], range(BOUND, 2 * BOUND))
        assert all(await samples(app, 5))  # a second of samples, all refusing: nothing more is read

        assert len(await stored(database_url)) == BOUND
        assert await inbound_lag(kafka) == BOUND  # not read on, so not committed

        await confirm_as_the_dispatcher(kafka, BOUND)
        await eventually(lambda: _has(database_url, 2 * BOUND), 20, "the paused records to be stored")

    assert sorted(await stored(database_url)) == sorted(submission(n)["url"] for n in range(2 * BOUND))
    assert await inbound_lag(kafka) == 0


async def _has(database_url: str, count: int) -> bool:
    return len(await stored(database_url)) >= count
