"""The report's sections on how far the figures are from the limit: CPU per referral, the broker's
raw rate and a naive pipeline as references, the overload run and the scale-out run."""

from bench.markdown import cpu_rows, figure, num, table
from bench.perreferral import APART, OUR_SERVICES, OURS, cpu_ms_per_referral, ratio


def _best(e2e: dict | None) -> dict | None:
    return next((r for r in (e2e or {}).get("runs", []) if r["partitions"] == e2e.get("best")), None)


def _dispatchers(n: int) -> str:
    return f"{n} dispatcher process{'es' if n > 1 else ''}"


def reference_rows(e2e: dict | None, limits: dict | None, overload: dict | None, scale: dict | None) -> list[list]:
    """Each reference rate next to end-to-end's best, and how they compare."""
    best = _best(e2e)
    rate = best["decided_per_s"] if best else None
    rows = [[f"end-to-end, decided and recorded (best of bench.e2e, {best['partitions']} partitions)" if best
             else "end-to-end (no bench.e2e result)", num(rate, 1), ""]]
    if limits:
        b, n = limits["broker"], limits["naive"]
        share = ratio(rate, b["records_per_s"], 6)
        rows += [[f"broker's raw limit: produced and consumed through Tansu, {b['record_bytes']} B records",
                  num(b["records_per_s"]), "-" if share is None else f"end-to-end is {share:.2%} of it"],
                 [f"naive pipeline: one record at a time through {len(n['hops'])} hops (INSERT + commit, "
                  "publish and await the ack, commit the offset)", num(n["referrals_per_s"], 1),
                  f"end-to-end is {figure(ratio(rate, n['referrals_per_s']))} times it"]]
    if scale:
        first = scale["runs"][0]
        rows += [[f"scale-out: {_dispatchers(r['dispatchers'])}, {num(scale['settings']['seconds'])} s window",
                  num(r["decided_per_s"], 1), "" if r is first else
                  f"{figure(ratio(r['decided_per_s'], first['decided_per_s']))} times "
                  f"{_dispatchers(first['dispatchers'])}"] for r in scale["runs"]]
    if overload:
        rows.append([f"overload: decided while {num(overload['offered_per_s'])}/s were offered",
                     num(overload["decided_per_s"], 1),
                     f"{figure(overload['kept_share'])} of the sustainable rate kept"])
    return rows


def cpu_per_referral(e2e: dict | None) -> list[str]:
    """ms of CPU each process spent per decided referral, in each end-to-end run."""
    runs = (e2e or {}).get("runs", [])
    if not runs:
        return []
    per = [r.get("cpu_ms_per_referral") or cpu_ms_per_referral(r["cpu_cores"], r["decided_per_s"]) for r in runs]
    rows = [[f"**{name}**" if name == OUR_SERVICES else name, *(num(p.get(name), 3) for p in per)]
            for name in (*OURS, OUR_SERVICES, *APART)]
    return ["CPU per decided referral in the end-to-end runs, ms (utime + stime over the window / referrals "
            "decided in it; target for our services <= 0.5):", "",
            *table(["process", *(f"{r['partitions']} partitions" for r in runs)], rows)]


def limits_section(e2e: dict | None, limits: dict | None, overload: dict | None, scale: dict | None) -> list[str]:
    """End-to-end against its references, and CPU per referral."""
    if not any((limits, overload, scale)) and not cpu_per_referral(e2e):
        return []
    lines = ["### How far from the limit", "",
             *table(["rate", "referrals/s", "compared"], reference_rows(e2e, limits, overload, scale)),
             *cpu_per_referral(e2e)]
    if limits:
        b, n = limits["broker"], limits["naive"]
        lines += [f"Broker: {num(b['consumed'])} of {num(b['records'])} records of {b['record_bytes']} B on "
                  f"{b['partitions']} partitions in {num(b['seconds'], 2)} s; CPU cores used: "
                  f"{cpu_rows(b['cpu_cores'])} (the consumer's process is in \"other\"). Naive pipeline: "
                  f"{num(n['recorded'])} of {num(n['referrals'])} referrals in {num(n['seconds'], 2)} s; "
                  f"CPU cores used: {cpu_rows(n['cpu_cores'])}.", ""]
    return lines


def overload_section(r: dict) -> list[str]:
    http, lost = r["offered"]["http"], r["lost"]
    return [f"### Overload: {num(r['offered_per_s'])} referrals/s offered for {num(r['seconds'])} s "
            f"({r['settings']['http_in_flight']} batches in flight)", "",
            f"Sustainable rate {num(r['sustained_per_s'], 1)}/s (from {r['sustained_from']}); the agency achieved "
            f"{num(http['achieved_per_s'], 1)}/s, sent {num(http['sent'])}, intake took {num(http['acknowledged'])} "
            f"and refused {num(http['failed'])}; **429s given: {num(r['throttled_429'])}** "
            f"({num(http['throttled_wait_s'], 1)} s of Retry-After waited, summed over batches).", "",
            f"Decided {num(r['decided_per_s'], 1)}/s after the first {num(r['warmup_s'])} s: "
            f"**{figure(r['kept_share'])} of the sustainable rate kept**; each 5 s: "
            f"{', '.join(str(x) for x in r['decided_per_s_every_5s'])}. Consumer lag when the load stopped: "
            f"{', '.join(f'{g}: {n:,}' for g, n in r['consumer_lag_at_load_end'].items()) or 'none'}.", "",
            f"Nothing lost? Of {num(lost['taken'])} referrals taken, {num(lost['decided'])} were decided "
            f"{num(lost['waited_s'], 1)} s after the load stopped (deadline {num(lost['deadline_s'])} s): "
            f"**{num(lost['missing'])} not decided**. CPU cores used: {cpu_rows(r['cpu_cores'])}.", ""]


def scale_section(r: dict) -> list[str]:
    rows = [[run["dispatchers"], num(run["decided_per_s"], 1), num(run["by_path_decided_per_s"]["http"]),
             num(run["by_path_decided_per_s"]["kafka"]),
             ", ".join(f"{name} {cores:.2f}" for name, cores in run["cpu_cores"].items()
                       if name.startswith("dispatcher")),
             num(run["cpu_ms_per_referral"][OUR_SERVICES], 2),
             ", ".join(str(x) for x in run["decided_per_s_every_5s"]),
             ", ".join(f"{g}: {n:,}" for g, n in run["consumer_lag"]["window_end"].items()) or "none"]
            for run in r["runs"]]
    return [f"### Scale-out: dispatcher processes ({num(r['settings']['seconds'])} s window, "
            f"{r['settings']['TOPIC_PARTITIONS']} partitions)", "",
            *table(["dispatchers", "decided/s", "over HTTP", "over Kafka", "dispatcher CPU cores",
                    "our CPU ms per referral", "decided/s, each 5 s", "consumer lag at the end"], rows),
            f"{r['runs'][-1]['dispatchers']} dispatchers: {figure(r['speedup'])} times the rate of "
            f"{r['runs'][0]['dispatchers']}. CPU cores used with {r['runs'][-1]['dispatchers']}: "
            f"{cpu_rows(r['runs'][-1]['cpu_cores'])}.", ""]
