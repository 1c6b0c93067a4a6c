"""`takedown dlq list|replay` and `takedown lag` against a real broker, through the real CLI."""

import asyncio
import json

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

from services.cli import app
from services.dlq import list_dead_letters, replay
from shared import topics
from shared.kafka import ensure_topics
from shared.settings import BaseServiceSettings
from tests.support import TopicReader, headers_of, produce

pytestmark = pytest.mark.asyncio

FACEBOOK = topics.lane("facebook")
ORIGINALS = (topics.REFERRALS_INBOUND, topics.REFERRALS_SUBMITTED, FACEBOOK, topics.retry_lane("facebook"))


@pytest.fixture
async def broker(kafka) -> str:
    """The test's broker with the dead-letter topics and the topics they came from."""
    await ensure_topics(BaseServiceSettings(kafka_bootstrap_servers=kafka, topic_partitions=3),
                        (*topics.DEAD_LETTER_TOPICS, *ORIGINALS))
    return kafka


async def takedown(kafka: str | None, *args: str, env: dict | None = None):
    """Run the takedown command as an operator would (it runs its own event loop: off this one)."""
    bootstrap = ["--bootstrap", kafka] if kafka else []
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, *bootstrap], env=env)
    assert result.exit_code == 0, result.output
    return result


async def dead_letter(kafka: str, dlq: str, original: str, value: bytes, key: bytes = b"ref-1",
                      reason: str = "not a referral", offset: int = 0, **extra: str) -> None:
    """A dead letter as shared/kafka.py or the dispatcher writes it."""
    await produce(kafka, dlq, value, key=key, headers={
        "ce_id": "event-1", **extra, "dlq_reason": reason, "dlq_original_topic": original,
        "dlq_original_partition": "0", "dlq_original_offset": str(offset), "dlq_attempts": "3",
        "dlq_failed_at": "2026-03-01T12:00:00+00:00"})


