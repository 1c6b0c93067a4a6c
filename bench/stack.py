"""The whole stack for a benchmark: the project's Stack, on free ports and servers of its own, with
the platforms (the sandbox) out of the way: no rate limits, no decision delay, every report removed.

Its own servers and ports, the fault suite's fast settings (FAST, as tests/faults/harness.py sets
them) and the bench's platforms; everything set is recorded with the figures (settings()).
"""

import contextlib
import json
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.common import env_int
from bench.stages import timer_env
from services.supervisor import SERVICES, Stack
from shared.embedded import free_port, wait_until

# The platforms out of the way, as the README gives them to anyone (deploy/out-of-the-way/): our side's
# limits far above any rate reached here; the platforms answer in 1-3 ms, never throttle, decide at once.
# BENCH_MAX_IN_FLIGHT: reports under way at once per adapter.
OUT_OF_THE_WAY = Path(__file__).resolve().parent.parent / "deploy" / "out-of-the-way"
ADAPTERS = {slug: {**config, "max_in_flight": env_int("BENCH_MAX_IN_FLIGHT", config["max_in_flight"])}
            for slug, config in yaml.safe_load((OUT_OF_THE_WAY / "adapters.yaml").read_text()).items()}
PERSONAS = yaml.safe_load((OUT_OF_THE_WAY / "personas.yaml").read_text())
# Settings recorded with the figures (ports and paths are not).
SHOWN = ("TOPIC_PARTITIONS", "SANDBOX_POLICY", "SANDBOX_DECISION_DELAY_S", "POLL_INTERVAL_S", "POLL_TICK_S",
         "LANE_BATCH", "LOG_LEVEL", "SCHEDULER_ENABLED", "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_HEARTBEAT_INTERVAL_MS",
         "DELIVERY_BACKOFF_BASE_S")


# The fault suite's fast settings: quick polls, joins, retries and broker checks, no scheduler.
FAST = {"POLL_INTERVAL_S": "1", "POLL_TICK_S": "0.5", "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500", "DELIVERY_BACKOFF_BASE_S": "0.2", "DELIVERY_BACKOFF_CAP_S": "2",
        "BREAKER_RESET_S": "1", "BREAKER_MAX_RESET_S": "2", "SCHEDULER_ENABLED": "false", "KAFKA_WATCH_S": "0.5"}
PORTS = ("INTAKE_PORT", "DISPATCHER_PORT", "OUTCOMES_PORT", "SANDBOX_PORT", "SANDBOX_SMTP_PORT")


def bench_env(tmp: Path, partitions: int, **overrides: str) -> dict[str, str]:
    """The stack's environment: servers and ports of its own, fast settings, the bench's platforms, quiet logs."""
    adapters, personas = tmp / "bench-adapters.json", tmp / "bench-personas.json"  # JSON is YAML
    adapters.write_text(json.dumps(ADAPTERS))
    personas.write_text(json.dumps(PERSONAS))
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "SANDBOX_STATE_FILE")}
    ports = {name: str(free_port()) for name in PORTS}
    return {**env, **ports, **FAST,
            "SANDBOX_URL": f"http://127.0.0.1:{ports['SANDBOX_PORT']}",
            "DISPATCHER_CALLBACK_BASE_URL": f"http://127.0.0.1:{ports['DISPATCHER_PORT']}",
            "ADAPTERS_FILE": str(adapters), "SANDBOX_PERSONAS": str(personas), "SANDBOX_POLICY": "removed=1",
            "SANDBOX_DECISION_DELAY_S": "0", "TOPIC_PARTITIONS": str(partitions), "LOG_LEVEL": "WARNING",
            **overrides}


def settings(stack: Stack) -> dict:
    """What the stack ran with, for the result file."""
    shown = {key: stack.env[key] for key in SHOWN if key in stack.env}
    shown.setdefault("LANE_BATCH", "64 (default)")
    return {"env": shown, "adapters": ADAPTERS["meta"], "sandbox_personas": PERSONAS["default"],
            "kafka": "embedded Tansu (memory storage)", "postgres": "embedded PostgreSQL 18 (unix socket)"}


def more_dispatchers(stack: Stack, count: int) -> list[str]:
    """Start dispatcher-2 .. dispatcher-<count> (each its own HTTP port; they join the first one's
    consumer groups) and wait until each serves; their names."""
    ports = {f"dispatcher-{n}": free_port() for n in range(2, count + 1)}
    for instance, port in ports.items():
        stack.spawn("dispatcher", instance=instance, DISPATCHER_PORT=str(port))
    for instance, port in ports.items():
        wait_until(lambda i=instance, p=port: stack.serves(i, f"http://127.0.0.1:{p}"), 120,
                   f"{instance} to be healthy")
    return list(ports)


@contextlib.contextmanager
def running_stack(partitions: int, names: tuple[str, ...] = tuple(SERVICES), timers: bool = False,
                  dispatchers: int = 1, **overrides: str) -> Iterator[Stack]:
    """The stack started (infrastructure, then names, with stage timers if asked, and `dispatchers`
    dispatcher processes in all) and healthy; everything stopped on the way out, whatever ends the
    run (an error, Ctrl-C, SIGTERM)."""
    stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="takedown-bench-") as tmp:
        stack = Stack(Path(tmp) / "stack", kafka_port=free_port(), env=bench_env(Path(tmp), partitions, **overrides))
        try:
            stack.start_infrastructure()
            for name in names:
                stack.spawn(name, **(timer_env(name, stack.data_dir) if timers else {}))
            try:
                for name in names:
                    wait_until(lambda n=name: stack.healthy(n), 90, f"{name} to be healthy")
            except (RuntimeError, TimeoutError):
                for name in names:  # the logs go with the temporary directory: show why now
                    tail = (stack.data_dir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                    print(f"--- {name}'s log, last lines:", *tail, sep="\n")
                raise
            more_dispatchers(stack, dispatchers)
            yield stack
        finally:
            stack.stop_all()


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end a benchmark through every finally that stops what it started (SIGINT
    too when it was ignored, as in a shell's background job)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
