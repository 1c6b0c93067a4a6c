"""What access control costs per request and per record: a bearer token checked from the cache
and from the database, a signed Kafka record verified, and a log line scrubbed of secrets.

    PYTHONPATH=. python -m bench.auth      (BENCH_AUTH_ROUNDS=20000 by default)

CPU figures are per call on one core; the database figure is one key check's round trips (a
SELECT, an UPDATE of last_used_at and a commit), paid once per key per AUTH_CACHE_S.
"""

import asyncio
import json
import tempfile
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker

from bench.common import Run, Target, env_int
from shared.auth import Authenticator, Role, keys, records, setup
from shared.auth.signing import new_secret
from shared.db import make_engine
from shared.embedded import EmbeddedPostgres
from shared.redact import redact, register_secrets

ROUNDS = env_int("BENCH_AUTH_ROUNDS", 20_000)


def per_call_us(call, rounds: int = ROUNDS) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return round((time.perf_counter() - started) / rounds * 1e6, 2)


async def key_checks(url: str) -> dict:
    """Microseconds of one cached check, and milliseconds of one database check, of an API key."""
    await setup.migrate(url)
    engine = make_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        token = (await keys.create(session, Role.agency, None, "NCA", "bench")).token
    cached, uncached = Authenticator(sessions, cache_s=3600), Authenticator(sessions, cache_s=0)
    await cached.principal(token)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        await cached.principal(token)
    hit_us = (time.perf_counter() - started) / ROUNDS * 1e6
    checks = max(ROUNDS // 100, 50)
    started = time.perf_counter()
    for _ in range(checks):
        await uncached.principal(token)
    miss_ms = (time.perf_counter() - started) / checks * 1e3
    await engine.dispose()
    return {"cached_check_us": round(hit_us, 2), "database_check_ms": round(miss_ms, 3), "database_checks": checks}


def cpu_figures() -> dict:
    secret = new_secret()
    value = json.dumps({"url": "https://x.com/a/status/1", "category": "fraud", "idempotency_key": "k-1"}).encode()
    headers = records.signed_headers("NCA", secret, value)
    register_secrets(secret, "a-platform-client-secret")
    plain = "dispatched referral 5b1f... to facebook as ticket fb-123 after 2 attempts"
    leaky = "HTTP 400 from POST /reports: {\"echo\": \"Bearer td_0123456789ab_" + "A" * 43 + "\"}"
    return {"sign_record_us": per_call_us(lambda: records.signed_headers("NCA", secret, value)),
            "verify_record_us": per_call_us(lambda: records.verify(value, headers, {"NCA": [secret]}, time.time())),
            "redact_clean_line_us": per_call_us(lambda: redact(plain)),
            "redact_line_with_token_us": per_call_us(lambda: redact(leaky))}


def main() -> None:
    run = Run("auth")
    with tempfile.TemporaryDirectory() as data:
        postgres = EmbeddedPostgres(Path(data) / "pg")
        url = postgres.start()
        try:
            figures = {**asyncio.run(key_checks(url)), **cpu_figures()}
        finally:
            postgres.stop()
    for name, value in figures.items():
        print(f"  {name:<28} {value}")
    targets = [Target("API key check, cached", figures["cached_check_us"], "us", 20, "at_most"),
               Target("API key check, from the database", figures["database_check_ms"], "ms", 5, "at_most"),
               Target("signed record verified", figures["verify_record_us"], "us", 100, "at_most"),
               Target("log line without a secret scrubbed", figures["redact_clean_line_us"], "us", 10, "at_most")]
    run.finish({"rounds": ROUNDS, "figures": figures}, targets)


if __name__ == "__main__":
    main()
