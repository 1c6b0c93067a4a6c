"""Render the figures of bench/results/*.json into docs/benchmarks.md, between its
<!-- figures --> and <!-- /figures --> markers; the prose around them is left as it is.
Run after every benchmark (make bench and make soak do): python -m bench.report.
"""

from pathlib import Path

from bench.common import ROOT, read_result
from bench.markdown import cpu_rows, figure, num, table
from bench.report_limits import limits_section, overload_section, scale_section

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- figures -->", "<!-- /figures -->"
NAMES = ("e2e", "limits", "overload", "scale", "latency", "ingest", "memory", "auth", "soak")


def runs_section(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        m = r["machine"]
        rows.append([name, r["started_at"], m.get("commit"), f"`{r.get('command')}`",
                     " / ".join(f"{x:.1f}" for x in m.get("load_average_at_start", []))])
    first = next(iter(results.values()))["machine"]
    return [f"Machine: {first['cpus']} cores ({first['cpu_model']}), {first['memory_gb']} GB, {first['python']}, "
            f"Linux {first['kernel']}; every part of the system and the load generator on it.", "",
            *table(["benchmark", "started (UTC)", "commit", "command", "load average at start (1/5/15 min)"], rows)]


def settings_section(results: dict[str, dict]) -> list[str]:
    """The stack's settings (the same for every benchmark that starts it) and each benchmark's own."""
    stacked = next((r["settings"] for r in results.values() if "env" in r.get("settings", {})), None)
    if stacked is None:
        return []
    env = ", ".join(f"`{k}={v}`" for k, v in stacked["env"].items())
    own = {name: {k: v for k, v in r["settings"].items() if k not in ("env", "adapters", "sandbox_personas", "kafka",
                                                                     "postgres")}
           for name, r in results.items() if r.get("settings")}
    return ["### Settings", "", f"Stack: {stacked['kafka']}, {stacked['postgres']}; {env}.",
            f"Adapters (our side): `{stacked['adapters']}`. Sandbox personas (the platforms' side): "
            f"`{stacked['sandbox_personas']}`.", "",
            *(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in values.items()) for name, values in own.items()), ""]


