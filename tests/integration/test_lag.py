"""shared.lag against a real broker: every record a group has still to read is counted."""

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.lag import LagReader
from tests.support import eventually

TOPIC = "dispatch.facebook"


async def publish_in_one_batch(bootstrap: str, count: int, partition: int = 0) -> None:
    """count records sent together: the broker stores them as one batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(TOPIC, b"%d" % n, partition=partition) for n in range(count)])
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, 0)])
        await consumer.commit({TopicPartition(TOPIC, 0): offset})
    finally:
        await consumer.stop()


async def create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 2, 1)])
    finally:
        await admin.close()


async def test_lag_counts_every_record_of_a_batch_and_follows_commits_and_new_records(kafka):
    await create_topic(kafka)
    await publish_in_one_batch(kafka, 100)
    groups = {"lane": (TOPIC,), "not-created-yet": ("dispatch.nowhere",)}

    async with LagReader(kafka) as reader:
        first = await reader.read(groups, wait_s=5)
        await commit(kafka, "lane", 40)
        await publish_in_one_batch(kafka, 30, partition=1)

        async def caught_up():
            rows = await reader.read(groups)
            return rows if sum(r.lag for r in rows) == 60 + 30 else None

        later = await eventually(caught_up, 10, "the commit and the new records in the lag")

    assert {(r.partition, r.committed, r.end, r.lag) for r in first} == {(0, None, 100, 100), (1, None, 0, 0)}
    assert {(r.partition, r.committed, r.end, r.lag) for r in later} == {(0, 40, 100, 60), (1, None, 30, 30)}
    assert {r.group for r in later} == {"lane"}
