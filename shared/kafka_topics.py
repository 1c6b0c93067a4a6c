"""Topics as the broker holds them, and putting a lost topic back: its layout, partitions that hold
records they no longer serve, reading back what a broker acknowledged for a topic it does not
list, and creating or rebuilding a topic with those records published again. Used by
shared/kafka_watch.py after a broker lost what it held (its docstring says why each is needed).

aiokafka's consumer cannot read a topic the broker does not list without making the broker
create it (and hide the records), so read_unlisted fetches with the client's raw FetchRequest.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

from shared.kafka import create_topics
from shared.settings import BaseServiceSettings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_MS = 5000
FETCH_BYTES = 1024 * 1024  # per partition and fetch, reading back records
FETCH_WAIT_MS = 10
IDLE_FETCHES = 5  # fetches that bring nothing before a read back stops
REBUILD_ROUNDS = 3  # a topic written to between its deletion and its creation is damaged again


async def topic_layout(admin: AIOKafkaAdminClient) -> tuple[str | None, dict[str, int]]:
    """The broker's cluster id and its topics' partition counts, from requests that name no topic
    (a request naming one makes Tansu, or a Kafka with auto-creation on, create it)."""
    cluster = await admin.describe_cluster()
    topics = await admin.describe_topics()
    return cluster.get("cluster_id"), {t["topic"]: len(t["partitions"]) for t in topics if t["error_code"] == 0}


async def damaged_partitions(bootstrap: str, layout: dict[str, int], timeout_s: float = 5) -> dict[str, set[int]]:
    """Partitions that hold more than they serve: Tansu created their topic over records it had
    acknowledged before the topic existed. ListOffsets answers from the stored batches; a fetch
    reports the high watermark, which the creation reset. On any broker, a partition that kept its
    log has a high watermark at least as high as any end offset read before it."""
    tps = [TopicPartition(t, p) for t, n in layout.items() for p in range(n)]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=50, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100, max_records=1)
        damaged: dict[str, set[int]] = {}
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater < ends[tp]:
                damaged.setdefault(tp.topic, set()).add(tp.partition)
        return damaged
    finally:
        await consumer.stop()


async def rebuild_topic(admin: AIOKafkaAdminClient, settings: BaseServiceSettings, topic: str, partitions: int,
                        damaged: set[int], earlier: list | None = None) -> tuple[int, int]:
    """Delete topic and create it again as configured, publishing again the records read back before
    it existed (earlier, see read_unlisted) and every record its undamaged partitions hold:
    (records published again, records lost with the damaged partitions).

    A record published between the read and the deletion is lost; consumers that had read the
    records published again read them twice (every consumer here is idempotent)."""
    earlier = earlier or []
    kept, unserved = await read_partitions(settings.kafka_bootstrap_servers, topic, partitions)
    read_before = {(r.partition, r.offset, r.key, r.value) for r in earlier}  # some are read both ways
    kept = [r for r in kept if (r.partition, r.offset, r.key, r.value) not in read_before]
    await recreate_topic(admin, settings, topic)
    republished = await republish(settings, topic, [*earlier, *kept])
    lost = max(0, unserved - len(earlier))
    (log.error if lost else log.warning)(
        "rebuilt topic %s: %s records published again, %s lost with partitions %s", topic, republished, lost,
        sorted(damaged) or "none")
    return republished, lost


async def recreate_topic(admin: AIOKafkaAdminClient, settings: BaseServiceSettings, topic: str,
                         timeout_s: float = 10) -> None:
    """Delete topic (and every record and committed offset it has) and create it again as configured.

    Apache Kafka deletes in the background: the creation is tried again until it is done. If the
    topic is still there after timeout_s, a client's metadata request had the broker create it."""
    await admin.delete_topics([topic])
    deadline = time.monotonic() + timeout_s
    while not await create_topics(admin, settings, [topic]):
        if time.monotonic() > deadline:
            if topic in (await topic_layout(admin))[1]:
                log.warning("topic %s was created again by the broker, not as configured", topic)
                return
            raise TimeoutError(f"{topic} could not be created again within {timeout_s}s of its deletion")
        await asyncio.sleep(0.2)


