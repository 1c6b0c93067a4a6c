"""A naive pipeline: what a tutorial would write, one record at a time through the same hops as ours.

Three consumers, like intake, the dispatcher and outcomes, each in its own consumer group and
each handling one record at a time: read it (getone), INSERT one row and commit in Postgres,
publish the next event and await the broker's ack, then commit the offset. The last one only
records. Same records (referral.submitted, bench/records.py), same broker (acks=all, linger 2 ms),
same database (asyncpg, a connection per consumer). No platform is called and nothing is validated,
signed or hash-chained: it moves records, so it is an upper bound of what a naive service does.
BENCH_NAIVE_REFERRALS referrals are put on its first topic beforehand; the rate is referrals
recorded by the last hop / the time from the start to its last one.
"""

import asyncio
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.broker import create_topic
from bench.records import submitted_record
from bench.trail import connect_args

HOPS = ("intake", "dispatch", "outcomes")


class Hop:
    """One consumer: from topic `source`, a row into `table`, then the record onto `sink` (if any)."""

    def __init__(self, name: str, source: str, sink: str | None, bootstrap: str, database_url: str):
        self.name, self.source, self.sink = name, source, sink
        self.bootstrap, self.database_url = bootstrap, database_url
        self.table, self.done, self.last_at = f"public.bench_naive_{name}", 0, 0.0
        self.conn: asyncpg.Connection | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect, make the table and join the group: before the clock starts."""
        self.conn = await asyncpg.connect(**connect_args(self.database_url))
        await self.conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key text, body bytea)")
        self.consumer = AIOKafkaConsumer(self.source, bootstrap_servers=self.bootstrap,
                                         group_id=f"{self.source}.naive", enable_auto_commit=False,
                                         auto_offset_reset="earliest", session_timeout_ms=3000,
                                         heartbeat_interval_ms=500)
        await self.consumer.start()
        while not self.consumer.assignment():
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.consumer:
            await self.consumer.stop()
        if self.conn:
            await self.conn.close()

    async def run(self, producer: AIOKafkaProducer, count: int) -> None:
        while self.done < count:
            record = await self.consumer.getone()
            async with self.conn.transaction():
                await self.conn.execute(f"INSERT INTO {self.table} VALUES ($1, $2)", record.key.decode(),
                                        record.value)
            if self.sink:
                await producer.send_and_wait(self.sink, record.value, key=record.key,
                                             headers=list(record.headers))
            await self.consumer.commit()
            self.done += 1
            self.last_at = time.perf_counter()


async def preload(producer: AIOKafkaProducer, topic: str, count: int) -> None:
    sent = []
    for n in range(count):
        key, value, headers = submitted_record(n, "naive")
        sent.append(await producer.send(topic, value, key=key, headers=headers))
    await asyncio.gather(*sent)


async def _run_all(hops: list[Hop], producer: AIOKafkaProducer, count: int, timeout: float) -> None:
    """Every hop at once until the last has recorded count, or timeout; a hop that fails fails the run."""
    tasks = [asyncio.create_task(hop.run(producer, count)) for hop in hops]
    done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


async def pipeline_rate(bootstrap: str, database_url: str, partitions: int, count: int, timeout: float) -> dict:
    """count referrals through the three hops; referrals/s recorded by the last one."""
    run = uuid.uuid4().hex[:8]
    topics = [f"bench.naive.{run}.{n}" for n in range(len(HOPS))]
    for topic in topics:
        await create_topic(bootstrap, topic, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, enable_idempotence=False)
    await producer.start()
    hops = [Hop(name, topics[i], topics[i + 1] if i + 1 < len(topics) else None, bootstrap, database_url)
            for i, name in enumerate(HOPS)]
    try:
        await preload(producer, topics[0], count)
        await asyncio.gather(*(hop.start() for hop in hops))
        began, started = time.time(), time.perf_counter()
        await _run_all(hops, producer, count, timeout)
    finally:
        await asyncio.gather(*(hop.stop() for hop in hops), return_exceptions=True)
        await producer.stop()
    last = hops[-1]
    seconds = (last.last_at or time.perf_counter()) - started
    return {"referrals": count, "recorded": last.done, "hops": list(HOPS), "seconds": round(seconds, 2),
            "referrals_per_s": round(last.done / seconds, 1) if seconds > 0 else None,
            "window_at": (began, began + seconds)}
