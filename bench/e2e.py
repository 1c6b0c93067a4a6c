"""End-to-end throughput: referrals per second from submission (batch HTTP and referrals.inbound)
to the platform's decision recorded in Postgres, sustained over BENCH_SECONDS (60).

The agency offers BENCH_E2E_RATE (6,000/s, above the 5,000/s aim; the target is 2,000/s), half over the batch API
(one batch every 100 ms) and half onto referrals.inbound (every 10 ms), but keeps each path's
referrals not yet decided under BENCH_E2E_WINDOW / 2: when the system cannot keep up, the agency
is held to what it sustains, with a bounded backlog, instead of piling up an ever-growing queue.
The figure is decisions recorded in the window / its length, after BENCH_WARMUP_S (10), with
each process's CPU per decided referral (target for ours together: 0.5 ms). Then
py-spy profiles every service for BENCH_PROFILE_S (15; 0: none) under the same load.
Repeated for each BENCH_PARTITIONS (3,6). Run: make bench, or python -m bench.e2e.
"""

import asyncio
import uuid

from bench import profile
from bench.common import Run, Target, env_float, env_int, env_ints
from bench.load import Agency
from bench.perreferral import OUR_SERVICES, OURS, cpu_ms_per_referral
from bench.probe import RoundTrips
from bench.procs import Monitor
from bench.stages import read as stage_times
from bench.stages import show as show_stages
from bench.stack import running_stack, settings
from bench.trail import DECIDED, DISPATCHED, SUBMITTED, Trail
from services.ops import REPLAY_GROUP, measure_lag

TARGET, AIM = 2000, 5000
CPU_TARGET_MS = 0.5  # our services' CPU per decided referral
SERVICES = ("intake", "dispatcher", "outcomes", "sandbox")


def rates_between(series: list[dict], start: float, end: float, step: float = 5.0) -> list[float]:
    """Decisions recorded per second in each `step` seconds of [start, end]."""
    rates, t = [], start
    while t + step <= end + 0.01:
        a = min(series, key=lambda s: abs(s["at"] - t))
        b = min(series, key=lambda s: abs(s["at"] - (t + step)))
        if b["at"] > a["at"]:
            rates.append(round((b[DECIDED] - a[DECIDED]) / (b["at"] - a["at"])))
        t += step
    return rates


async def lag_by_group(bootstrap: str) -> dict[str, int]:
    """Records each consumer group has still to read: the backlog sits before the slowest stage."""
    lags: dict[str, int] = {}
    for row in await measure_lag(bootstrap):
        if row.group != REPLAY_GROUP:
            lags[row.group] = lags.get(row.group, 0) + row.lag
    return {group: lag for group, lag in lags.items() if lag}