async def republish(settings: BaseServiceSettings, topic: str, records: list) -> int:
    """Publish records again (key, value, headers and timestamp; partitioned by key, as any producer
    with the topic's metadata would); how many."""
    if not records:
        return 0
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5,
                                enable_idempotence=settings.kafka_enable_idempotence)
    await producer.start()
    try:
        sent = [await producer.send(topic, r.value, key=r.key, headers=list(r.headers or ()), timestamp_ms=r.timestamp)
                for r in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(records)


@dataclass(frozen=True)
class Unlisted:
    """A record Tansu acknowledged for a topic it did not have."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple
    timestamp: int


async def read_unlisted(bootstrap: str, topic: str, partitions: int, timeout_s: float = 10) -> list[Unlisted]:
    """Records Tansu acknowledged for a topic it does not have (producers publish with the metadata
    they cached before it restarted), from its first partitions. Read with Fetch requests naming
    the topic: a consumer would ask for its metadata first, and that creates it and hides them.
    Empty on a broker that refuses such fetches (Apache Kafka: UnknownTopicOrPartition)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await client.bootstrap()
    try:
        nodes = [b.nodeId for b in client.cluster.brokers()]
        if len(nodes) != 1:
            return []  # a cluster of brokers is not Tansu's memory engine, and leaders would be unknown
        found: list[Unlisted] = []
        positions = dict.fromkeys(range(partitions), 0)
        deadline = time.monotonic() + timeout_s
        while positions and time.monotonic() < deadline:
            # Tansu answers a fetch that may not wait (max_wait 0) with nothing at all.
            request = FetchRequest(FETCH_WAIT_MS, 1, FETCH_BYTES * len(positions), 0,
                                   [(topic, [(p, at, FETCH_BYTES) for p, at in positions.items()])])
            response = await client.send(nodes[0], request)
            before = dict(positions)
            for _, answers in response.topics:
                for partition, error_code, _highwater, *rest in answers:
                    if partition not in positions or error_code != 0:
                        continue
                    records = MemoryRecords(bytes(rest[-1] or b""))
                    while records.has_next():
                        batch = records.next_batch()
                        if not batch.is_control_batch:
                            found += [Unlisted(partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp)
                                      for r in batch if r.offset >= before[partition]]
                        positions[partition] = max(positions[partition], batch.next_offset)
            positions = {p: at for p, at in positions.items() if at > before[p]}  # the rest has nothing more
        if found:
            log.warning("read back %s records Tansu acknowledged for %s, which it does not have", len(found), topic)
        return found
    finally:
        await client.close()


async def read_partitions(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30) -> tuple[list, int]:
    """Every record the topic's partitions serve now, in partition order; and how many more they
    hold than they serve, roughly (what Tansu stored before the topic existed, see damaged_partitions).

    Read up to the high watermark of the first fetch: Tansu's ListOffsets answers the last batch's
    first offset plus one, short of the end when a batch holds several records."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=50, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await consumer.start()
    try:
        consumer.assign(tps)
        stored = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records: dict[TopicPartition, list] = {tp: [] for tp in tps}
        ends: dict[TopicPartition, int] = {}
        deadline, idle = time.monotonic() + timeout_s, 0
        while len(ends) < len(tps) or [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} could not be read back within {timeout_s}s")
            if idle >= IDLE_FETCHES:
                break  # a partition Tansu damaged can have its high watermark above what it serves
            fetched = await consumer.getmany(timeout_ms=100)
            for tp, batch in fetched.items():
                records[tp].extend(batch)
            idle = 0 if fetched else idle + 1
            ends.update({tp: consumer.highwater(tp) for tp in tps if tp not in ends and consumer.highwater(tp) is not None})
        ends = {tp: ends.get(tp, 0) for tp in tps}
        unserved = sum(max(0, stored[tp] - ends[tp]) for tp in tps)
        return [r for tp in tps for r in records[tp] if r.offset < ends[tp]], unserved
    finally:
        await consumer.stop()
