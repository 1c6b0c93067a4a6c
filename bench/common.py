"""What every benchmark shares: its settings from the environment, the machine it ran on, targets
compared with figures, and the result file it writes."""

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent


def env_float(name: str, default: float) -> float:
    """A duration or rate from the environment (BENCH_SECONDS=10 to try a benchmark quickly)."""
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    return int(env_float(name, default))


def env_ints(name: str, default: str) -> list[int]:
    """A comma-separated list of integers, e.g. BENCH_PARTITIONS=3,6."""
    return [int(part) for part in (os.environ.get(name, "").strip() or default).split(",") if part.strip()]


def machine() -> dict:
    """The machine the figures come from, and how busy it was when the run started."""
    model = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": platform.release(), "load_average_at_start": os.getloadavg(),
        "commit": _git("describe", "--always", "--dirty"),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class Target:
    """A figure next to its target: `at_least` or `at_most` the bound."""

    figure: str
    value: float | None
    unit: str
    bound: float
    kind: str = "at_least"
    aim: float | None = None  # a further figure worth reaching, shown after the bound

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.bound if self.kind == "at_least" else self.value <= self.bound

    def line(self) -> str:
        sign = ">=" if self.kind == "at_least" else "<="
        verdict = {True: "met", False: "NOT MET", None: "no figure"}[self.met]
        shown = "-" if self.value is None else f"{self.value:,.4g}" if self.value < 100 else f"{self.value:,.0f}"
        aim = f" (aim {self.aim:,g})" if self.aim is not None else ""
        return f"  {self.figure:<58} {shown:>10} {self.unit:<14} target {sign} {self.bound:,g}{aim}: {verdict}"

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


def percentiles(values: list[float], points=(50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles of values (None when there are none), and the count and max."""
    ordered = sorted(values)
    found: dict[str, float | None] = {f"p{p}": ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]
                                      if ordered else None for p in points}
    found["max"] = ordered[-1] if ordered else None
    found["count"] = len(ordered)
    return found


class Run:
    """One benchmark run: when it started, on what machine (taken at the start, with the load)."""

    def __init__(self, name: str):
        self.name, self.started, self.machine = name, now(), machine()

    def finish(self, result: dict, targets: list[Target]) -> Path:
        """Print the targets' verdicts and write bench/results/<name>.json; its path."""
        print(f"\n{self.name}: figures against targets")
        for target in targets:
            print(target.line())
        document = {"name": self.name, "started_at": self.started.isoformat(timespec="seconds"),
                    "finished_at": now().isoformat(timespec="seconds"), "machine": self.machine,
                    "command": " ".join(["python -m", f"bench.{self.name}", *sys.argv[1:]]),
                    "targets": [t.as_dict() for t in targets], **result}
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"  written to {path.relative_to(ROOT)}")
        return path


def read_result(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def now() -> datetime:
    return datetime.now(UTC)
