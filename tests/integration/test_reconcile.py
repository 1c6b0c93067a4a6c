"""Nothing stranded: each service keeps what it owes in Postgres and drives on what made no progress
(issue 10), against a real broker and database.

- intake keeps each event until the dispatcher and outcomes confirmed it, and publishes it again,
  with the same id, until they have;
- the dispatcher puts a delivery whose lane record was lost back on its lane, reports it once, and
  does not report again what a redelivered lane record asks for once it is reported;
- an agency's answer reaches the ticket that asked for it, once;
- `takedown reconcile` shows what is stuck and makes it due.
"""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select
from typer.testing import CliRunner

from services.cli import app as cli
from services.dispatcher import db as dispatcher_db
from services.dispatcher.adapters.base import DecisionMode
from services.dispatcher.deliveries import REPORT, Owed
from services.intake import db as intake_db
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from shared import db, topics
from shared.events import Event, InformationSupplied, to_kafka
from shared.receipts import send_receipt
from tests.fakes import FakeAdapter, RecordingBroker, referral
from tests.integration.test_dispatcher import running, submit, wait_for_events
from tests.support import TopicReader, bearer, eventually, headers_of, produce, serving

QUICK = {"redrive_after_s": 0.5, "reconcile_every_s": 0.1}


async def count(database_url: str, table) -> int:
    engine = db.single_use_engine(database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(table))).scalar()
    finally:
        await engine.dispose()


async def test_an_event_is_published_again_with_its_id_until_every_reader_confirmed_it(
        settings_env, kafka, credentials, database_url):
    nca = bearer(credentials["agencies"]["NCA"]["token"])
    async with serving(create_intake(IntakeSettings(**settings_env, **QUICK))) as url:
        async with httpx.AsyncClient(base_url=url, headers=nca) as client:
            answer = await client.post("/v1/referrals", json={
                "agency": "NCA", "url": "https://www.facebook.com/groups/crossings", "category": "people_smuggling"})
            assert answer.status_code == 202, answer.text
            async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
                twice = await reader.wait_for(lambda rs: len(rs) >= 2, 20, "the event published again")
            ids = {headers_of(r)["ce_id"] for r in twice}
            broker = RecordingBroker()  # records the receipts it is given, then they are produced for real
            await send_receipt(broker, "dispatcher", [headers_of(twice[0])])
            await send_receipt(broker, "outcomes", [headers_of(twice[0])])
            for receipt in broker.published:
                await produce(kafka, receipt.topic, receipt.value, key=receipt.key)
            async def emptied() -> bool:
                return await count(database_url, intake_db.OUTBOX.table) == 0

            await eventually(emptied, 20, "the confirmed event dropped from the outbox")
            stuck = await client.get("/v1/operators/stuck", params={"older_than_s": 0},
                                     headers=bearer(credentials["operator"]["token"]))

    assert len(ids) == 1 and twice[0].key == twice[1].key, "the same event, not a new one"
    assert stuck.status_code == 200 and stuck.json() == []


async def test_a_delivery_whose_lane_record_was_lost_is_put_back_on_its_lane_and_reported_once(
        settings_env, kafka, database_url):
    adapter, ref = FakeAdapter(), referral()
    key, value, headers = to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=ref))
    async with running(settings_env, adapter, **QUICK):
        engine = db.single_use_engine(database_url)
        async with db.make_sessions(engine)() as session, session.begin():  # routed, then the lane record lost
            await dispatcher_db.DELIVERIES.owe(session, [Owed(uuid.UUID(headers["ce_id"]), REPORT, ref.referral_id, 1,
                                                              "facebook", key, value, headers)], within_s=0)
        await engine.dispose()
        [dispatched] = await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        await produce(kafka, topics.lane("facebook"), value, key=key, headers=headers)  # a stale copy comes late
        await submit(kafka, referral())  # and a later referral goes through behind it
        await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 2)

    assert dispatched.data.referral_id == ref.referral_id
    assert [c.referral_id for c in adapter.calls].count(ref.referral_id) == 1, "reported once"


async def test_an_agency_answer_is_forwarded_once_to_the_ticket_that_asked(settings_env, kafka):
    adapter, ref = FakeAdapter(decisions=DecisionMode.polling, poll_answers=["information"]), referral()
    answer = Event(source="/takedown/intake", actor="agency:NCA", time=datetime.now(UTC),
                   data=InformationSupplied(referral_id=ref.referral_id, answer="The post at 10:02, see case OP-1."))
    async with running(settings_env, adapter, **QUICK):
        await submit(kafka, ref)
        await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "takedown.information_requested", 1)
        key, value, headers = to_kafka(answer)
        for _ in range(2):  # published twice (a re-drive): forwarded once
            await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)
        published = await wait_for_events(kafka, topics.TAKEDOWN_DECISIONS, "referral.information_forwarded", 1)
        [forwarded] = {e.id: e for e in published}.values()  # nobody confirms it here: it may be published again

    ticket = f"T-{ref.delivery_key}"
    assert adapter.answers == [(ticket, "The post at 10:02, see case OP-1.", str(answer.id))]
    assert forwarded.data.ticket_id == ticket and forwarded.data.answer_event_id == answer.id


async def test_reconcile_shows_what_is_stuck_and_makes_it_due(settings_env, database_url, kafka):
    adapter, ref = FakeAdapter(), referral()
    async with running(settings_env, adapter, redrive_after_s=3600):  # nothing re-driven by itself
        engine = db.single_use_engine(database_url)
        key, value, headers = to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=ref))
        async with db.make_sessions(engine)() as session, session.begin():
            await dispatcher_db.DELIVERIES.owe(session, [Owed(uuid.UUID(headers["ce_id"]), REPORT, ref.referral_id, 1,
                                                              "facebook", key, value, headers)], within_s=3600)
        await engine.dispose()
        env = {"DATABASE_URL": database_url}
        # In a thread of its own: the command runs its own event loop.
        shown = await asyncio.to_thread(CliRunner().invoke, cli, ["reconcile", "--dry-run", "--older-than", "0"],
                                        env=env)
        assert not adapter.calls
        driven = await asyncio.to_thread(CliRunner().invoke, cli, ["reconcile", "--older-than", "0"], env=env)
        assert driven.exit_code == 0, driven.output
        await wait_for_events(kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)

    assert shown.exit_code == 0, shown.output
    assert "dispatcher: report due, not delivered" in shown.output and "facebook" in shown.output
    assert driven.exit_code == 0 and [c.referral_id for c in adapter.calls] == [ref.referral_id]
