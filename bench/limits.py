"""How far end-to-end throughput is from the limit: the broker's raw produce+consume rate for
records of a referral's size (bench/broker.py), and a naive one-record-at-a-time pipeline through
the same hops (bench/naive.py), both on the same embedded Tansu and Postgres as the stack, with
none of our services running. End-to-end (bench/results/e2e.json, the run just before) is shown
as a share of the first and a multiple of the second.

BENCH_BROKER_RECORDS (100,000) and BENCH_NAIVE_REFERRALS (2,000, at most BENCH_NAIVE_SECONDS, 120)
set their sizes; BENCH_LIMITS_PARTITIONS (6) the topics' partitions.
Run: make bench (after bench.e2e), or python -m bench.limits.
"""

import asyncio

from bench.broker import raw_rate
from bench.common import Run, env_float, env_int, read_result
from bench.naive import pipeline_rate
from bench.perreferral import ratio
from bench.procs import Monitor
from bench.stack import running_stack, settings


async def measure(stack, monitor: Monitor, partitions: int) -> dict:
    bootstrap, url = stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["DATABASE_URL"]
    broker = await raw_rate(bootstrap, partitions, env_int("BENCH_BROKER_RECORDS", 100_000))
    broker["cpu_cores"] = monitor.cpu(*broker.pop("window_at"))
    print(f"broker: {broker['records_per_s']:,} records/s produced and consumed ({broker['record_bytes']} B each)")
    naive = await pipeline_rate(bootstrap, url, partitions, env_int("BENCH_NAIVE_REFERRALS", 2000),
                                env_float("BENCH_NAIVE_SECONDS", 120))
    naive["cpu_cores"] = monitor.cpu(*naive.pop("window_at"))
    print(f"naive pipeline: {naive['referrals_per_s']:,} referrals/s through {len(naive['hops'])} hops")
    return {"broker": broker, "naive": naive}


def compared(result: dict, e2e: dict | None) -> dict:
    """End-to-end's best rate as a share of the broker's and as a multiple of the naive pipeline's."""
    best = next((r for r in (e2e or {}).get("runs", []) if r["partitions"] == e2e.get("best")), None)
    rate = best["decided_per_s"] if best else None
    return {"e2e_decided_per_s": rate, "e2e_started_at": (e2e or {}).get("started_at"),
            "e2e_of_broker": ratio(rate, result["broker"]["records_per_s"], 4),
            "e2e_times_naive": ratio(rate, result["naive"]["referrals_per_s"], 2)}


def main() -> None:
    run = Run("limits")
    partitions = env_int("BENCH_LIMITS_PARTITIONS", 6)
    with running_stack(partitions, names=()) as stack:
        used = settings(stack)
        with Monitor(stack) as monitor:
            result = asyncio.run(measure(stack, monitor, partitions))
    result["compared"] = compared(result, read_result("e2e"))
    print(f"end-to-end against them: {result['compared']}")
    run.finish({"settings": {**used, "TOPIC_PARTITIONS": partitions,
                             "broker_records": result["broker"]["records"],
                             "naive_referrals": result["naive"]["referrals"],
                             "producer": "acks=all, linger_ms=2, no idempotence (make_broker's)"}, **result}, [])


if __name__ == "__main__":
    main()
