"""What a handler doing one thing at a time pays for each round trip, measured while the load runs,
once a second from this process (otherwise idle): a publish acknowledged by the broker (acks=all,
linger 2 ms, as the services' producers), an offset commit, a `SELECT 1` (what pool_pre_ping adds
to every checkout) and a one-row transaction committed to disk (fsync on, as the services')."""

import asyncio
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import percentiles
from bench.trail import connect_args

TOPIC = "bench.probe"
KINDS = ("publish_ack", "offset_commit", "select_1", "one_row_commit")


class RoundTrips:
    def __init__(self, bootstrap: str, database_url: str):
        self.bootstrap, self.database_url = bootstrap, database_url
        self.timings: list[tuple[float, str, float]] = []  # (at, kind, seconds)
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "RoundTrips":
        self._tasks = [asyncio.create_task(self._kafka()), asyncio.create_task(self._postgres())]
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _note(self, kind: str, began: float) -> float:
        now = time.perf_counter()
        self.timings.append((time.time(), kind, now - began))
        return now

    async def _kafka(self, every: float = 1.0) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=2)
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=self.bootstrap, group_id="bench-probe",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    session_timeout_ms=3000, heartbeat_interval_ms=500)
        await producer.start()
        await consumer.start()
        try:
            while True:
                began = time.perf_counter()
                await producer.send_and_wait(TOPIC, b"probe")
                self._note("publish_ack", began)
                record = await consumer.getone()
                began = time.perf_counter()
                await consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})
                self._note("offset_commit", began)
                await asyncio.sleep(every)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _postgres(self, every: float = 1.0) -> None:
        conn = await asyncpg.connect(**connect_args(self.database_url))
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS public.bench_probe (at timestamptz)")
            while True:
                began = time.perf_counter()
                await conn.fetchval("SELECT 1")
                began = self._note("select_1", began)
                async with conn.transaction():
                    await conn.execute("INSERT INTO public.bench_probe VALUES (now())")
                self._note("one_row_commit", began)
                await asyncio.sleep(every)
        finally:
            await conn.close()

    def summary(self, start: float, end: float) -> dict:
        """Percentiles (ms) of each round trip timed between start and end."""
        found = {}
        for kind in KINDS:
            values = [s for at, k, s in self.timings if k == kind and start <= at <= end]
            found[f"{kind}_ms"] = {k: round(v * 1000, 2) if isinstance(v, float) else v
                                   for k, v in percentiles(values).items()}
        return found
