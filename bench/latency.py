"""Latency at a steady BENCH_LATENCY_RATE (500 referrals/s): p50, p95, p99 from submission to
dispatched and to recorded, for BENCH_SECONDS (60) after BENCH_WARMUP_S (10).

Half the referrals go over the batch API and half onto referrals.inbound, a few every 10 ms on
each path. What each figure measures (one clock: everything runs on this machine):
- submitted: the agency's clock just before the batch is POSTed / the record handed to the producer;
- dispatched: the referral.dispatched event's time (the dispatcher takes it once the platform has
  answered the report with a ticket and the ticket is stored, just before publishing the event);
- recorded: recorded_at of the platform's decision (takedown.decided) in outcomes.audit_events, the
  start of the transaction that wrote it (Postgres now()).
The sandbox decides at once (SANDBOX_DECISION_DELAY_S=0), so no decision delay is in any figure;
what remains is how the decision travels back: in the answer (tiktok), by signed callback
(facebook, x), or at the next poll (youtube, every POLL_INTERVAL_S=1 s): reported apart.
"""

import asyncio
import time
import uuid

from bench.common import Run, Target, env_float, percentiles
from bench.load import Agency
from bench.probe import RoundTrips
from bench.procs import Monitor
from bench.stages import read as stage_times
from bench.stages import show as show_stages
from bench.stack import running_stack, settings
from bench.trail import Trail

TARGET_P99_MS = 250
MODES = {"tiktok": "decision in the answer", "facebook": "decision by callback", "x": "decision by callback",
         "youtube": "decision polled"}


def ms(values: list[float]) -> dict:
    return {k: (round(v * 1000, 1) if isinstance(v, float) else v) for k, v in percentiles(values).items()}


def latencies(rows, sent_at: dict[str, float], start: float, end: float, read_at: float) -> dict:
    """Percentiles (ms) of each span over the referrals sent between start and end. One not there yet
    when the trail was read counts as taking until then: the percentiles are then lower bounds."""
    spans: dict[str, list[float]] = {}
    by_key = {row["key"]: row for row in rows}
    missing = {"recorded_as_submitted": 0, "dispatched": 0, "decided": 0}
    quarters: list[list[float]] = [[], [], [], []]  # to dispatched, by when it was sent: a queue grows

    def add(name: str, sent: float, at: float | None, missed: str | None = None) -> float:
        if at is None and missed:
            missing[missed] += 1
        took = (read_at if at is None else at) - sent
        spans.setdefault(name, []).append(took)
        return took

    for key, sent in sent_at.items():
        if not start <= sent < end:
            continue
        row = by_key.get(key) or {}
        add("accepted_in_the_trail", sent, row.get("submitted_recorded"), "recorded_as_submitted")
        took = add("to_dispatched", sent, row.get("dispatched_at"), "dispatched")
        quarters[min(int(4 * (sent - start) / (end - start)), 3)].append(took)
        add("to_recorded", sent, row.get("decided_recorded"), "decided")
        if row:
            add(f"to_dispatched_via_{row['via']}", sent, row["dispatched_at"])
            add(f"to_recorded: {MODES[row['platform']]}", sent, row["decided_recorded"])
            if row["dispatched_at"] is not None:
                add("intake_to_dispatched", row["submitted_at"], row["dispatched_at"])
    return {"spans_ms": {name: ms(values) for name, values in sorted(spans.items())}, "missing": missing,
            "lower_bounds": any(missing.values()), "to_dispatched_p50_ms_by_quarter": [ms(q)["p50"] for q in quarters]}


async def wait_for_decisions(trail: Trail, agency: Agency, expected: int, timeout: float) -> list:
    """The run's timings once every referral is decided, or at the timeout; sooner when, at the rate
    decisions are being recorded, the rest would not be in before it (a queue that is not draining)."""
    deadline, seen = time.monotonic() + timeout, []
    while True:
        rows = await trail.timings(agency.case_reference)
        decided = sum(r["decided_recorded"] is not None for r in rows)
        seen.append((time.monotonic(), decided))
        if decided >= expected or time.monotonic() > deadline:
            return rows
        if len(seen) > 5:
            (t0, d0), (t1, d1) = seen[-6], seen[-1]
            if (expected - decided) / max((d1 - d0) / (t1 - t0), 1e-9) > deadline - t1:
                return rows
        await asyncio.sleep(1)


