"""Peak memory of each service: the highest resident set of each process over the benchmarks just
run (e2e, overload, scale, latency, ingest), from the kernel's own peak (VmHWM, read before the process stopped)
and the samples taken every second. Postgres is the sum of its processes' PSS; Tansu keeps every
record in memory by design (no retention), so it grows with what was sent.
Run after the others: make bench, or python -m bench.memory.
"""

from bench.common import Run, Target, read_result

SOURCES = ("e2e", "overload", "scale", "latency", "ingest")
SERVICES = ("intake", "dispatcher", "outcomes", "sandbox")
TARGET_MB = 200


def collect() -> dict[str, dict]:
    """Per process: its peak (MB) and the benchmark it was reached in."""
    peaks: dict[str, dict] = {}
    for source in SOURCES:
        result = read_result(source)
        if result is None:
            continue
        for memory in [run["memory"] for run in result.get("runs", [])] + [result.get("memory", {})]:
            for name, figures in memory.items():
                mb = max(figures.get("vm_hwm_mb", 0), figures.get("sampled_peak_mb", 0))
                if mb > peaks.get(name, {}).get("peak_mb", -1):
                    peaks[name] = {"peak_mb": mb, "in": source}
    return peaks


def main() -> None:
    run = Run("memory")
    peaks = collect()
    if not peaks:
        raise SystemExit("no benchmark results to read: run bench.e2e, bench.latency and bench.ingest first")
    for name, peak in peaks.items():
        print(f"  {name:<26} {peak['peak_mb']:>8.1f} MB (in {peak['in']})")
    targets = [Target(f"peak resident memory, {name}" + (" (stand-in for the platforms)" if name == "sandbox" else ""),
                      peaks.get(name, {}).get("peak_mb"), "MB", TARGET_MB, "at_most") for name in SERVICES]
    run.finish({"sources": list(SOURCES), "peaks": peaks}, targets)


if __name__ == "__main__":
    main()
