"""Soak: SOAK_RATE (1,000) referrals/s for SOAK_SECONDS (600), half over the batch API and half
onto referrals.inbound, a few every 10 ms. Every SOAK_SAMPLE_S (10) it notes each process's
resident memory, every consumer group's lag and the referrals sent but not yet decided; at the end
it waits for them to drain and reads, minute by minute, how long referrals took from intake to
the decision recorded. The first SOAK_WARMUP_S (60) are left out of the verdicts.

Flat memory: a service's RSS in the last third of the run is at most 10% above the first third.
No growing lag: the lag's least-squares slope is at most 10 records/s.
Run: make soak (SOAK_SECONDS=60 to try it).
"""

import asyncio
import statistics
import time
import uuid

from bench.common import Run, Target, env_float
from bench.load import Agency
from bench.procs import Monitor
from bench.stack import running_stack, settings
from bench.trail import DECIDED, Trail
from services.ops import REPLAY_GROUP, measure_lag, our_groups

SERVICES = ("intake", "dispatcher", "outcomes")
LAG_SLOPE_MAX = 10  # records/s
GROUPS = {g: t for g, t in our_groups().items() if g != REPLAY_GROUP}  # dead letters not replayed are no lag
PER_MINUTE = """
    SELECT minute, count(*) AS referrals, percentile_cont(0.5) WITHIN GROUP (ORDER BY took) AS p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY took) AS p99
    FROM (SELECT floor((extract(epoch FROM s.recorded_at) - $2) / 60)::int AS minute,
                 extract(epoch FROM c.recorded_at - (s.data->>'submitted_at')::timestamptz) AS took
          FROM outcomes.audit_events s
          JOIN outcomes.audit_events c ON c.referral_id = s.referral_id AND c.event_type = 'takedown.decided'
          WHERE s.event_type = 'referral.submitted' AND s.data->>'case_reference' = $1) AS decided
    GROUP BY 1 ORDER BY 1"""


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points, per unit of x."""
    if len(points) < 2:
        return 0.0
    mx, my = statistics.fmean(x for x, _ in points), statistics.fmean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def thirds(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean y of the first and of the last third of the points."""
    third = max(len(points) // 3, 1)
    return statistics.fmean(y for _, y in points[:third]), statistics.fmean(y for _, y in points[-third:])


async def sample_forever(stack, trail: Trail, agency: Agency, every: float, began: float, samples: list) -> None:
    while True:
        progress = await trail.poll()
        lags: dict[str, int] = {}
        for row in await measure_lag(stack.env["KAFKA_BOOTSTRAP_SERVERS"], GROUPS):
            lags[row.group] = lags.get(row.group, 0) + row.lag
        sent = sum(c.sent for c in agency.paths.values())
        samples.append({"t": round(time.time() - began, 1), "sent": sent, "decided": progress.by_type[DECIDED],
                        "not_yet_decided": sent - progress.by_type[DECIDED],
                        "lag": {g: n for g, n in lags.items() if n}, "lag_total": sum(lags.values())})
        await asyncio.sleep(every)


async def measure(stack, monitor: Monitor) -> dict:
    rate, seconds = env_float("SOAK_RATE", 1000), env_float("SOAK_SECONDS", 600)
    every, warmup = env_float("SOAK_SAMPLE_S", 10), min(env_float("SOAK_WARMUP_S", 60), seconds / 4)
    trail = await Trail.open(stack.env["DATABASE_URL"])
    agency = Agency(stack.url("intake"), stack.env["KAFKA_BOOTSTRAP_SERVERS"], uuid.uuid4().hex[:8],
                    stack.credentials["agencies"]["NCA"], http_in_flight=32)
    samples: list[dict] = []
    began = time.time()
    async with agency:
        sampler = asyncio.create_task(sample_forever(stack, trail, agency, every, began, samples))
        try:
            offered = await agency.refer({"http": rate / 2, "kafka": rate / 2}, seconds,
                                         ticks={"http": 0.01, "kafka": 0.01})
            ended = time.time()
            drain_deadline = time.monotonic() + 120
            while samples[-1]["not_yet_decided"] > 0 and time.monotonic() < drain_deadline:
                await asyncio.sleep(every / 2)
            drained_in = round(time.time() - ended, 1)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
    per_minute = [dict(r) for r in await trail.conn.fetch(PER_MINUTE, agency.case_reference, began)]
    await trail.close()
    steady = [s for s in samples if warmup <= s["t"] <= ended - began]
    decided = [(s["t"], s["decided"]) for s in steady]
    return {"offered": offered, "drained_in_s": drained_in, "left_undecided": samples[-1]["not_yet_decided"],
            "decided_per_s_steady": round(slope(decided), 1),
            "lag_slope_per_s": round(slope([(s["t"], s["lag_total"]) for s in steady]), 2),
            "not_yet_decided_slope_per_s": round(slope([(s["t"], s["not_yet_decided"]) for s in steady]), 2),
            "lag_thirds": thirds([(s["t"], s["lag_total"]) for s in steady]) if steady else None,
            "samples": samples, "latency_by_minute_s": [{k: (round(v, 3) if isinstance(v, float) else v)
                                                         for k, v in r.items()} for r in per_minute],
            "memory": monitor.memory(), "rss_series": monitor.rss_series()[::max(int(every), 1)],
            "cpu_cores": monitor.cpu(began + warmup, ended), "window": [warmup, round(ended - began, 1)]}


def memory_growth(result: dict) -> dict[str, dict]:
    """Each process's RSS in the first and last third of the steady part, and the growth in %."""
    start, end = result["window"]
    series = [s for s in result["rss_series"] if start <= s["t"] <= end]
    growth = {}
    for name in series[0] if series else ():
        if name == "t":
            continue
        first, last = thirds([(s["t"], s.get(name, 0)) for s in series])
        growth[name] = {"first_third_mb": round(first, 1), "last_third_mb": round(last, 1),
                        "growth_pct": round(100 * (last - first) / first, 1) if first else None,
                        "slope_mb_per_min": round(60 * slope([(s["t"], s.get(name, 0)) for s in series]), 2)}
    return growth


def main() -> None:
    run = Run("soak")
    rate = env_float("SOAK_RATE", 1000)
    with running_stack(int(env_float("SOAK_PARTITIONS", 3))) as stack:
        used = settings(stack)
        with Monitor(stack) as monitor:
            result = asyncio.run(measure(stack, monitor))
    result["memory_growth"] = memory_growth(result)
    print(f"soak at {rate:.0f}/s for {env_float('SOAK_SECONDS', 600):.0f} s: "
          f"decided {result['decided_per_s_steady']}/s steady; lag slope {result['lag_slope_per_s']}/s; "
          f"drained in {result['drained_in_s']} s")
    for name, g in result["memory_growth"].items():
        print(f"  {name:<26} {g['first_third_mb']:>7} -> {g['last_third_mb']:>7} MB ({g['growth_pct']}%, "
              f"{g['slope_mb_per_min']} MB/min)")
    for minute in result["latency_by_minute_s"]:
        print(f"  minute {minute['minute']}: {minute['referrals']} referrals, intake to decision recorded "
              f"p50 {minute['p50']} s, p99 {minute['p99']} s")
    targets = [Target("decisions recorded per second (steady part)", result["decided_per_s_steady"], "referrals/s",
                      0.99 * rate),
               Target("consumer lag growth (least-squares slope)", result["lag_slope_per_s"], "records/s",
                      LAG_SLOPE_MAX, "at_most")]
    targets += [Target(f"RSS growth, first to last third, {name}", result["memory_growth"].get(name, {}).get(
        "growth_pct"), "%", 10, "at_most") for name in SERVICES]
    run.finish({"settings": {**used, "rate_per_s": rate, "seconds": env_float("SOAK_SECONDS", 600),
                             "sample_every_s": env_float("SOAK_SAMPLE_S", 10),
                             "warmup_s": result["window"][0]}, **result}, targets)


if __name__ == "__main__":
    main()
