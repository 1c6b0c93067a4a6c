"""Scale-out: end-to-end throughput with one dispatcher process, then with two (the second joins the
first's consumer groups, so each lane's partitions are shared between them), everything else as
in bench.e2e (same load, same window of referrals not yet decided), for BENCH_SCALE_SECONDS (30)
after BENCH_WARMUP_S (10), on BENCH_SCALE_PARTITIONS (6) partitions; no profiles, no stage timers.
The platforms' callbacks still reach the first dispatcher only (DISPATCHER_CALLBACK_BASE_URL).
Run: make bench, or python -m bench.scale.
"""

import asyncio

from bench.common import Run, env_float, env_int, env_ints
from bench.e2e import measure
from bench.perreferral import OUR_SERVICES, ratio
from bench.stack import running_stack, settings

KEPT = ("partitions", "window_seconds", "decided_per_s", "by_path_decided_per_s", "stages_recorded_per_s",
        "generator_per_s", "decided_per_s_every_5s", "consumer_lag", "cpu_cores", "cpu_ms_per_referral", "memory")


def one(dispatchers: int, partitions: int, seconds: float, warmup: float) -> dict:
    print(f"scale: {dispatchers} dispatcher process(es), {partitions} partitions")
    with running_stack(partitions, dispatchers=dispatchers) as stack:
        used = settings(stack)
        result = asyncio.run(measure(stack, partitions, seconds, warmup, 0, label=f"scale-{dispatchers}"))
    result = {"dispatchers": dispatchers, **{k: result[k] for k in KEPT}, "settings": used}
    print(f"  {result['decided_per_s']:,} referrals/s decided; CPU cores {result['cpu_cores']}; "
          f"CPU ms per referral, {OUR_SERVICES}: {result['cpu_ms_per_referral'][OUR_SERVICES]}")
    return result


def main() -> None:
    run = Run("scale")
    partitions, seconds = env_int("BENCH_SCALE_PARTITIONS", 6), env_float("BENCH_SCALE_SECONDS", 30)
    warmup = env_float("BENCH_WARMUP_S", 10)
    runs = [one(n, partitions, seconds, warmup) for n in env_ints("BENCH_SCALE_DISPATCHERS", "1,2")]
    used = runs[-1].pop("settings")
    for r in runs:
        r.pop("settings", None)
    speedup = ratio(runs[-1]["decided_per_s"], runs[0]["decided_per_s"]) if len(runs) > 1 else None
    print(f"scale: {runs[-1]['dispatchers']} dispatchers give {speedup} times the rate of {runs[0]['dispatchers']}")
    run.finish({"settings": {**used, "TOPIC_PARTITIONS": partitions, "seconds": seconds, "warmup_s": warmup},
                "runs": runs, "speedup": speedup}, [])


if __name__ == "__main__":
    main()