async def measure(stack, partitions: int, seconds: float, warmup: float, profile_s: float, label: str = "e2e") -> dict:
    """Offer the load for warmup + seconds + profile_s; the figures of the `seconds` window."""
    rate, window = env_float("BENCH_E2E_RATE", 6000), env_int("BENCH_E2E_WINDOW", 20_000)
    trail = await Trail.open(stack.env["DATABASE_URL"])
    agency = Agency(stack.url("intake"), stack.env["KAFKA_BOOTSTRAP_SERVERS"], uuid.uuid4().hex[:8],
                    stack.credentials["agencies"]["NCA"], http_in_flight=4)
    series: list[dict] = []

    def gate(path: str) -> int:
        return window // 2 - (agency.paths[path].sent - trail.progress.decided_by_path[path])

    async def watch() -> None:
        while True:
            progress = await trail.poll(agency.http_ids)
            series.append({**progress.snapshot(), **{f"sent_{p}": c.sent for p, c in agency.paths.items()}})
            await asyncio.sleep(0.5)

    probe = RoundTrips(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["DATABASE_URL"])
    with Monitor(stack) as monitor:
        async with agency, probe:
            watcher = asyncio.create_task(watch())
            load = asyncio.create_task(agency.refer({"http": rate / 2, "kafka": rate / 2}, warmup + seconds + profile_s,
                                                    ticks={"http": 0.1, "kafka": 0.01}, most=1000, gate=gate))
            try:
                await asyncio.sleep(warmup)
                first = series[-1]
                lag_before = await lag_by_group(stack.env["KAFKA_BOOTSTRAP_SERVERS"])
                await asyncio.sleep(seconds)
                last = series[-1]
                lag_after = await lag_by_group(stack.env["KAFKA_BOOTSTRAP_SERVERS"])
                profiles = await asyncio.to_thread(profile.record, {n: stack.children[n].pid for n in SERVICES},
                                                   profile_s, f"{label}-p{partitions}") if profile_s else {}
                offered = await load
            finally:  # interrupted too: stop sending before the agency closes its producer
                for task in (watcher, load):
                    task.cancel()
                await asyncio.gather(watcher, load, return_exceptions=True)
        memory = monitor.memory()
    await trail.close()
    span = last["at"] - first["at"]

    def per_s(key: str) -> float:
        return round((last[key] - first[key]) / span, 1)

    cpu = monitor.cpu(first["at"], last["at"])
    return {
        "partitions": partitions, "window_seconds": round(span, 1), "window_at": (first["at"], last["at"]),
        "decided_per_s": per_s(DECIDED),
        "by_path_decided_per_s": {"http": per_s("decided_http"), "kafka": per_s("decided_kafka")},
        "stages_recorded_per_s": {"submitted": per_s(SUBMITTED), "dispatched": per_s(DISPATCHED),
                                  "decided": per_s(DECIDED)},
        "generator_per_s": {"http": per_s("sent_http"), "kafka": per_s("sent_kafka")},
        "decided_per_s_every_5s": rates_between(series, first["at"], last["at"]),
        "backlog_at_end": {p: last[f"sent_{p}"] - last[f"decided_{p}"] for p in ("http", "kafka")},
        "consumer_lag": {"window_start": lag_before, "window_end": lag_after},
        "round_trips": probe.summary(first["at"], last["at"]), "offered": offered,
        "cpu_cores": cpu, "cpu_ms_per_referral": cpu_ms_per_referral(cpu, per_s(DECIDED)), "memory": memory,
        "profiles": profiles,
    }


def show(result: dict) -> None:
    by_path = result["by_path_decided_per_s"]
    print(f"e2e, {result['partitions']} partitions: {result['decided_per_s']:,.0f} referrals/s decided and recorded "
          f"(http {by_path['http']:,.0f}, kafka {by_path['kafka']:,.0f}); "
          f"stages {result['stages_recorded_per_s']}; every 5 s {result['decided_per_s_every_5s']}")
    print(f"  CPU cores used: {result['cpu_cores']}")
    print(f"  CPU ms per decided referral: {result['cpu_ms_per_referral']}")
    print(f"  round trips under load (p50 ms): "
          f"{ {k: v['p50'] for k, v in result['round_trips'].items()} }")
    show_stages(result.get("stages", {}))
    print(f"  consumer lag at the window's end (where the backlog waits): {result['consumer_lag']['window_end']}")


def targets(best: dict) -> list[Target]:
    return [Target(f"end-to-end referrals/s ({best['partitions']} partitions)", best["decided_per_s"],
                   "referrals/s", TARGET, aim=AIM),
            Target(f"CPU per decided referral, {' + '.join(OURS)}", best["cpu_ms_per_referral"][OUR_SERVICES],
                   "ms", CPU_TARGET_MS, "at_most")]


def main() -> None:
    run = Run("e2e")
    runs = []
    seconds, warmup, profile_s = (env_float("BENCH_SECONDS", 60), env_float("BENCH_WARMUP_S", 10),
                                  env_float("BENCH_PROFILE_S", 15))
    for partitions in env_ints("BENCH_PARTITIONS", "3,6"):
        print(f"e2e: starting the stack with {partitions} partitions per topic")
        with running_stack(partitions, timers=True) as stack:
            used = settings(stack)
            result = asyncio.run(measure(stack, partitions, seconds, warmup, profile_s))
            window = result.pop("window_at")
            result["stages"] = {name: stage_times(stack.data_dir, name, *window) for name in SERVICES}
        runs.append(result)
        show(result)
    best = max(runs, key=lambda r: r["decided_per_s"])
    run.finish({"settings": {**used, "TOPIC_PARTITIONS": "per run", "offered_per_s": env_float("BENCH_E2E_RATE", 6000),
                             "window": env_int("BENCH_E2E_WINDOW", 20_000), "warmup_s": warmup, "seconds": seconds,
                             "profile_s": profile_s, "http_batch_every_s": 0.1, "kafka_every_s": 0.01},
                "best": best["partitions"], "runs": runs}, targets(best))


if __name__ == "__main__":
    main()
