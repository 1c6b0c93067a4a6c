"""More of the fault suite's harness: what the faults beyond crashes need to look at and to do.

Reading the stack while a fault is on (the audit trail's head, a group's committed offsets, a
topic's records, the sandbox's counters), changing a consumer group's membership, and losing the
broker (killed, back empty).
"""

import asyncio
import time
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.supervisor import Stack
from shared import topics
from shared.embedded import free_port
from shared.kafka_topics import topic_layout
from tests.support import TopicReader, eventually, headers_of

PORTS = {"outcomes": "OUTCOMES_PORT", "dispatcher": "DISPATCHER_PORT"}


async def audit_head(stack: Stack) -> int:
    """How many events the audit trail holds now (its head's position)."""
    engine = create_async_engine(stack.env["DATABASE_URL"])
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT position FROM outcomes.audit_head"))).scalar() or 0
    finally:
        await engine.dispose()


async def trail_grows(stack: Stack, by: int, since: int | None = None, timeout: float = 120) -> int:
    """Wait until the audit trail holds `by` more events than `since` (by default: now); its new length."""
    start = await audit_head(stack) if since is None else since

    async def grown() -> int:
        now = await audit_head(stack)
        return now if now >= start + by else 0

    return await eventually(grown, timeout, f"{by} more events in the audit trail (from {start})", interval=0.2)


async def committed(bootstrap: str, group: str, *names: str) -> dict[tuple[str, int], int | None]:
    """A consumer group's committed offsets on the named topics, by (topic, partition).

    Read by a consumer of the group that subscribes to nothing, so it never joins the group (the
    admin client's OffsetFetch cannot decode Tansu's answer)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        return {(name, p): await consumer.committed(TopicPartition(name, p))
                for name in names for p in sorted(consumer.partitions_for_topic(name) or ())}
    finally:
        await consumer.stop()


async def records(bootstrap: str, topic: str, at_least: int, timeout: float = 120) -> list:
    """Every record of a topic, once there are at least `at_least`."""
    async with TopicReader(bootstrap, topic) as reader:
        return await reader.wait_for(lambda rs: len(rs) >= at_least, timeout, f"{at_least} record(s)")


async def topic_size(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (0 if it does not exist). On Tansu, only whether it holds any:
    its ListOffsets answers the last batch's first offset plus one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return 0
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def dead_letters(found: list) -> list[dict]:
    """Dead letters as their headers, with the record's value under "value"."""
    return [{**headers_of(r), "value": r.value} for r in found]


async def sandbox_stats(stack: Stack) -> dict:
    async with httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=30) as client:
        return (await client.get("/stats")).json()


class Members:
    """Extra members of the outcomes and dispatcher consumer groups, started and stopped at will."""

    def __init__(self, stack: Stack):
        self.stack, self.ports = stack, {}
        self.exits: dict[str, int | str] = {}

    async def join(self, service: str, instance: str) -> None:
        """Start one more instance of service (its own HTTP port) and wait until it serves, which
        it does only once its consumers have joined their groups."""
        self.ports[instance] = port = free_port()
        self.stack.spawn(service, instance=instance, **{PORTS[service]: str(port)})
        await eventually(lambda: asyncio.to_thread(self._healthy, instance), 120, f"{instance} to join")

    async def leave(self, instance: str, kill: bool = False) -> None:
        """Stop an instance: SIGTERM (it shuts down and leaves its groups cleanly; uvicorn then
        re-raises the signal, so it exits -15) or SIGKILL (the group finds out when its session
        times out). exits notes how each ended: "clean", or its exit code."""
        child = self.stack.children[instance]
        child.kill() if kill else child.terminate()
        code = await asyncio.to_thread(child.wait, 60)
        log = (self.stack.data_dir / "logs" / f"{instance}.log").read_text(errors="replace")
        self.exits[instance] = "clean" if code == -15 and "Application shutdown complete" in log else code

    def _healthy(self, instance: str) -> bool:
        return self.stack.serves(instance, f"http://127.0.0.1:{self.ports[instance]}")


class Clock:
    """Seconds since it was made: how far into a fault we are."""

    def __init__(self):
        self.started = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.started

    async def sleep_until(self, seconds: float) -> None:
        """Let the fault last until `seconds` after it began (its duration, not a synchronisation)."""
        await asyncio.sleep(max(0.0, seconds - self()))


@dataclass
class BrokerLoss:
    """What kill_and_restart_kafka did: the broker's cluster ids before and after, and when it was back."""

    cluster_before: str | None
    cluster_after: str | None
    down_s: float
    back_at: float  # time.monotonic() when the new broker listened


async def kill_and_restart_kafka(stack: Stack, down_s: float = 0.0) -> BrokerLoss:
    """SIGKILL the stack's embedded broker, leave it dead for down_s (the fault's length), and start
    it again on the same port: empty (no topics, offsets or groups), with a new cluster id.

    Clients go on asking a dead broker for metadata for a second or two: past that (down_s >= 2),
    nothing they do creates the topics again, and what producers publish meanwhile is acknowledged
    for topics the new broker does not have. The services' broker watches (shared/kafka_watch.py,
    every KAFKA_WATCH_S) put that right; services_see_broker_back waits for it."""
    before = stack.kafka.cluster_id if stack.kafka else None
    await asyncio.to_thread(stack.crash_broker)
    await asyncio.sleep(down_s)  # the fault's length, not a synchronisation
    await asyncio.to_thread(stack.restart_broker)
    return BrokerLoss(before, stack.kafka.cluster_id, down_s, time.monotonic())


def needed_topics(services: tuple[str, ...] = ("intake", "dispatcher", "outcomes")) -> set[str]:
    """Every topic the named services create at start."""
    return {t for name in services for t in topics.needed_by(name)}


async def broker_layout(stack: Stack) -> dict[str, int]:
    """The stack broker's topics and their partition counts, asked without naming any topic (which
    would have Tansu create it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    try:
        return (await topic_layout(admin))[1]
    finally:
        await admin.close()


async def services_see_broker_back(stack: Stack, names: set[str] | None = None, timeout: float = 60) -> dict[str, int]:
    """Wait until the broker has every named topic again (by default every topic the services need),
    and every service answers /health; the topics' partition counts. A topic some client had the
    broker create has its default count (Tansu: 4), not TOPIC_PARTITIONS."""
    wanted = needed_topics() if names is None else names

    async def back() -> dict[str, int] | None:
        found = await broker_layout(stack)
        return {t: found[t] for t in wanted} if wanted <= set(found) else None

    found = await eventually(back, timeout, f"{len(wanted)} topics on the new broker", interval=0.2)
    for name in stack.children:
        await eventually(lambda n=name: asyncio.to_thread(stack.healthy, n), timeout, f"{name} to answer")
    return found
