"""How far a figure is from its limit: CPU per decided referral, and one rate as a share of another.

Pure arithmetic over figures the benchmarks already took (bench/procs.py's cores per process), so
the e2e, scale-out and overload runs and the report compute them alike.
"""

OURS = ("intake", "dispatcher", "outcomes")
OUR_SERVICES = "our services (intake + dispatcher + outcomes)"
APART = ("sandbox", "postgres", "tansu (Kafka)", "bench (load generator)")


def service_of(process: str) -> str:
    """The service a process group belongs to: a further instance (dispatcher-2) is its service's."""
    base, _, number = process.rpartition("-")
    return base if base and number.isdigit() else process


def cpu_ms_per_referral(cpu_cores: dict[str, float], decided_per_s: float | None) -> dict[str, float | None]:
    """ms of CPU (utime + stime) each service spent per decided referral: cores / (referrals/s) x 1000.
    Our three services, their sum, then the sandbox, Postgres, Tansu and the generator apart."""
    if not decided_per_s:
        return {name: None for name in (*OURS, OUR_SERVICES, *APART)}
    by_service: dict[str, float] = {}
    for process, cores in cpu_cores.items():
        name = service_of(process)
        if name in OURS or name in APART:
            by_service[name] = by_service.get(name, 0.0) + cores
    ms = {name: round(1000 * by_service.get(name, 0.0) / decided_per_s, 3) for name in OURS}
    ms[OUR_SERVICES] = round(sum(ms[name] for name in OURS), 3)
    ms.update({name: round(1000 * by_service[name] / decided_per_s, 3) for name in APART if name in by_service})
    return ms


def ratio(value: float | None, of: float | None, digits: int = 3) -> float | None:
    """value / of, or None when either is missing or of is 0."""
    if value is None or not of:
        return None
    return round(value / of, digits)
