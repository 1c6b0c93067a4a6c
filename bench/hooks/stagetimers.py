"""Stage timers inside a service process, for the benchmarks: how long each named coroutine takes
(waits included, which a CPU profile does not show) and how late the event loop runs.

Loaded by sitecustomize.py beside it, only in a process started with BENCH_TIMERS (module:qualname
of each coroutine function, comma-separated) and BENCH_TIMERS_FILE. Each second's calls are
aggregated (count, total, log-scale histogram) and appended as one JSON line to the file by a
thread; bench/stages.py reads them. Nothing in services/ changes.
"""

import asyncio
import functools
import importlib
import json
import math
import os
import threading
import time
from collections import defaultdict

RATIO = 1.25  # histogram buckets: each 25% wider than the one before, from 10 microseconds
FLOOR = 1e-5
LOOP = "event loop lag (10 ms sleep, overshoot)"
_seconds: dict[int, dict[str, list]] = defaultdict(dict)
_lock = threading.Lock()
_loops: set[int] = set()


def bucket(seconds: float) -> int:
    return 0 if seconds <= FLOOR else int(math.log(seconds / FLOOR, RATIO)) + 1


def note(stage: str, began: float, seconds: float) -> None:
    with _lock:
        entry = _seconds[int(began)].setdefault(stage, [0, 0.0, {}])
        entry[0] += 1
        entry[1] += seconds
        entry[2][bucket(seconds)] = entry[2].get(bucket(seconds), 0) + 1


def timed(stage: str, function):
    @functools.wraps(function)
    async def wrapper(*args, **kwargs):
        _watch_loop()
        began, started = time.time(), time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            note(stage, began, time.perf_counter() - started)
    return wrapper


def _watch_loop() -> None:
    """Start measuring this event loop's lag the first time a timed coroutine runs in it."""
    loop = asyncio.get_running_loop()
    if id(loop) not in _loops:
        _loops.add(id(loop))
        loop.create_task(_lag())


async def _lag(every: float = 0.01) -> None:
    while True:
        began, started = time.time(), time.perf_counter()
        await asyncio.sleep(every)
        note(LOOP, began, max(time.perf_counter() - started - every, 0.0))


def _patch(target: str) -> None:
    module_name, _, qualname = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    setattr(owner, name, timed(qualname, getattr(owner, name)))


def _flush_forever(path: str) -> None:
    while True:
        time.sleep(1)
        done = int(time.time()) - 1
        with _lock:
            ready = {t: stages for t, stages in _seconds.items() if t <= done}
            for t in ready:
                del _seconds[t]
        if ready:
            with open(path, "a") as out:
                for t, stages in sorted(ready.items()):
                    out.write(json.dumps({"t": t, "stages": stages}) + "\n")


def install() -> None:
    for target in filter(None, (t.strip() for t in os.environ.get("BENCH_TIMERS", "").split(","))):
        _patch(target)
    threading.Thread(target=_flush_forever, args=(os.environ["BENCH_TIMERS_FILE"],), name="bench-timers",
                     daemon=True).start()