async def measure(stack, rate: float, seconds: float) -> dict:
    warmup = env_float("BENCH_WARMUP_S", 10)
    agency = Agency(stack.url("intake"), stack.env["KAFKA_BOOTSTRAP_SERVERS"], uuid.uuid4().hex[:8],
                    stack.credentials["agencies"]["NCA"], keep_times=True,
                    http_in_flight=32)
    trail = await Trail.open(stack.env["DATABASE_URL"])
    probe = RoundTrips(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["DATABASE_URL"])
    with Monitor(stack) as monitor:
        async with agency, probe:
            began = time.time()
            offered = await agency.refer({"http": rate / 2, "kafka": rate / 2}, warmup + seconds,
                                         ticks={"http": 0.01, "kafka": 0.01})
        start, end = began + warmup, began + warmup + seconds
        rows = await wait_for_decisions(trail, agency, len(agency.sent_at), timeout=60)
        read_at = time.time()
        memory = monitor.memory()
    await trail.close()
    in_window = [t for t in agency.sent_at.values() if start <= t < end]
    acks = {p: ms([s for at, s in c.acks if start <= at < end]) for p, c in agency.paths.items()}
    return {"rate": rate, "seconds": seconds, "window_at": (start, end), "round_trips": probe.summary(start, end),
            "generator_per_s_in_window": round(len(in_window) / seconds, 1),
            "referrals_in_window": len(in_window), "acknowledgement_ms": acks, "offered": offered,
            **latencies(rows, agency.sent_at, start, end, read_at), "cpu_cores": monitor.cpu(start, end),
            "memory": memory}


def show(result: dict) -> None:
    print(f"latency at {result['rate']:.0f}/s (generator achieved {result['generator_per_s_in_window']}/s), ms:")
    for name, p in result["spans_ms"].items():
        print(f"  {name:<44} p50 {p['p50']:>8} p95 {p['p95']:>8} p99 {p['p99']:>8} (n={p['count']})")
    print(f"  acknowledgement (HTTP 202 / broker ack), ms: {result['acknowledgement_ms']}")
    print(f"  round trips under load (p50 / p99 ms): "
          f"{ {k: (v['p50'], v['p99']) for k, v in result['round_trips'].items()} }")
    print(f"  p50 to dispatched by quarter of the window (growing: a queue builds up): "
          f"{result['to_dispatched_p50_ms_by_quarter']}")
    show_stages(result["stages"])
    print(f"  not there when read, counted as taking until then (lower bounds): {result['missing']}")
    print(f"  CPU cores: {result['cpu_cores']}")


def main() -> None:
    """At the target's 500/s, then at BENCH_LATENCY_LOW_RATE (50/s), a rate this machine sustains,
    for what the pipeline itself takes when no queue builds up."""
    run = Run("latency")
    runs = []
    for rate, seconds in ((env_float("BENCH_LATENCY_RATE", 500), env_float("BENCH_SECONDS", 60)),
                          (env_float("BENCH_LATENCY_LOW_RATE", 50), env_float("BENCH_LATENCY_LOW_SECONDS", 30))):
        with running_stack(int(env_float("BENCH_LATENCY_PARTITIONS", 3)), timers=True) as stack:
            used = settings(stack)
            result = asyncio.run(measure(stack, rate, seconds))
            window = result.pop("window_at")
            result["stages"] = {name: stage_times(stack.data_dir, name, *window)
                                for name in ("intake", "dispatcher", "outcomes")}
        show(result)
        runs.append(result)
    targets = []
    for result in runs:
        bound = " (a lower bound: not all were dispatched)" if result["missing"]["dispatched"] else ""
        targets.append(Target(f"p99 submission to dispatched at {result['rate']:.0f}/s{bound}",
                              result["spans_ms"].get("to_dispatched", {}).get("p99"), "ms", TARGET_P99_MS, "at_most"))
    run.finish({"settings": {**used, "rates_per_s": [r["rate"] for r in runs], "seconds": [r["seconds"] for r in runs],
                             "warmup_s": env_float("BENCH_WARMUP_S", 10), "every_s": 0.01},
                "runs": runs}, targets)


if __name__ == "__main__":
    main()
