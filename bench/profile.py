"""Where a service's CPU goes: py-spy samples its Python stacks while the load runs.

py-spy (a dev dependency) reads the process's memory from outside, non-blocking, so the service
runs unchanged. Only stacks of threads doing work are sampled (idle ones are left out), so a
service's samples / (rate x seconds) is roughly the share of a core it kept busy in Python.
The raw stacks go to bench/results/profiles/<bench>-<service>.txt (collapsed: one stack a line,
with its count; flamegraph.pl or speedscope read them).
"""

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.common import RESULTS

PROFILES = RESULTS / "profiles"
# Leaf frames of a thread waiting, not working: the event loop's epoll, thread pools' idle workers.
IDLE = ("EpollSelector.select", "Condition.wait", "Event.wait", "_worker", "Thread._wait_for_tstate_lock")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pids: dict[str, int], seconds: float, label: str, rate: int = 100) -> dict[str, dict]:
    """Sample each named process for `seconds` at once; each one's summary (or why there is none)."""
    binary = py_spy()
    if binary is None:
        return {name: {"error": "py-spy is not installed (pip install -e .[dev])"} for name in pids}
    PROFILES.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, pid in pids.items():
        out = PROFILES / f"{label}-{name}.txt"
        runs[name] = (out, subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
             "--format", "raw", "--nonblocking", "--full-filenames", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    summaries = {}
    for name, (out, run) in runs.items():
        try:
            _, err = run.communicate(timeout=seconds + 60)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        if not out.exists():
            summaries[name] = {"error": (err or b"").decode(errors="replace")[-500:]}
            continue
        summaries[name] = summarise(out.read_text(), rate * seconds)
        summaries[name]["raw"] = str(out.relative_to(RESULTS.parent.parent))
    return summaries


def where(path: str) -> str:
    """The package a frame's file belongs to: ours by module (services.outcomes), a library by name."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for ours in ("services/", "shared/", "bench/", "tests/"):
        if f"/{ours}" in path or path.startswith(ours):
            rest = path.split(ours, 1)[1].split("/")
            top = ours.rstrip("/")
            return f"{top}.{rest[0]}" if top == "services" and len(rest) > 1 else top
    if re.search(r"/lib/python3\.\d+/", path):
        return "stdlib:" + _short(path).split("/", 1)[0].removesuffix(".py")
    return path or "?"


def _entry(func: str, file: str) -> bool:
    """A frame in every stack (the process's entry point), not a finding."""
    return file.endswith("services/cli.py") or (func == "serve" and file.endswith("shared/serving.py"))


def _parse(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    if not match:
        return frame, "?"
    return match["func"], match["file"]


def summarise(raw: str, possible: float, top: int = 12) -> dict:
    """Self time by package and by function, and inclusive time of our own functions and of
    library entry points, as percentages of the samples."""
    total, idle, self_pkg, self_fn, inclusive = 0, 0, Counter(), Counter(), Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_parse(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames or frames[-1][0] in IDLE:
            idle += n
            continue
        total += n
        func, file = frames[-1]
        self_pkg[where(file)] += n
        self_fn[f"{func} ({_short(file)})"] += n
        seen = set()
        for func, file in frames:
            package = where(file)
            if package.startswith(("services", "shared")) and not _entry(func, file):
                name = f"{func} ({_short(file)})"
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += n

    def share(counter: Counter) -> list[list]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "idle_samples": idle,
            "busy_share_of_a_core": round(total / possible, 2) if possible else None,
            "self_by_package": share(self_pkg), "self_by_function": share(self_fn),
            "inclusive_ours": share(inclusive)}


def _short(path: str) -> str:
    """A frame's file as a reader knows it: services/intake/db.py, sqlalchemy/orm/session.py, asyncio/events.py."""
    for marker in ("site-packages/", "/services/", "/shared/", "/bench/"):
        if marker in path:
            return (marker.strip("/") + "/" if marker != "site-packages/" else "") + path.split(marker, 1)[1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", path)