async def record_count(kafka: str, topic: str) -> int:
    """How many records the topic holds now (every replay waits for the broker's ack)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


async def records_on(kafka: str, topic: str, count: int) -> list:
    async with TopicReader(kafka, topic) as reader:
        return await reader.wait_for(lambda rs: len(rs) >= count, what=f"{count} records")


async def listed(kafka: str, topic: str) -> list[dict]:
    result = await takedown(kafka, "dlq", "list", "--topic", topic, "--json")
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- list -----------------------------------------------------------------------------------------


async def test_list_shows_every_dead_letter_with_where_it_came_from_and_why(broker):
    await dead_letter(broker, topics.REFERRALS_INBOUND_DLQ, topics.REFERRALS_INBOUND, b"{oops", offset=4,
                      reason="not valid JSON: Expecting property name")
    await dead_letter(broker, topics.DELIVERY_DLQ, FACEBOOK, b"{}", reason="gave up after 6 attempts: HTTP 503")

    lines = (await takedown(broker, "dlq", "list")).stdout.splitlines()

    assert len(lines) == 2
    assert lines[0].startswith("referrals.inbound.dlq/")
    assert "key=ref-1  from=referrals.inbound/0/4  attempts=3" in lines[0]
    assert "replayed=no  reason=not valid JSON: Expecting property name" in lines[0]
    assert lines[1].startswith("dispatch.dlq/") and "reason=gave up after 6 attempts: HTTP 503" in lines[1]


async def test_list_reads_the_bootstrap_address_from_the_environment(broker):
    await dead_letter(broker, topics.OUTCOMES_DLQ, topics.REFERRALS_SUBMITTED, b"{}", reason="unknown type")

    result = await takedown(None, "dlq", "list", env={"KAFKA_BOOTSTRAP_SERVERS": broker})

    assert "reason=unknown type" in result.stdout


async def test_list_of_a_broker_without_dead_letters_says_so_and_creates_no_topic(kafka):
    result = await takedown(kafka, "dlq", "list")

    assert result.stdout == "" and "no dead letters" in result.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        assert not set(await admin.list_topics()) & set(topics.DEAD_LETTER_TOPICS)
    finally:
        await admin.close()


# --- replay ---------------------------------------------------------------------------------------


async def test_replay_all_sends_dead_letters_back_unchanged_without_their_dlq_headers(broker):
    await dead_letter(broker, topics.REFERRALS_INBOUND_DLQ, topics.REFERRALS_INBOUND, b'{"url": "x"}', key=b"k1")
    await dead_letter(broker, topics.REFERRALS_INBOUND_DLQ, topics.REFERRALS_INBOUND, b"\xff\xfe", key=b"k2")
    letters = await listed(broker, topics.REFERRALS_INBOUND_DLQ)

    result = await takedown(broker, "dlq", "replay", "--topic", topics.REFERRALS_INBOUND_DLQ, "--all")

    assert "replayed 2 dead letter(s) from referrals.inbound.dlq" in result.stdout
    replayed = await records_on(broker, topics.REFERRALS_INBOUND, 2)
    assert sorted((r.key, r.value) for r in replayed) == [(b"k1", b'{"url": "x"}'), (b"k2", b"\xff\xfe")]
    assert sorted(headers_of(r)["dlq_replayed_from"] for r in replayed) == sorted(
        f"{x['topic']}/{x['partition']}/{x['offset']}" for x in letters)
    for record in replayed:
        assert {k for k in headers_of(record) if k.startswith("dlq_")} == {"dlq_replayed_from"}
        assert headers_of(record)["ce_id"] == "event-1"


async def test_a_second_replay_all_sends_only_what_was_dead_lettered_since(broker):
    for n in range(3):
        await dead_letter(broker, topics.DISPATCH_DLQ, topics.REFERRALS_SUBMITTED, b"%d" % n, key=b"k%d" % n)
    await takedown(broker, "dlq", "replay", "--topic", topics.DISPATCH_DLQ, "--all")

    again = await takedown(broker, "dlq", "replay", "--topic", topics.DISPATCH_DLQ, "--all")
    assert "replayed 0 dead letter(s)" in again.stdout
    assert await record_count(broker, topics.REFERRALS_SUBMITTED) == 3
    assert [x["replayed"] for x in await listed(broker, topics.DISPATCH_DLQ)] == [True] * 3

    await dead_letter(broker, topics.DISPATCH_DLQ, topics.REFERRALS_SUBMITTED, b"late", key=b"k9")
    late = await takedown(broker, "dlq", "replay", "--topic", topics.DISPATCH_DLQ, "--all")
    assert "replayed 1 dead letter(s)" in late.stdout
    assert await record_count(broker, topics.REFERRALS_SUBMITTED) == 4


async def test_replay_of_one_offset_sends_just_that_record_and_leaves_the_rest_to_replay(broker):
    for n in range(3):  # one key: one partition, offsets 0, 1, 2
        await dead_letter(broker, topics.OUTCOMES_DLQ, topics.REFERRALS_SUBMITTED, b"v%d" % n, key=b"same")
    second = (await listed(broker, topics.OUTCOMES_DLQ))[1]

    result = await takedown(broker, "dlq", "replay", "--topic", topics.OUTCOMES_DLQ,
                            "--offset", str(second["offset"]), "--partition", str(second["partition"]))

    assert "replaying one record by hand" in result.stdout
    assert [r.value for r in await records_on(broker, topics.REFERRALS_SUBMITTED, 1)] == [b"v1"]
    assert await record_count(broker, topics.REFERRALS_SUBMITTED) == 1
    assert [x["replayed"] for x in await listed(broker, topics.OUTCOMES_DLQ)] == [False] * 3


async def test_replay_of_an_offset_already_replayed_says_so_and_sends_it_again(broker):
    await dead_letter(broker, topics.OUTCOMES_DLQ, topics.REFERRALS_SUBMITTED, b"v", key=b"k")
    await takedown(broker, "dlq", "replay", "--topic", topics.OUTCOMES_DLQ, "--all")
    (only,) = await listed(broker, topics.OUTCOMES_DLQ)

    result = await takedown(broker, "dlq", "replay", "--topic", topics.OUTCOMES_DLQ,
                            "--offset", str(only["offset"]), "--partition", str(only["partition"]))

    assert "was already replayed; replaying it again as asked" in result.stdout
    assert await record_count(broker, topics.REFERRALS_SUBMITTED) == 2


async def test_replay_of_an_offset_with_no_record_fails_and_sends_nothing(broker):
    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "dlq", "replay", "--topic", topics.OUTCOMES_DLQ, "--offset", "5", "--partition", "0", "--bootstrap", broker])

    assert result.exit_code == 1 and "no record at outcomes.dlq/0/5" in result.stderr


async def test_a_dry_run_sends_nothing_and_replays_nothing(broker):
    await dead_letter(broker, topics.REFERRALS_INBOUND_DLQ, topics.REFERRALS_INBOUND, b"{}")

    result = await takedown(broker, "dlq", "replay", "--topic", topics.REFERRALS_INBOUND_DLQ, "--all", "--dry-run")

    assert "would replay referrals.inbound.dlq/" in result.stdout and "-> referrals.inbound" in result.stdout
    assert await record_count(broker, topics.REFERRALS_INBOUND) == 0
    assert [x["replayed"] for x in await listed(broker, topics.REFERRALS_INBOUND_DLQ)] == [False]


async def test_a_report_that_failed_waiting_on_a_retry_topic_goes_back_to_its_lane_with_fresh_attempts(broker):
    await dead_letter(broker, topics.DELIVERY_DLQ, topics.retry_lane("facebook"), b"{}", reason="gave up",
                      **{"x-takedown-attempt": "6", "x-takedown-not-before": "1.000"})

    await takedown(broker, "dlq", "replay", "--topic", topics.DELIVERY_DLQ, "--all")

    (record,) = await records_on(broker, FACEBOOK, 1)
    assert headers_of(record)["x-takedown-attempt"] == "1"
    assert await record_count(broker, topics.retry_lane("facebook")) == 0


async def test_replay_stops_before_a_dead_letter_whose_topic_is_missing_and_keeps_it_for_later(broker):
    await dead_letter(broker, topics.DELIVERY_DLQ, topics.lane("tiktok"), b"{}")  # lane not created here

    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "dlq", "replay", "--topic", topics.DELIVERY_DLQ, "--all", "--bootstrap", broker])

    assert result.exit_code == 1 and "goes to dispatch.tiktok, which does not exist" in result.stderr
    assert [x["replayed"] for x in await listed(broker, topics.DELIVERY_DLQ)] == [False]


async def test_the_async_core_returns_what_it_replayed(broker):
    await dead_letter(broker, topics.REFERRALS_INBOUND_DLQ, topics.REFERRALS_INBOUND, b"{}", key=b"k")

    sent = await replay(broker, topics.REFERRALS_INBOUND_DLQ)

    assert [(x.key, x.topic) for x in sent] == [(b"k", topics.REFERRALS_INBOUND_DLQ)]
    assert [replayed for _, replayed in await list_dead_letters(broker)] == [True]


# --- lag ------------------------------------------------------------------------------------------


async def test_lag_counts_dead_letters_not_replayed_yet_and_records_no_consumer_has_read(broker):
    for n in range(2):
        await dead_letter(broker, topics.DELIVERY_DLQ, FACEBOOK, b"%d" % n, key=b"k%d" % n)

    def total(output: str) -> int:
        return sum(int(line.split()[-1]) for line in output.splitlines() if " total " in line)

    before = await takedown(broker, "lag", "--group", "takedown-dlq-replay")
    await takedown(broker, "dlq", "replay", "--topic", topics.DELIVERY_DLQ, "--all")
    after = await takedown(broker, "lag", "--group", "takedown-dlq-replay")

    assert total(before.stdout) == 2 and total(after.stdout) == 0
    assert "takedown-dlq-replay" in after.stdout and topics.DELIVERY_DLQ in after.stdout
    behind = [json.loads(line) for line in (await takedown(broker, "lag", "--behind", "--json")).stdout.splitlines()]
    assert {(row["group"], row["topic"]) for row in behind} == {("takedown-dispatcher-facebook", FACEBOOK)}
    assert sum(row["lag"] for row in behind) == 2  # the replayed reports, waiting for a dispatcher
