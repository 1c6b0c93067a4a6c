"""Overload: ten times the sustainable rate for BENCH_OVERLOAD_SECONDS (60), over the batch API.

The sustainable rate is end-to-end's best (bench/results/e2e.json, the run just before), else
BENCH_SUSTAINED_RATE (200); BENCH_OVERLOAD_FACTOR (10) times it is offered, or BENCH_OVERLOAD_RATE
if set. The agency honours 429: it waits the Retry-After and sends the same batch again with the
same idempotency keys (bench/load.py), and there is no window holding it back as in e2e. Measured:
- decided/s while overloaded (after its first BENCH_OVERLOAD_WARMUP_S, 10) as a share of
  end-to-end's best: the throughput kept (target at least 90%);
- the 429s intake gave, and what the agency achieved;
- nothing lost: once the load stops, every referral intake took (201/202, accepted or duplicate)
  must be decided; it waits up to BENCH_OVERLOAD_DRAIN_S (120) and counts those that are not.
Run: make bench (after bench.e2e), or python -m bench.overload.
"""

import asyncio
import time
import uuid

from bench.common import Run, Target, env_float, env_int, read_result
from bench.e2e import lag_by_group, rates_between
from bench.load import Agency
from bench.perreferral import cpu_ms_per_referral, ratio
from bench.procs import Monitor
from bench.stack import running_stack, settings
from bench.trail import DECIDED, Trail

KEPT_TARGET = 0.9


def sustained() -> tuple[float, int, str]:
    """(rate, partitions, where the rate comes from): end-to-end's best run, else the setting."""
    e2e = read_result("e2e")
    best = next((r for r in (e2e or {}).get("runs", []) if r["partitions"] == e2e.get("best")), None)
    if best and best["decided_per_s"]:
        return best["decided_per_s"], best["partitions"], f"bench.e2e of {e2e['started_at']}"
    return env_float("BENCH_SUSTAINED_RATE", 200), 6, "BENCH_SUSTAINED_RATE"


async def drain(trail: Trail, ids: set[str], seconds: float) -> dict:
    """Wait until every referral in ids is decided, or seconds; how many are not, and how long it took."""
    began, deadline = time.monotonic(), time.monotonic() + seconds
    while (decided := await trail.decided_among(ids)) < len(ids) and time.monotonic() < deadline:
        await asyncio.sleep(2)
    return {"taken": len(ids), "decided": decided, "missing": len(ids) - decided,
            "waited_s": round(time.monotonic() - began, 1), "deadline_s": seconds}


async def measure(stack, rate: float, seconds: float, warmup: float, drain_s: float) -> dict:
    trail = await Trail.open(stack.env["DATABASE_URL"])
    agency = Agency(stack.url("intake"), stack.env["KAFKA_BOOTSTRAP_SERVERS"], uuid.uuid4().hex[:8],
                    stack.credentials["agencies"]["NCA"], http_in_flight=env_int("BENCH_OVERLOAD_IN_FLIGHT", 16))
    series: list[dict] = []

    async def watch() -> None:
        while True:
            series.append((await trail.poll()).snapshot())
            await asyncio.sleep(0.5)

    with Monitor(stack) as monitor:
        watcher = asyncio.create_task(watch())
        try:
            async with agency:
                began = time.time()
                offered = await agency.refer({"http": rate}, seconds, ticks={"http": 0.05}, most=1000)
            lag = await lag_by_group(stack.env["KAFKA_BOOTSTRAP_SERVERS"])
            start, end = began + warmup, began + seconds
            lost = await drain(trail, agency.http_ids, drain_s)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await trail.close()
        cpu, memory = monitor.cpu(start, end), monitor.memory()
    first, last = min(series, key=lambda s: abs(s["at"] - start)), min(series, key=lambda s: abs(s["at"] - end))
    decided = round((last[DECIDED] - first[DECIDED]) / max(last["at"] - first["at"], 1e-9), 1)
    return {"offered_per_s": rate, "seconds": seconds, "warmup_s": warmup, "offered": offered,
            "decided_per_s": decided, "decided_per_s_every_5s": rates_between(series, start, end),
            "throttled_429": offered["http"]["throttled_429"], "consumer_lag_at_load_end": lag, "lost": lost,
            "cpu_cores": cpu, "cpu_ms_per_referral": cpu_ms_per_referral(cpu, decided), "memory": memory}


def main() -> None:
    run = Run("overload")
    base, partitions, source = sustained()
    rate = env_float("BENCH_OVERLOAD_RATE", 0) or env_float("BENCH_OVERLOAD_FACTOR", 10) * base
    seconds = env_float("BENCH_OVERLOAD_SECONDS", 60)
    warmup = min(env_float("BENCH_OVERLOAD_WARMUP_S", 10), seconds / 4)
    print(f"overload: {rate:,.0f} referrals/s offered over HTTP for {seconds:.0f} s "
          f"(sustainable {base:,.1f}/s, from {source}; {partitions} partitions)")
    with running_stack(partitions) as stack:
        used = settings(stack)
        result = asyncio.run(measure(stack, rate, seconds, warmup, env_float("BENCH_OVERLOAD_DRAIN_S", 120)))
    result.update(sustained_per_s=base, sustained_from=source, partitions=partitions,
                  kept_share=ratio(result["decided_per_s"], base))
    print(f"  decided {result['decided_per_s']:,}/s while overloaded = {result['kept_share']} of {base:,.1f}/s; "
          f"429s given {result['throttled_429']:,}; agency {result['offered']['http']}; "
          f"not decided {result['lost']['waited_s']} s after the load: {result['lost']['missing']:,}")
    targets = [Target("overload: decided/s kept, share of the end-to-end best", result["kept_share"], "x e2e",
                      KEPT_TARGET),
               Target(f"overload: referrals taken (201/202), not decided {result['lost']['deadline_s']:.0f} s after",
                      result["lost"]["missing"], "referrals", 0, "at_most")]
    run.finish({"settings": {**used, "TOPIC_PARTITIONS": partitions, "offered_per_s": rate, "seconds": seconds,
                             "warmup_s": warmup, "drain_s": result["lost"]["deadline_s"],
                             "http_in_flight": env_int("BENCH_OVERLOAD_IN_FLIGHT", 16)}, **result}, targets)


if __name__ == "__main__":
    main()
