"""After the broker restarts empty, a service's consumers read every record published since, none skipped.

The embedded Tansu keeps everything in memory: killed and started again on its port, it has no
topics, no committed offsets and no groups. shared/kafka_watch.py puts a service's side right.
"""

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from faststream.kafka import KafkaMessage

from shared import topics
from shared.embedded import EmbeddedKafka, free_port
from shared.kafka import consumer_options, ensure_topics, make_broker, start_broker
from shared.kafka_topics import damaged_partitions, read_partitions, recreate_topic, topic_layout
from shared.kafka_watch import BrokerWatch, watch_broker
from shared.settings import BaseServiceSettings
from tests.conftest import FAST_GROUPS
from tests.support import eventually

TOPIC = "restart.events"
OUTAGE_S = 3  # how long the broker stays dead: longer than clients keep asking it for metadata


@pytest.fixture
def tansu(tmp_path):
    """A broker of this test's own, which it kills."""
    broker = EmbeddedKafka(port=free_port(), log_file=tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


def settings_for(tansu: EmbeddedKafka) -> BaseServiceSettings:
    return BaseServiceSettings(kafka_bootstrap_servers=tansu.bootstrap_servers, kafka_watch_s=0.25, **FAST_GROUPS)


@contextlib.asynccontextmanager
async def consuming(settings: BaseServiceSettings, watch: bool = True):
    """A service's Kafka side: a consumer group reading TOPIC in batches, committing after each, with
    its broker watch (started as a composition root does) unless watch is False; yields
    (broker, values read in order)."""
    broker = make_broker(settings, "restart-test")
    seen: list[str] = []

    @broker.subscriber(TOPIC, **consumer_options(settings, "restart-test"), batch=True, max_records=100)
    async def handle(msg: KafkaMessage) -> None:
        seen.extend(record.value.decode() for record in msg.raw_message)

    await ensure_topics(settings, [TOPIC])
    await start_broker(broker)
    task = asyncio.create_task(watch_broker(settings, (TOPIC,), broker)) if watch else None
    try:
        yield broker, seen
    finally:
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await broker.stop()


async def publish(broker, prefix: str, count: int) -> list[str]:
    """count records on TOPIC through the service's own producer (whose metadata predates a restart)."""
    values = [f"{prefix}-{i}" for i in range(count)]
    await asyncio.gather(*(broker.publish(v.encode(), topic=TOPIC, key=v.encode()) for v in values))
    return values


async def read_all(seen: list[str], values: list[str], timeout: float = 45) -> None:
    async def done():
        return set(values) <= set(seen)

    await eventually(done, timeout, f"{len(values)} records read", interval=0.1)


async def layout(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return (await topic_layout(admin))[1]
    finally:
        await admin.close()


async def test_a_restarted_embedded_broker_is_empty_on_the_same_port_with_a_new_cluster_id(tansu):
    settings = settings_for(tansu)
    await ensure_topics(settings, [TOPIC])
    before = tansu.cluster_id

    assert await asyncio.to_thread(tansu.restart) == settings.kafka_bootstrap_servers
    assert tansu.cluster_id != before
    assert await layout(tansu.bootstrap_servers) == {}


@pytest.mark.parametrize("outage_s", [0, OUTAGE_S])
async def test_a_consumer_group_reads_every_record_published_after_the_broker_came_back_empty(tansu, outage_s):
    settings = settings_for(tansu)
    async with consuming(settings) as (broker, seen):
        await read_all(seen, await publish(broker, "before", 30))

        tansu.kill()
        await asyncio.sleep(outage_s)  # the fault's length, not a synchronisation
        await asyncio.to_thread(tansu.start)
        # Published at once, with metadata cached before the crash: Tansu acknowledges them for a
        # topic it does not have. Then more, once the topic is back.
        right_away = await publish(broker, "right-away", 60)
        await eventually(lambda: _has(tansu, TOPIC), 20, f"{TOPIC} created again")
        later = await publish(broker, "later", 60)

        await read_all(seen, right_away + later)

    if outage_s:  # else a client may have had the broker create it first, with 4
        assert (await layout(tansu.bootstrap_servers))[TOPIC] == settings.topic_partitions


async def test_a_consumer_past_the_end_of_a_log_created_again_is_moved_to_its_beginning(tansu):
    """Tansu answers a fetch past the end of a log with nothing (Apache Kafka: OffsetOutOfRange), so a
    consumer left there reads only what is appended past its old position."""
    settings = settings_for(tansu)
    async with consuming(settings, watch=False) as (broker, seen):
        await read_all(seen, await publish(broker, "before", 60))
        admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap_servers)
        await admin.start()
        watch = BrokerWatch(settings, (TOPIC,), broker)
        try:
            await watch.look()
            await recreate_topic(admin, settings, TOPIC)  # empty, committed offsets gone, group still there

            async def moved():  # once the consumer has fetched from the new log (as the watch's loop would)
                look = await watch.look()
                return look.past_end and look

            look = await eventually(moved, 20, "a consumer past the end of its log")
            after = await publish(broker, "after", 30)  # fewer than the consumer's positions
            await read_all(seen, after)
        finally:
            await watch.close()
            await admin.close()

    assert not look.restarted and not look.rebuilt


async def test_topics_nobody_names_come_back_as_configured(tansu):
    """A topic no client asks about (a dead-letter topic, or referrals.inbound before an agency writes)
    is not created by the broker: the watch creates it with its partitions and configs."""
    settings = settings_for(tansu)
    owned = (topics.REFERRALS_INBOUND, topics.REFERRALS_INBOUND_DLQ)
    await ensure_topics(settings, owned)
    broker = make_broker(settings, "restart-test")
    await broker.connect()
    watch = BrokerWatch(settings, owned, broker)
    try:
        await watch.look()
        await asyncio.to_thread(tansu.restart)

        look = await watch.look()
        configs = await _configs(tansu.bootstrap_servers, topics.REFERRALS_INBOUND)
    finally:
        await watch.close()
        await broker.stop()

    assert look.new_broker and sorted(look.created) == sorted(owned)
    assert {t: n for t, n in (await layout(tansu.bootstrap_servers)).items() if t in owned} == \
        dict.fromkeys(owned, settings.topic_partitions)
    assert configs["message.timestamp.type"] == "LogAppendTime"


async def test_a_topic_created_over_records_it_did_not_have_is_rebuilt_with_them(tansu):
    """Records Tansu acknowledged for a topic it did not have are hidden when a client's metadata
    request creates the topic, and the next records to those partitions are refused (UnknownError).
    The owner's watch finds the damage, reads back what it can and creates the topic again."""
    settings = settings_for(tansu)
    await ensure_topics(settings, [TOPIC])
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap_servers, acks="all", request_timeout_ms=5000)
    await producer.start()
    broker = make_broker(settings, "restart-test")
    await broker.connect()
    watch = BrokerWatch(settings, (TOPIC,), broker)
    try:
        await watch.look()
        tansu.kill()
        await asyncio.sleep(OUTAGE_S)  # the fault's length, not a synchronisation
        await asyncio.to_thread(tansu.start)
        await producer.send_and_wait(TOPIC, b"hidden", partition=0)  # with its cached metadata
        admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap_servers)
        await admin.start()
        await admin.describe_topics([TOPIC])  # names it: Tansu creates it, over the record
        await admin.close()
        await producer.send_and_wait(TOPIC, b"served", partition=1)
        damaged = await damaged_partitions(tansu.bootstrap_servers, {TOPIC: 4})

        look = await watch.look()
        await producer.send_and_wait(TOPIC, b"after", partition=0)  # refused (UnknownError) before
        held, unserved = await read_partitions(tansu.bootstrap_servers, TOPIC, settings.topic_partitions)
    finally:
        await watch.close()
        await broker.stop()
        await producer.stop()

    assert damaged == {TOPIC: {0}}
    assert look.rebuilt == [TOPIC] and look.republished == 1 and look.lost == 1
    assert sorted(r.value for r in held) == [b"after", b"served"] and unserved == 0


async def _has(tansu: EmbeddedKafka, topic: str) -> bool:
    return topic in await layout(tansu.bootstrap_servers)


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [resource] = described.resources
    return {entry[0]: entry[1] for entry in resource[4]}
