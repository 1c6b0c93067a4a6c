"""Per-process CPU and memory of a running stack, read from /proc once a second in a thread.

CPU: utime + stime of each process (Postgres: the postmaster and every backend), as cores used
over a window; the machine's own busy time from /proc/stat, so CPU used by anything outside the
stack and the load generator (other people's work on a shared machine) shows as "other".
Memory: VmRSS sampled, and VmHWM (the kernel's peak RSS) read at the end; for Postgres the sum of
its processes' PSS (shared buffers counted once).
"""

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.supervisor import Stack

TICKS = os.sysconf("SC_CLK_TCK")
GENERATOR = "bench (load generator)"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def cpu_ticks(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def parent_of(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    return int(stat.rsplit(")", 1)[1].split()[1]) if stat else None


def status_kb(pid: int, key: str) -> int | None:
    """A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or of smaps_rollup (Pss)."""
    text = _read(f"/proc/{pid}/smaps_rollup" if key == "Pss" else f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def children_of(pid: int) -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and parent_of(int(d)) == pid]


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in (_read("/proc/stat") or "cpu 0 0 0 0").splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Sample:
    at: float
    ticks: dict[str, int]  # per process group, cumulative
    rss_mb: dict[str, float]
    machine: tuple[int, int]


@dataclass
class Monitor:
    """Samples the stack's processes and this one (the load generator) every `every` seconds."""

    stack: Stack
    every: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _seen: dict[tuple[str, int], int] = field(default_factory=dict)  # last ticks of every pid, gone ones too
    _stop: threading.Event = field(default_factory=threading.Event)

    def groups(self) -> dict[str, list[int]]:
        found = {name: [child.pid] for name, child in self.stack.children.items() if child.poll() is None}
        if self.stack.kafka and self.stack.kafka.process:
            found["tansu (Kafka)"] = [self.stack.kafka.process.pid]
        if self.stack.postgres and self.stack.postgres.pid:
            found["postgres"] = [self.stack.postgres.pid, *children_of(self.stack.postgres.pid)]
        found[GENERATOR] = [os.getpid()]
        return found

    def sample(self) -> Sample:
        ticks, rss = {}, {}
        for name, pids in self.groups().items():
            for pid in pids:
                if (used := cpu_ticks(pid)) is not None:
                    self._seen[(name, pid)] = used
            ticks[name] = sum(t for (n, _), t in self._seen.items() if n == name)
            key = "Pss" if name == "postgres" else "VmRSS"
            rss[name] = round(sum(status_kb(pid, key) or 0 for pid in pids) / 1024, 1)
        taken = Sample(time.time(), ticks, rss, machine_ticks())
        self.samples.append(taken)
        return taken

    def __enter__(self) -> "Monitor":
        self.sample()
        threading.Thread(target=self._run, name="bench-monitor", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def nearest(self, at: float) -> Sample:
        return min(self.samples, key=lambda s: abs(s.at - at))

    def cpu(self, start: float, end: float) -> dict[str, float]:
        """Cores each process group used between start and end (1.0 = one core busy all along),
        with the machine's total and what else used it ("other")."""
        first, last = self.nearest(start), self.nearest(end)
        seconds = max(last.at - first.at, 1e-9)
        used = {name: round((last.ticks.get(name, 0) - first.ticks.get(name, 0)) / TICKS / seconds, 2)
                for name in last.ticks}
        busy = last.machine[0] - first.machine[0]
        total = max(last.machine[1] - first.machine[1], 1)
        used["machine (all processes)"] = round(busy / total * (os.cpu_count() or 1), 2)
        used["other (outside the stack and generator)"] = round(
            max(used["machine (all processes)"] - sum(v for k, v in used.items() if not k.startswith("machine")), 0), 2)
        return used

    def memory(self) -> dict[str, dict]:
        """Per process group: the highest RSS sampled, and the kernel's peak (VmHWM) where it has one."""
        peaks: dict[str, dict] = {}
        for sample in self.samples:
            for name, mb in sample.rss_mb.items():
                peak = peaks.setdefault(name, {"sampled_peak_mb": 0.0})
                peak["sampled_peak_mb"] = max(peak["sampled_peak_mb"], mb)
        for name, pids in self.groups().items():
            if name in peaks and name not in ("postgres", GENERATOR):
                hwm = sum(status_kb(pid, "VmHWM") or 0 for pid in pids)
                peaks[name]["vm_hwm_mb"] = round(hwm / 1024, 1)
        return peaks

    def rss_series(self) -> list[dict]:
        return [{"t": round(s.at - self.samples[0].at, 1), **s.rss_mb} for s in self.samples]
