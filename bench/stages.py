"""Where a record's time goes inside each service, waits included: the stage timers of
bench/hooks/stagetimers.py, read back and summed over a window.

A CPU profile shows what keeps a core busy; a stage that handles one record at a time can be slow
while its process is mostly idle, waiting on round trips and on a busy event loop. These timers
show that: each stage's calls per second, mean and percentiles, and how many run at once on
average (total time / window), next to the lag of the process's event loop.
"""

import json
import math
import os
from pathlib import Path

from bench.hooks.stagetimers import FLOOR, RATIO

HOOKS = Path(__file__).parent / "hooks"
ACK = "faststream.kafka.message:KafkaAckableMessage.ack"
TIMERS = {
    "intake": ["services.intake.service:IntakeService.submit", "services.intake.db:accept",
               "shared.relay:OutboxRelay.relay_once", "shared.outbox:Outbox.confirm", ACK],
    "dispatcher": ["services.dispatcher.service:DispatchService.route",
                   "services.dispatcher.service:DispatchService.take",
                   "services.dispatcher.outbound:Outbound._send",
                   "services.dispatcher.service:DispatchService.attempt", "services.dispatcher.lanes:Lane.deliver",
                   "services.dispatcher.adapters.http:HttpAdapter.request",
                   "services.dispatcher.service:DispatchService.conclude",
                   "services.dispatcher.service:DispatchService._store",
                   "shared.relay:OutboxRelay.relay_once", "shared.outbox:Outbox.confirm",
                   "services.dispatcher.decisions:Decisions.accept_callback",
                   "services.dispatcher.decisions:Decisions._accept_together",
                   "services.dispatcher.decisions:Decisions.poll_due", ACK],
    "outcomes": ["services.outcomes.service:OutcomesService.record", "services.outcomes.audit:append",
                 "services.outcomes.db:history_events", "services.outcomes.db:save_states"],
}


def timer_env(name: str, directory: Path) -> dict[str, str]:
    """The extra environment that makes service `name` time its stages into a file in directory."""
    if name not in TIMERS or os.environ.get("BENCH_TIMERS", "1") == "0":
        return {}
    path = os.pathsep.join(filter(None, [str(HOOKS), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path, "BENCH_TIMERS": ",".join(TIMERS[name]),
            "BENCH_TIMERS_FILE": str(directory / f"timers-{name}.jsonl")}


def show(stages: dict[str, dict[str, dict]]) -> None:
    """Print each service's stages, the longest in total first."""
    for name, found in stages.items():
        for stage, s in found.items():
            print(f"  {name:<10} {stage:<42} {s['per_s']:>8}/s mean {s['mean_ms']:>8} ms p99 {s['p99_ms']:>8} ms "
                  f"in flight {s['in_flight']}")


def _upper(index: int) -> float:
    return FLOOR * RATIO ** index


def read(directory: Path, name: str, start: float, end: float) -> dict[str, dict]:
    """Per stage over [start, end): calls/s, mean, p50/p95/p99 (ms, from the histogram: upper bucket
    bounds, within 25%), and how many were under way at once on average."""
    path = directory / f"timers-{name}.jsonl"
    if not path.exists():
        return {}
    merged: dict[str, list] = {}
    for line in path.read_text().splitlines():
        second = json.loads(line)
        if not start <= second["t"] < end:
            continue
        for stage, (count, total, buckets) in second["stages"].items():
            entry = merged.setdefault(stage, [0, 0.0, {}])
            entry[0] += count
            entry[1] += total
            for index, n in buckets.items():
                entry[2][int(index)] = entry[2].get(int(index), 0) + n
    seconds = max(end - start, 1e-9)
    return {stage: {"per_s": round(count / seconds, 1), "mean_ms": round(1000 * total / count, 2),
                    **{f"p{p}_ms": round(1000 * _percentile(buckets, count, p), 2) for p in (50, 95, 99)},
                    "in_flight": round(total / seconds, 2)}
            for stage, (count, total, buckets) in sorted(merged.items(), key=lambda kv: -kv[1][1])}


def _percentile(buckets: dict[int, int], count: int, p: int) -> float:
    rank, seen = math.ceil(p / 100 * count), 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return _upper(index)
    return 0.0
