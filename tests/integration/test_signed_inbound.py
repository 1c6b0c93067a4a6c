"""Signed submissions on referrals.inbound against a real broker and database: a record the agency
signed becomes a referral under that agency; anything else is a dead letter saying why, and the
partition keeps moving; a record delivered again is not a replay."""

import json
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake.app import create_app
from services.intake.config import IntakeSettings
from shared import topics
from shared.auth.records import signed_headers
from shared.auth.signing import new_secret
from tests.support import TopicReader, eventually, headers_of, serving

KEY = b"agency-system"  # one key: one partition, records read in the order sent


def body(url: str, **fields) -> bytes:
    return json.dumps({"url": url, "category": "people_smuggling", **fields}).encode()


async def send_all(bootstrap: str, records: list[tuple[bytes, dict[str, str]]], **options) -> None:
    """Publish (value, headers) records in order to one partition of referrals.inbound."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topics.REFERRALS_INBOUND, value, key=KEY, **options,
                                         headers=[(k, v.encode()) for k, v in headers.items()])
    finally:
        await producer.stop()


async def query(database_url: str, sql: str) -> list[dict]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(sql))).mappings()]
    finally:
        await engine.dispose()


async def submitted(kafka: str, count: int) -> list:
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        return await reader.wait_for(lambda rs: len(rs) >= count, what=f"{count} submitted referrals")


async def dead_letters(kafka: str, count: int) -> dict[int, str]:
    """Original offset -> reason of the first count dead letters of referrals.inbound."""
    async with TopicReader(kafka, topics.REFERRALS_INBOUND_DLQ) as dlq:
        records = await dlq.wait_for(lambda rs: len(rs) >= count, what=f"{count} dead letters")
    return {int(headers_of(r)["dlq_original_offset"]): headers_of(r)["dlq_reason"] for r in records}


async def test_a_signed_record_becomes_a_referral_recorded_under_the_agency_that_signed_it(
        settings_env, kafka, database_url, signing_secrets):
    value = body("https://t.me/signed_channel", case_reference="OP-9")
    headers = signed_headers("NCA", signing_secrets["NCA"], value)

    async with serving(create_app(IntakeSettings(**settings_env))):
        await send_all(kafka, [(value, headers)])
        [record] = await submitted(kafka, 1)

    event = headers_of(record)
    assert event["ce_actor"] == "agency:NCA" and event["ce_credential"] == "signed:NCA"
    assert json.loads(record.value)["agency"] == "NCA" and json.loads(record.value)["received_via"] == "kafka"
    [stored] = await query(database_url, "SELECT agency, canonical_url FROM intake.referrals")
    assert stored == {"agency": "NCA", "canonical_url": "https://t.me/signed_channel"}
    [remembered] = await query(database_url, "SELECT agency, webhook_id, topic, \"offset\" FROM intake.webhook_ids")
    assert remembered == {"agency": "NCA", "webhook_id": headers["webhook-id"], "topic": topics.REFERRALS_INBOUND,
                          "offset": 0}


async def test_every_record_that_proves_nothing_is_dead_lettered_with_why_and_the_good_one_after_them_is_stored(
        settings_env, kafka, database_url, signing_secrets):
    nca, now = signing_secrets["NCA"], time.time()
    refused = [
        (body("https://x.com/unsigned"), {}, "unauthenticated: no webhook-signature header"),
        (body("https://x.com/wrong"), signed_headers("NCA", signing_secrets["Europol"], body("https://x.com/wrong")),
         "unauthenticated: signature matches no active secret of agency 'NCA'"),
        (body("https://x.com/unknown"), signed_headers("Interpol", new_secret(), body("https://x.com/unknown")),
         "unauthenticated: unknown agency 'Interpol'"),
        (body("https://x.com/stale"), signed_headers("NCA", nca, body("https://x.com/stale"), now=now - 600),
         "unauthenticated: stale timestamp"),
        (body("https://x.com/future"), signed_headers("NCA", nca, body("https://x.com/future"), now=now + 600),
         "unauthenticated: timestamp in the future"),
        (body("https://x.com/other", agency="Europol"), signed_headers("NCA", nca, body("https://x.com/other",
                                                                                          agency="Europol")),
         "forbidden: agency 'Europol' is not the caller's agency"),
        (body("https://x.com/year-33658"), {**signed_headers("NCA", nca, body("https://x.com/year-33658")),
                                             "webhook-timestamp": "999999999999"},
         "unauthenticated: timestamp in the future"),
        (body("https://x.com/nul"), signed_headers("NC\x00A", nca, body("https://x.com/nul")),
         "unauthenticated: unknown agency"),
    ]
    good = body("https://x.com/after")
    await send_all(kafka, [(v, h) for v, h, _ in refused] + [(good, signed_headers("NCA", nca, good))])

    async with serving(create_app(IntakeSettings(**settings_env))):
        reasons = await dead_letters(kafka, len(refused))
        [record] = await submitted(kafka, 1)

    for offset, (_, _, reason) in enumerate(refused):
        assert reasons[offset].startswith(reason), (offset, reasons[offset])
    assert json.loads(record.value)["canonical_url"] == "https://x.com/after"
    assert [r["canonical_url"] for r in await query(database_url, "SELECT canonical_url FROM intake.referrals")] == [
        "https://x.com/after"]


async def test_a_copy_of_an_accepted_record_is_dead_lettered_as_a_replay_and_the_next_record_is_stored(
        settings_env, kafka, database_url, signing_secrets):
    original, after = body("https://x.com/original"), body("https://x.com/next")
    headers = signed_headers("NCA", signing_secrets["NCA"], original, msg_id="msg_once")
    await send_all(kafka, [(original, headers), (original, headers),
                           (after, signed_headers("NCA", signing_secrets["NCA"], after))])

    async with serving(create_app(IntakeSettings(**settings_env))):
        reasons = await dead_letters(kafka, 1)
        records = await submitted(kafka, 2)

    partition = (await query(database_url, "SELECT partition FROM intake.webhook_ids WHERE webhook_id = 'msg_once'")
                 )[0]["partition"]
    assert reasons == {1: f"unauthenticated: replayed webhook-id 'msg_once' (first accepted from "
                          f"{topics.REFERRALS_INBOUND}/{partition}/0)"}
    assert sorted(json.loads(r.value)["canonical_url"] for r in records) == ["https://x.com/next",
                                                                             "https://x.com/original"]


async def test_a_signed_record_that_waited_in_a_backlog_longer_than_the_tolerance_is_still_accepted(
        settings_env, kafka, signing_secrets):
    """The signature's time is compared with when the broker appended the record, not with now."""
    an_hour_ago = time.time() - 3600
    value = body("https://x.com/backlog")
    headers = signed_headers("NCA", signing_secrets["NCA"], value, now=an_hour_ago)
    await send_all(kafka, [(value, headers)], timestamp_ms=int((an_hour_ago + 2) * 1000))  # appended then

    async with serving(create_app(IntakeSettings(**settings_env))):
        [record] = await submitted(kafka, 1)

    assert json.loads(record.value)["canonical_url"] == "https://x.com/backlog"


