"""Intake against a real broker and database: HTTP and Kafka submissions become events."""

import json
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake.app import MIGRATIONS, create_app
from services.intake.config import IntakeSettings
from services.intake.db import SCHEMA
from shared import db, topics
from shared.auth import keys
from shared.events import from_kafka
from shared.auth.records import signed_headers
from tests.support import (TopicReader, bearer, create_signing_secrets, headers_of, produce, produce_signed,
                           serving)



def submission(**overrides) -> dict:
    return {"agency": "NCA", "url": "https://www.facebook.com/groups/smugglers?fbclid=abc",
            "category": "people_smuggling", **overrides}


@pytest.fixture
async def intake(settings_env, credentials):
    """An HTTP client of intake, signed in as the NCA."""
    async with serving(create_app(IntakeSettings(**settings_env))) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer(credentials["agencies"]["NCA"]["token"])) as client:
            yield client


def submitted_ids(records) -> list[str]:
    return [str(from_kafka(headers_of(r), r.value).referral_id) for r in records]


async def test_a_posted_referral_is_published_as_a_cloudevent_keyed_by_its_id(intake, kafka):
    response = await intake.post("/v1/referrals", json=submission(case_reference="OP-1"))

    assert response.status_code == 202
    body = response.json()
    assert body["platform"] == "facebook"
    assert body["canonical_url"] == "https://facebook.com/groups/smugglers"
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        [record] = await reader.wait_for(lambda rs: len(rs) >= 1)
    headers = headers_of(record)
    assert record.key.decode() == body["referral_id"]
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "referral.submitted"
    assert headers["ce_subject"] == body["referral_id"]
    assert headers["ce_actor"] == "agency:NCA"
    assert headers["ce_schemaversion"] == "1"
    assert uuid.UUID(headers["ce_id"]) and headers["ce_time"]
    data = json.loads(record.value)
    assert data["case_reference"] == "OP-1" and data["received_via"] == "http"


async def test_the_same_idempotency_key_from_the_same_agency_returns_the_first_referral(intake, kafka, credentials):
    first = (await intake.post("/v1/referrals", json=submission(idempotency_key="op-7/1"))).json()
    again = (await intake.post("/v1/referrals", json=submission(idempotency_key="op-7/1"))).json()
    border_force = bearer(credentials["agencies"]["BorderForce"]["token"])
    other_agency = (await intake.post("/v1/referrals", json=submission(agency=None, idempotency_key="op-7/1"),
                                      headers=border_force)).json()

    assert again["referral_id"] == first["referral_id"] and again["duplicate"] is True
    assert first["duplicate"] is False
    assert other_agency["referral_id"] != first["referral_id"]
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        records = await reader.wait_for(lambda rs: len(rs) >= 2)
        sentinel = (await intake.post("/v1/referrals", json=submission())).json()["referral_id"]
        records = await reader.wait_for(lambda rs: sentinel in submitted_ids(rs))
    assert sorted(submitted_ids(records)) == sorted([first["referral_id"], other_agency["referral_id"], sentinel])


async def test_a_referral_is_made_for_the_callers_agency_and_one_naming_another_is_refused(intake, kafka, credentials):
    without_agency = await intake.post("/v1/referrals", json=submission(agency=None, url="https://x.com/mine"))
    naming_another = await intake.post("/v1/referrals", json=submission(agency="BorderForce"))
    batch_naming_another = await intake.post("/v1/referrals/batch", json={"referrals": [
        submission(url="https://x.com/fine"), submission(agency="BorderForce", url="https://x.com/theirs")]})
    by_an_auditor = await intake.post("/v1/referrals", json=submission(agency=None),
                                      headers=bearer(credentials["auditor"]["token"]))
    async with httpx.AsyncClient(base_url=intake.base_url) as anonymous:
        by_nobody = await anonymous.post("/v1/referrals", json=submission())
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        [record] = await reader.wait_for(lambda rs: len(rs) >= 1)
        sentinel = (await intake.post("/v1/referrals", json=submission(url="https://x.com/last"))).json()
        records = await reader.wait_for(lambda rs: sentinel["referral_id"] in submitted_ids(rs))

    assert without_agency.status_code == 202
    assert (naming_another.status_code, batch_naming_another.status_code) == (403, 403)
    assert (by_an_auditor.status_code, by_nobody.status_code) == (403, 401)
    assert submitted_ids(records) == [without_agency.json()["referral_id"], sentinel["referral_id"]]
    nca_key, _ = keys.parse(credentials["agencies"]["NCA"]["token"])
    assert json.loads(record.value)["agency"] == "NCA"
    assert (headers_of(record)["ce_actor"], headers_of(record)["ce_credential"]) == ("agency:NCA", f"key:{nca_key}")


