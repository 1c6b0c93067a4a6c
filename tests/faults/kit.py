"""More of the fault suite's harness: what the faults beyond crashes need to look at and to do.

Reading the stack while a fault is on (the audit trail's head, a group's committed offsets, a
topic's records, the sandbox's counters) and changing a consumer group's membership.
"""

import asyncio
import time

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.supervisor import Stack
from shared.embedded import free_port
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
    """How many records a topic holds (0 if it does not exist)."""
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
        if self.stack.children[instance].poll() is not None:
            raise RuntimeError(f"{instance} exited with {self.stack.children[instance].returncode}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports[instance]}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class Clock:
    """Seconds since it was made: how far into a fault we are."""

    def __init__(self):
        self.started = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.started

    async def sleep_until(self, seconds: float) -> None:
        """Let the fault last until `seconds` after it began (its duration, not a synchronisation)."""
        await asyncio.sleep(max(0.0, seconds - self()))