def targets_section(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        for t in r.get("targets", []):
            sign = ">=" if t["kind"] == "at_least" else "<="
            verdict = {True: "met", False: "**not met**", None: "no figure"}[t["met"]]
            rows.append([name, t["figure"], f"{figure(t['value'])} {t['unit']}",
                         f"{sign} {t['bound']:,g}" + (f" (aim {t['aim']:,g})" if t.get("aim") else ""), verdict])
    return table(["benchmark", "figure", "value", "target", "verdict"], rows)


def round_trips(label: str, trips: dict | None) -> list[str]:
    if not trips:
        return []
    shown = "; ".join(f"{kind.removesuffix('_ms').replace('_', ' ')} {num(p['p50'], 1)} / {num(p['p99'], 1)}"
                      for kind, p in trips.items())
    return [f"Round trips timed once a second from the generator's process, {label} (p50 / p99 ms): {shown}.", ""]


def stages_section(label: str, stages: dict | None) -> list[str]:
    if not stages:
        return []
    rows = [[name, stage, num(s["per_s"], 1), num(s["mean_ms"], 1), num(s["p50_ms"], 1), num(s["p95_ms"], 1),
             num(s["p99_ms"], 1), num(s["in_flight"], 2)]
            for name, found in stages.items() for stage, s in found.items()]
    return [f"Stage timers inside the services, {label} (waits included; percentiles within 25%):", "",
            *table(["service", "stage", "calls/s", "mean ms", "p50", "p95", "p99", "under way at once"], rows)]


def e2e_section(r: dict) -> list[str]:
    rows = [[run["partitions"], num(run["decided_per_s"]), num(run["by_path_decided_per_s"]["http"]),
             num(run["by_path_decided_per_s"]["kafka"]),
             " / ".join(num(run["stages_recorded_per_s"][s]) for s in ("submitted", "dispatched", "decided")),
             f"{num(run['generator_per_s']['http'])} / {num(run['generator_per_s']['kafka'])}",
             ", ".join(str(x) for x in run["decided_per_s_every_5s"]),
             ", ".join(f"{g}: {n:,}" for g, n in run.get("consumer_lag", {}).get("window_end", {}).items()) or "none"]
            for run in r["runs"]]
    lines = [f"### End-to-end throughput ({num(r['settings']['seconds'])} s window)", "",
             *table(["partitions", "decided/s", "over HTTP", "over Kafka",
                     "recorded/s: submitted / dispatched / decided", "generator/s: HTTP / Kafka", "decided/s, each 5 s",
                     "consumer lag at the end"], rows)]
    for run in r["runs"]:
        lines += [f"CPU cores used, {run['partitions']} partitions: {cpu_rows(run['cpu_cores'])}.", "",
                  *round_trips(f"{run['partitions']} partitions", run.get("round_trips")),
                  *stages_section(f"{run['partitions']} partitions", run.get("stages"))]
    return lines


def latency_section(result: dict) -> list[str]:
    lines = []
    for r in result.get("runs", [result]):
        rows = [[name.replace("_", " "), num(p["p50"], 1), num(p["p95"], 1), num(p["p99"], 1), num(p["max"], 1),
                 num(p["count"])] for name, p in r["spans_ms"].items()]
        rows += [[f"acknowledgement over {path} ({'202' if path == 'http' else 'broker ack'})", num(p["p50"], 1),
                  num(p["p95"], 1), num(p["p99"], 1), num(p["max"], 1), num(p["count"])]
                 for path, p in r["acknowledgement_ms"].items()]
        achieved = num(r["generator_per_s_in_window"], 1)
        lines += [f"### Latency at {num(r['rate'])} referrals/s (generator achieved {achieved}/s)", "",
                  *table(["span (ms)", "p50", "p95", "p99", "max", "n"], rows),
                  f"p50 to dispatched, by quarter of the window: "
                  f"{' / '.join(num(q, 1) for q in r.get('to_dispatched_p50_ms_by_quarter', []))} ms. "
                  f"Not dispatched / not decided when read: {r['missing']['dispatched']} / {r['missing']['decided']}"
                  f"{' (counted as taking until then: lower bounds)' if r.get('lower_bounds') else ''}. "
                  f"CPU cores used: {cpu_rows(r['cpu_cores'])}.", "",
                  *round_trips(f"at {num(r['rate'])}/s", r.get("round_trips")),
                  *stages_section(f"at {num(r['rate'])}/s", r.get("stages"))]
    return lines


def ingest_section(r: dict) -> list[str]:
    rows = [["raw asyncpg COPY (audit rows + final states, one transaction)", num(r["copy"]["events"]),
             num(r["copy"]["events_per_s"]), "1"],
            ["naive consumer (a session and a commit per message)", num(r["naive"]["events"]),
             num(r["naive"]["events_per_s"]), num(r["naive"]["events_per_s"] / r["copy"]["events_per_s"], 4)],
            ["the outcomes service (its own batches)", num(r["service"]["events"]), num(r["service"]["events_per_s"]),
             num(r["ratios"]["of_copy"], 3)]]
    return ["### Outcomes ingest", "", *table(["writer", "events", "events/s", "share of COPY"], rows),
            f"The service: {r['ratios']['of_copy']:.1%} of COPY, {r['ratios']['of_naive']:.1f} times the naive "
            "consumer. CPU cores used while the service ingested: "
            f"{cpu_rows(r.get('cpu_cores_while_the_service_ingests', {}))}.", ""]


def memory_section(r: dict) -> list[str]:
    rows = [[name, num(p["peak_mb"], 1), p["in"]] for name, p in r["peaks"].items()]
    return ["### Peak memory", "", *table(["process", "peak resident MB", "reached in"], rows)]


def profile_lines(label: str, p: dict | None) -> list[str]:
    if not p or "error" in p:
        return [f"- {label}: no profile ({(p or {}).get('error', 'not taken')})"]
    top = lambda key, n: "; ".join(f"{name} {share}%" for name, share in p[key][:n])  # noqa: E731
    return [f"- **{label}** ({p['samples']:,} busy samples, {p['busy_share_of_a_core']} of a core in Python; "
            f"raw stacks `{p.get('raw', '')}`)",
            f"  - self time by package: {top('self_by_package', 6)}",
            f"  - self time by function: {top('self_by_function', 6)}",
            f"  - inclusive, our code: {top('inclusive_ours', 8)}"]


def profiles_section(e2e: dict | None, ingest: dict | None) -> list[str]:
    lines = ["### Profiles (py-spy)", ""]
    if e2e:
        best = next(run for run in e2e["runs"] if run["partitions"] == e2e["best"])
        lines += [f"Under the end-to-end load, {best['partitions']} partitions:", ""]
        for name, p in best.get("profiles", {}).items():
            lines += profile_lines(name, p)
        lines.append("")
    if ingest:
        lines += ["During the ingest benchmark:", "", *profile_lines("outcomes", ingest["service"].get("profile")), ""]
    return lines


def soak_section(r: dict) -> list[str]:
    s = r["settings"]
    growth = [[name, num(g["first_third_mb"], 1), num(g["last_third_mb"], 1), num(g["growth_pct"], 1),
               num(g["slope_mb_per_min"], 2)] for name, g in r["memory_growth"].items()]
    minutes = [[m["minute"], num(m["referrals"]), num(m["p50"], 3), num(m["p99"], 3)] for m in r["latency_by_minute_s"]]
    lag = r.get("lag_thirds") or [None, None]
    return [f"### Soak: {num(s['rate_per_s'])} referrals/s for {num(s['seconds'])} s (started {r['started_at']})", "",
            f"Decisions recorded {num(r['decided_per_s_steady'], 1)}/s in the steady part; consumer lag "
            f"{num(lag[0])} records on average in its first third, {num(lag[1])} in its last, slope "
            f"{num(r['lag_slope_per_s'], 2)} records/s; {num(r['left_undecided'])} referrals not decided "
            f"{num(r['drained_in_s'], 1)} s after the load stopped.", "",
            *table(["process", "RSS first third MB", "last third MB", "growth %", "MB/min"], growth),
            "Intake to decision recorded, by minute of the run (seconds):", "",
            *table(["minute", "referrals", "p50", "p99"], minutes)]


def render(results: dict[str, dict]) -> str:
    if not results:
        return "No results yet: run `make bench`."
    lines = ["## Figures", "",
             "_Rendered by `python -m bench.report` from `bench/results/*.json`; do not edit by hand._",
             "", *runs_section(results), "### Against the targets", "", *targets_section(results),
             *settings_section(results)]
    lines += limits_section(*(results.get(name) for name in ("e2e", "limits", "overload", "scale")))
    if "e2e" in results:
        lines += e2e_section(results["e2e"])
    if "overload" in results:
        lines += overload_section(results["overload"])
    if "scale" in results:
        lines += scale_section(results["scale"])
    if "latency" in results:
        lines += latency_section(results["latency"])
    if "ingest" in results:
        lines += ingest_section(results["ingest"])
    if "memory" in results:
        lines += memory_section(results["memory"])
    if "auth" in results:
        lines += auth_section(results["auth"])
    lines += profiles_section(results.get("e2e"), results.get("ingest"))
    if "soak" in results:
        lines += soak_section(results["soak"])
    return "\n".join(lines).rstrip() + "\n"


def auth_section(result: dict) -> list[str]:
    """What access control costs per call (bench.auth)."""
    labels = {"cached_check_us": "API key check, cached (µs)", "database_check_ms": "API key check, from Postgres (ms)",
              "sign_record_us": "Kafka record signed (µs)", "verify_record_us": "Kafka record verified (µs)",
              "redact_clean_line_us": "log line scrubbed, nothing to hide (µs)",
              "redact_line_with_token_us": "log line scrubbed, a token in it (µs)"}
    figures = result["figures"]
    return ["### Access control", "", *table(["per call", "time"], [[label, figure(figures[key])]
                                                                    for key, label in labels.items() if key in figures])]


def update(document: str, figures: str) -> str:
    """document with everything between the markers replaced by figures (markers added if missing)."""
    if START not in document or END not in document:
        return document.rstrip() + f"\n\n{START}\n{figures}{END}\n"
    head, rest = document.split(START, 1)
    return f"{head}{START}\n{figures}{END}{rest.split(END, 1)[1]}"


def main(doc: Path = DOC) -> None:
    results = {name: r for name in NAMES if (r := read_result(name)) is not None}
    doc.write_text(update(doc.read_text() if doc.exists() else "# Benchmarks\n", render(results)))
    print(f"rendered {', '.join(results) or 'nothing'} into {doc.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