async def test_bad_input_gets_422_naming_each_bad_field(intake):
    response = await intake.post("/v1/referrals", json={"agency": "", "url": "ftp://x.example", "category": "spam",
                                                         "evidence": [{"sha256": "nothex"}], "colour": "red"})

    assert response.status_code == 422
    fields = {tuple(e["loc"][1:]) for e in response.json()["detail"]}
    assert {("agency",), ("url",), ("category",), ("evidence", 0, "sha256"),
            ("evidence", 0, "captured_at"), ("colour",)} <= fields


async def test_a_batch_answers_item_by_item_and_publishes_only_what_it_accepted(intake, kafka):
    items = [submission(url="https://youtu.be/abc123?si=track"), {"agency": "NCA", "url": "nope"},
             submission(idempotency_key="dup"), submission(idempotency_key="dup")]

    response = await intake.post("/v1/referrals/batch", json={"referrals": items})

    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["invalid"]) == (2, 1, 1)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["canonical_url"] == "https://youtube.com/watch?v=abc123" and results[0]["platform"] == "youtube"
    assert results[1]["status"] == "invalid"
    assert {e["field"] for e in results[1]["errors"]} == {"url", "category"}
    assert results[3]["status"] == "duplicate" and results[3]["referral_id"] == results[2]["referral_id"]
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        records = await reader.wait_for(lambda rs: len(rs) >= 2)
    assert sorted(submitted_ids(records)) == sorted([results[0]["referral_id"], results[2]["referral_id"]])


async def test_a_url_whose_host_is_not_public_gets_422_naming_url_alone_and_is_invalid_in_a_batch(intake):
    metadata = submission(url="http://169.254.169.254/latest/meta-data/")

    single = await intake.post("/v1/referrals", json=metadata)
    batch = await intake.post("/v1/referrals/batch", json={"referrals": [submission(url="http://0x7f000001:5432/")]})

    assert single.status_code == 422
    [error] = single.json()["detail"]
    assert error["loc"] == ["body", "url"]
    assert "URL host 169.254.169.254 is not a public address: 169.254.169.254 is link-local" in error["msg"]
    [result] = batch.json()["results"]
    assert result["status"] == "invalid" and [e["field"] for e in result["errors"]] == ["url"]


async def test_a_batch_of_more_than_a_thousand_is_refused_whole(intake):
    response = await intake.post("/v1/referrals/batch", json={"referrals": [submission()] * 1001})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "referrals"]


async def test_a_submission_on_referrals_inbound_becomes_a_referral_once_even_if_sent_twice(
        intake, kafka, signing_secrets):
    raw = json.dumps(submission(url="https://t.me/smuggling_channel", agency="Border Force")).encode()

    # Sent twice, each time signed afresh (a new webhook-id): the same submission, not a replay.
    await produce_signed(kafka, topics.REFERRALS_INBOUND, raw, "Border Force", signing_secrets["Border Force"])
    await produce_signed(kafka, topics.REFERRALS_INBOUND, raw, "Border Force", signing_secrets["Border Force"])
    await produce_signed(kafka, topics.REFERRALS_INBOUND, json.dumps(submission(url="https://x.com/a")).encode(),
                         "NCA", signing_secrets["NCA"])

    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        records = await reader.wait_for(
            lambda rs: any(json.loads(r.value)["canonical_url"] == "https://x.com/a" for r in rs))
    urls = [json.loads(r.value)["canonical_url"] for r in records]
    assert sorted(urls) == ["https://t.me/smuggling_channel", "https://x.com/a"]
    assert all(json.loads(r.value)["received_via"] == "kafka" for r in records)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (json.dumps({"agency": "NCA", "url": "https://x.com/a"}).encode(), "category: Field required"),
    (json.dumps({"agency": "NCA", "url": "http://localhost:5432/", "category": "fraud"}).encode(),
     "URL host localhost is not a public address"),
])
async def test_a_bad_inbound_record_is_dead_lettered_with_its_reason_and_consumption_goes_on(
        intake, kafka, signing_secrets, raw, reason):
    await produce_signed(kafka, topics.REFERRALS_INBOUND, raw, "NCA", signing_secrets["NCA"])
    await produce_signed(kafka, topics.REFERRALS_INBOUND, json.dumps(submission(url="https://x.com/after")).encode(),
                         "NCA", signing_secrets["NCA"])

    async with TopicReader(kafka, topics.REFERRALS_INBOUND_DLQ) as dlq:
        [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1)
    headers = headers_of(dead)
    assert dead.value == raw
    assert reason in headers["dlq_reason"]
    assert headers["dlq_original_topic"] == topics.REFERRALS_INBOUND
    assert headers["dlq_original_offset"] == "0" and headers["dlq_attempts"] == "1"
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        [record] = await reader.wait_for(lambda rs: len(rs) >= 1)
    assert json.loads(record.value)["canonical_url"] == "https://x.com/after"