async def rewind(kafka: str, group: str, partition: int, offset: int) -> None:
    """Move a stopped consumer group back, as a consumer that crashed before committing would leave it."""
    consumer = AIOKafkaConsumer(topics.REFERRALS_INBOUND, bootstrap_servers=kafka, group_id=group,
                                enable_auto_commit=False, session_timeout_ms=2000, heartbeat_interval_ms=500)
    await consumer.start()
    try:
        tp = TopicPartition(topics.REFERRALS_INBOUND, partition)

        async def joined() -> bool:  # a member of the group, as only members may commit
            await consumer.getmany(timeout_ms=100)
            return tp in consumer.assignment()

        await eventually(joined, what="the rewinding consumer to join the group")
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def committed(kafka: str, group: str, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topics.REFERRALS_INBOUND, partition))
    finally:
        await consumer.stop()


async def test_a_record_read_again_after_a_consumer_restarts_from_an_earlier_offset_is_not_a_replay(
        settings_env, kafka, database_url, signing_secrets):
    first, sentinel = body("https://x.com/read-twice"), body("https://x.com/sentinel")
    await send_all(kafka, [(first, signed_headers("NCA", signing_secrets["NCA"], first))])
    async with serving(create_app(IntakeSettings(**settings_env))):
        await submitted(kafka, 1)
        [stored] = await query(database_url, "SELECT partition FROM intake.webhook_ids")
    await rewind(kafka, topics.GROUP_INTAKE, stored["partition"], 0)
    assert await committed(kafka, topics.GROUP_INTAKE, stored["partition"]) == 0, "rewound to the accepted record"
    await send_all(kafka, [(sentinel, signed_headers("NCA", signing_secrets["NCA"], sentinel))])

    async with serving(create_app(IntakeSettings(**settings_env))):
        async def past_the_sentinel() -> bool:
            return await committed(kafka, topics.GROUP_INTAKE, stored["partition"]) == 2

        await eventually(past_the_sentinel, what="intake to read both records and commit past them")

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        dlq = [TopicPartition(topics.REFERRALS_INBOUND_DLQ, p)
               for p in consumer.partitions_for_topic(topics.REFERRALS_INBOUND_DLQ) or ()]
        assert sum((await consumer.end_offsets(dlq)).values()) == 0, "the record read again was dead-lettered"
    finally:
        await consumer.stop()
    rows = await query(database_url, "SELECT canonical_url FROM intake.referrals ORDER BY canonical_url")
    assert [r["canonical_url"] for r in rows] == ["https://x.com/read-twice", "https://x.com/sentinel"]
