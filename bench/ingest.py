"""Outcomes ingest: lifecycle events per second from Kafka into the hash-chained audit trail and the
referral states, against two references measured in the same run on the same schema.

BENCH_INGEST_EVENTS (60,000) events (a third each submitted, dispatched, decided) are published
first; then, each into a fresh database migrated by the outcomes migrations:
- COPY: the same audit rows (numbered and chained beforehand) and final states by asyncpg COPY in
  one transaction: the limit of writing these rows here;
- naive: BENCH_NAIVE_EVENTS (2,000) of them consumed one at a time, each recorded and committed in
  its own session, its offset committed after it (what a tutorial would write);
- the service: the outcomes service as its own process (Stack.spawn), timed from its first
  recorded event to the last; py-spy samples it meanwhile (BENCH_PROFILE_S, 0: not at all).
Run: make bench, or python -m bench.ingest.
"""

import asyncio
import time

import asyncpg

from bench import profile
from bench.common import Run, Target, env_float, env_int
from bench.ingest_refs import copy_reference, lifecycles, naive_reference, publish
from bench.procs import Monitor
from bench.stack import running_stack, settings
from bench.trail import connect_args
from services.outcomes.app import MIGRATIONS
from services.outcomes.db import SCHEMA
from shared import db
from shared.embedded import wait_until


async def fresh_database(database_url: str, name: str) -> str:
    """A new database with the outcomes schema; its URL."""
    conn = await asyncpg.connect(**connect_args(database_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = database_url.replace(f"/{connect_args(database_url)['database']}?", f"/{name}?")
    await db.migrate(url, MIGRATIONS, SCHEMA)
    return url


async def service_ingest(stack, url: str, count: int, profile_s: float) -> dict:
    """Start the outcomes service on url and time it through the `count` events waiting on Kafka."""
    conn = await asyncpg.connect(**connect_args(url))
    try:
        stack.spawn("outcomes", DATABASE_URL=url, SCHEDULER_ENABLED="false")
        await asyncio.to_thread(wait_until, lambda: stack.healthy("outcomes"), 90, "outcomes to start")
        position, first, started = 0, 0, None
        profiling = None
        deadline = time.monotonic() + 600
        while position < count and time.monotonic() < deadline:
            position = await conn.fetchval("SELECT position FROM outcomes.audit_head")
            if position and started is None:
                started, first, began_at = time.perf_counter(), position, time.time()
                if profile_s:
                    profiling = asyncio.create_task(asyncio.to_thread(
                        profile.record, {"outcomes": stack.children["outcomes"].pid}, profile_s, "ingest"))
            await asyncio.sleep(0.02)
        if started is None:
            raise RuntimeError("the outcomes service recorded nothing in 600 s: see its log")
        seconds, ended_at = time.perf_counter() - started, time.time()
        profiles = await profiling if profiling else {}
    finally:
        await conn.close()
    done = position - first
    return {"events": done, "seconds": round(seconds, 2), "events_per_s": round(done / seconds),
            "complete": position >= count, "profile": profiles.get("outcomes"), "window_at": (began_at, ended_at)}


async def measure(stack, monitor: Monitor) -> dict:
    count, naive_count = env_int("BENCH_INGEST_EVENTS", 60_000), env_int("BENCH_NAIVE_EVENTS", 2000)
    bootstrap, url = stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["DATABASE_URL"]
    events = lifecycles(count)
    await publish(bootstrap, events)
    copy = await copy_reference(connect_args(await fresh_database(url, "ingest_copy")), events)
    print(f"COPY: {copy['events_per_s']:,} events/s")
    naive = await naive_reference(bootstrap, await fresh_database(url, "ingest_naive"), naive_count)
    print(f"naive: {naive['events_per_s']:,} events/s")
    service = await service_ingest(stack, await fresh_database(url, "ingest_service"), len(events),
                                   env_float("BENCH_PROFILE_S", 15))
    print(f"service: {service['events_per_s']:,} events/s")
    return {"copy": copy, "naive": naive, "service": service, "memory": monitor.memory(),
            "cpu_cores_while_the_service_ingests": monitor.cpu(*service.pop("window_at"))}


def main() -> None:
    run = Run("ingest")
    with running_stack(int(env_float("BENCH_INGEST_PARTITIONS", 3)), names=()) as stack:
        used = settings(stack)
        with Monitor(stack) as monitor:
            result = asyncio.run(measure(stack, monitor))
    rate = result["service"]["events_per_s"]
    result["ratios"] = {"of_copy": round(rate / result["copy"]["events_per_s"], 3),
                        "of_naive": round(rate / result["naive"]["events_per_s"], 1)}
    print(f"outcomes ingest: {rate:,} events/s = {result['ratios']['of_copy']:.1%} of COPY, "
          f"{result['ratios']['of_naive']:.1f}x the naive consumer")
    targets = [Target("outcomes ingest, share of the COPY rate", result["ratios"]["of_copy"], "x COPY", 0.5),
               Target("outcomes ingest, times the naive consumer", result["ratios"]["of_naive"], "x naive", 20)]
    run.finish({"settings": {**used, "events": env_int("BENCH_INGEST_EVENTS", 60_000),
                             "naive_events": env_int("BENCH_NAIVE_EVENTS", 2000), "batch": "the service's own"},
                "events_per_s": rate, **result}, targets)


if __name__ == "__main__":
    main()