async def test_a_record_whose_headers_are_not_utf8_is_still_processed_not_skipped(intake, kafka, signing_secrets):
    """FastStream alone fails such a record before any handler runs and commits past it."""
    raw = json.dumps(submission(url="https://x.com/odd-headers")).encode()

    await produce(kafka, topics.REFERRALS_INBOUND, raw,
                  headers={**signed_headers("NCA", signing_secrets["NCA"], raw), "trace": b"\xff\xfe"})

    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        [record] = await reader.wait_for(lambda rs: len(rs) >= 1)
    assert json.loads(record.value)["canonical_url"] == "https://x.com/odd-headers"



def agency_of(value: bytes) -> str:
    """The agency a record's body names; NCA for a body that names none (or is not JSON)."""
    try:
        return json.loads(value).get("agency") or "NCA"
    except ValueError:
        return "NCA"


async def produce_all(bootstrap: str, values: list[bytes], secrets: dict[str, str]) -> None:
    """Publish records, each signed by the agency it names, in order to one partition of referrals.inbound
    (one key), before intake reads them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            headers = signed_headers(agency_of(value), secrets[agency_of(value)], value)
            await producer.send_and_wait(topics.REFERRALS_INBOUND, value, key=b"agency-system",
                                         headers=[(k, v.encode()) for k, v in headers.items()])
    finally:
        await producer.stop()


async def stored_referrals(database_url: str) -> list[dict]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT agency, idempotency_key, canonical_url, received_at "
                                           "FROM intake.referrals ORDER BY canonical_url"))
            return [dict(r) for r in rows.mappings()]
    finally:
        await engine.dispose()


async def test_records_waiting_on_referrals_inbound_are_stored_together_a_repeated_key_once_poison_apart(
        settings_env, kafka, database_url, signing_secrets):
    await produce_all(kafka, [json.dumps(submission(url="https://x.com/first", idempotency_key="k1")).encode(),
                              b"{oops",
                              json.dumps(submission(url="https://x.com/again", idempotency_key="k1")).encode(),
                              json.dumps(submission(url="https://x.com/other")).encode()], signing_secrets)

    async with serving(create_app(IntakeSettings(**settings_env))):
        async with TopicReader(kafka, topics.REFERRALS_INBOUND_DLQ) as dlq:
            [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1)
        async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
            records = await reader.wait_for(lambda rs: len(rs) >= 2)

    assert dead.value == b"{oops" and "not valid JSON" in headers_of(dead)["dlq_reason"]
    assert sorted(json.loads(r.value)["canonical_url"] for r in records) == ["https://x.com/first",
                                                                            "https://x.com/other"]
    stored = await stored_referrals(database_url)
    assert [r["canonical_url"] for r in stored] == ["https://x.com/first", "https://x.com/other"]
    assert stored[0]["received_at"] == stored[1]["received_at"], "one transaction, one moment of receipt"


REFUSE_AGENCY = ("""
CREATE FUNCTION intake.refuse_agency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agency = 'Refused' THEN RAISE EXCEPTION 'refused by the test'; END IF;
    RETURN NEW;
END $$""", "CREATE TRIGGER refuse_agency BEFORE INSERT ON intake.referrals FOR EACH ROW "
           "EXECUTE FUNCTION intake.refuse_agency()")


async def test_a_submission_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_is_stored(
        settings_env, kafka, database_url, signing_secrets):
    await db.migrate(database_url, MIGRATIONS, SCHEMA)
    secrets = {**signing_secrets, **await create_signing_secrets(database_url, ("Refused",))}
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        for statement in REFUSE_AGENCY:
            await conn.exec_driver_sql(statement)
    await engine.dispose()
    refused = json.dumps(submission(agency="Refused", url="https://x.com/refused")).encode()
    await produce_all(kafka, [json.dumps(submission(url="https://x.com/before")).encode(), refused,
                              json.dumps(submission(url="https://x.com/after")).encode()], secrets)

    async with serving(create_app(IntakeSettings(**settings_env))):
        async with TopicReader(kafka, topics.REFERRALS_INBOUND_DLQ) as dlq:
            [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1)
        async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
            records = await reader.wait_for(lambda rs: len(rs) >= 2)

    headers = headers_of(dead)
    assert dead.value == refused and "refused by the test" in headers["dlq_reason"]
    assert headers["dlq_original_offset"] == "1" and int(headers["dlq_attempts"]) > 1
    assert sorted(json.loads(r.value)["canonical_url"] for r in records) == ["https://x.com/after",
                                                                            "https://x.com/before"]
    assert [r["canonical_url"] for r in await stored_referrals(database_url)] == ["https://x.com/after",
                                                                                  "https://x.com/before"]
