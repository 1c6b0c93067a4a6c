"""Intake alone: referrals per second and intake's CPU per referral, over the batch API and over
signed records on referrals.inbound, each counted until every referral is stored, published and
confirmed (its outbox row gone).

Only intake runs (with the embedded broker and database): the bench stands in for its readers,
consuming referrals.submitted and sending a receipt for each batch as the dispatcher and outcomes
do, so intake's whole share of a referral is measured (validate, store, relay, confirm, delete)
and no other service's work shares the 2 cores. BENCH_INTAKE_REFERRALS (20,000) per path;
batches of BENCH_INTAKE_BATCH (500), BENCH_INTAKE_IN_FLIGHT (4) at once. CPU is utime + stime of
intake's process from /proc. Run: python -m bench.intake_cpu.
"""

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import env_int
from bench.procs import TICKS, cpu_ticks
from bench.profile import py_spy
from bench.records import PLATFORM_URLS
from bench.stack import running_stack
from bench.trail import connect_args
from shared import topics
from shared.auth.records import signed_headers
from shared.receipts import IDS_PER_RECORD

READERS = topics.readers_of(topics.REFERRALS_SUBMITTED)


def item(run: str, path: str, n: int) -> dict:
    key = f"{run}-{path}{n}"
    url = tuple(PLATFORM_URLS.values())[n % len(PLATFORM_URLS)].format(key=key, n=10**9 + n)
    return {"url": url, "category": "people_smuggling", "idempotency_key": key, "case_reference": f"BENCH-{run}"}


async def readers(bootstrap: str, stop: asyncio.Event) -> None:
    """Read referrals.submitted and confirm each batch as every reader of the topic."""
    consumer = AIOKafkaConsumer(topics.REFERRALS_SUBMITTED, bootstrap_servers=bootstrap, group_id="bench-readers",
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            ids = [dict(r.headers)["ce_id"].decode() for records in batches.values() for r in records]
            for start in range(0, len(ids), IDS_PER_RECORD):
                for by in READERS:
                    body = json.dumps({"by": by, "events": ids[start:start + IDS_PER_RECORD]}).encode()
                    await producer.send(topics.RECEIPTS, body, key=by.encode())
    finally:
        await consumer.stop()
        await producer.stop()


async def settled(conn: asyncpg.Connection, run: str, count: int, deadline_s: float = 300) -> None:
    """Until count referrals of this run are stored and the outbox is empty."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        stored = await conn.fetchval("SELECT count(*) FROM intake.referrals WHERE idempotency_key LIKE $1", run + "-%")
        if stored >= count and not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM intake.outbox)"):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{count} referrals of {run} not stored and confirmed in {deadline_s} s")


async def over_http(base: str, token: str, run: str, count: int, batch: int, in_flight: int) -> None:
    slots = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        async def post(start: int) -> None:
            async with slots:
                body = {"referrals": [item(run, "h", n) for n in range(start, min(start + batch, count))]}
                response = await client.post("/v1/referrals/batch", json=body)
                if response.status_code != 202 or response.json()["invalid"]:
                    raise RuntimeError(f"batch answered {response.status_code}: {response.text[:300]}")

        await asyncio.gather(*(post(start) for start in range(0, count, batch)))


async def over_kafka(bootstrap: str, secret: str, run: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for n in range(count):
            value = json.dumps(item(run, "k", n)).encode()
            headers = [(k, v.encode()) for k, v in signed_headers("NCA", secret, value).items()]
            await producer.send(topics.REFERRALS_INBOUND, value, key=str(n).encode(), headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def measure_path(stack, conn, path: str, count: int) -> dict:
    """Send count referrals one way; referrals/s and intake's CPU ms per referral until all are confirmed."""
    pid, run, identity = stack.children["intake"].pid, uuid.uuid4().hex[:8], stack.credentials["agencies"]["NCA"]
    profiling = _profile(pid, path)
    ticks, started = cpu_ticks(pid), time.perf_counter()
    if path == "http":
        await over_http(stack.url("intake"), identity["token"], run, count, env_int("BENCH_INTAKE_BATCH", 500),
                        env_int("BENCH_INTAKE_IN_FLIGHT", 4))
    else:
        await over_kafka(stack.env["KAFKA_BOOTSTRAP_SERVERS"], identity["signing_secret"], run, count)
    await settled(conn, run, count)
    seconds, used_s = time.perf_counter() - started, (cpu_ticks(pid) - ticks) / TICKS
    if profiling:
        profiling.send_signal(signal.SIGINT)
        profiling.wait()
    return {"path": path, "referrals": count, "seconds": round(seconds, 2), "referrals_per_s": round(count / seconds),
            "intake_cpu_ms_per_referral": round(1000 * used_s / count, 3), "intake_cores": round(used_s / seconds, 2)}


def _profile(pid: int, path: str) -> subprocess.Popen | None:
    """py-spy sampling intake while this path runs, its collapsed stacks written to
    $BENCH_INTAKE_PROFILE/intake-<path>.txt (when that is set)."""
    folder = os.environ.get("BENCH_INTAKE_PROFILE")
    if not folder or not (binary := py_spy()):
        return None
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                             "--output", os.path.join(folder, f"intake-{path}.txt"), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def idle_cores(pid: int, seconds: float = 3.0) -> float:
    ticks = cpu_ticks(pid)
    await asyncio.sleep(seconds)
    return round((cpu_ticks(pid) - ticks) / TICKS / seconds, 3)


async def measure(stack) -> list[dict]:
    count = env_int("BENCH_INTAKE_REFERRALS", 20_000)
    conn = await asyncpg.connect(**connect_args(stack.env["DATABASE_URL"]))
    stop = asyncio.Event()
    reading = asyncio.create_task(readers(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stop))
    try:
        await measure_path(stack, conn, "http", min(count, 2000))  # warm-up: joins, prepared statements
        await measure_path(stack, conn, "kafka", min(count, 2000))
        print(f"intake idle: {await idle_cores(stack.children['intake'].pid):.3f} cores")
        results = []
        for path in ("http", "kafka"):
            results.append(result := await measure_path(stack, conn, path, count))
            print(f"{path:>5}: {result['referrals_per_s']:>6,} referrals/s, intake "
                  f"{result['intake_cpu_ms_per_referral']:.3f} ms CPU per referral ({result['intake_cores']} cores)")
        return results
    finally:
        stop.set()
        await reading
        await conn.close()


def main() -> None:
    with running_stack(env_int("BENCH_INTAKE_PARTITIONS", 3), names=("intake",),
                       BACKPRESSURE_MAX_BACKLOG="10000000") as stack:
        asyncio.run(measure(stack))


if __name__ == "__main__":
    main()
