"""The fault suite's harness: the whole stack as processes, an agency that refers thousands of
items and retries what was not acknowledged, and the set comparisons every fault ends with.

What must hold after any fault (check_everything):
- every acknowledged referral is in the audit trail exactly once, with a complete history
  (submitted, dispatched, decided: each event exactly once) and its final state;
- the platforms opened exactly one ticket per dispatch (replays were refused by idempotency key);
- `takedown audit verify` passes.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.supervisor import Stack
from shared import topics
from shared.auth.records import signed_headers
from shared.embedded import free_port
from tests.support import eventually

# Every platform kind of answer: a signed callback (facebook, x), in the response (tiktok), by poll (youtube).
URLS = {
    "facebook": "https://www.facebook.com/groups/crossings-{key}",
    "x": "https://x.com/smuggler/status/{n}",
    "tiktok": "https://www.tiktok.com/@crossings/video/{n}",
    "youtube": "https://www.youtube.com/watch?v={key}",
}
# The sandbox stands in for the platforms: fast, every report removed, no limits in the way.
ADAPTERS = {slug: {"rate_limit": {"per_second": 5000, "burst": 5000}, "max_in_flight": 64}
            for slug in ("meta", "x", "tiktok", "youtube", "webhook")}
HISTORY = ("referral.submitted", "referral.dispatched", "takedown.decided")


def stack_env(tmp_path: Path, adapters_over: dict | None = None, **overrides: str) -> dict[str, str]:
    """The environment of a stack of its own: free ports, its own embedded servers, fast settings;
    adapters_over lays settings over an adapter's (e.g. {"youtube": {"timeout_s": 2}})."""
    adapters = tmp_path / "adapters.json"  # JSON is YAML
    adapters.write_text(json.dumps({slug: {**config, **(adapters_over or {}).get(slug, {})}
                                    for slug, config in ADAPTERS.items()}))
    # Its own servers, and its own sandbox state file (Stack puts one in its data directory, under tmp_path).
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "SANDBOX_STATE_FILE")}
    ports = {name: str(free_port()) for name in ("INTAKE_PORT", "DISPATCHER_PORT", "OUTCOMES_PORT", "SANDBOX_PORT",
                                                  "SANDBOX_SMTP_PORT")}
    env.update(ports)
    env.update({
        "SANDBOX_URL": f"http://127.0.0.1:{ports['SANDBOX_PORT']}",
        "DISPATCHER_CALLBACK_BASE_URL": f"http://127.0.0.1:{ports['DISPATCHER_PORT']}",
        "ADAPTERS_FILE": str(adapters), "POLL_INTERVAL_S": "1", "POLL_TICK_S": "0.5",
        "SANDBOX_POLICY": "removed=1", "SANDBOX_DECISION_DELAY_S": "0.2",
        "TOPIC_PARTITIONS": "3", "KAFKA_SESSION_TIMEOUT_MS": "3000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "DELIVERY_BACKOFF_BASE_S": "0.2", "DELIVERY_BACKOFF_CAP_S": "2", "BREAKER_RESET_S": "1",
        "BREAKER_MAX_RESET_S": "2", "SCHEDULER_ENABLED": "false", "LOG_LEVEL": "INFO",
        "KAFKA_WATCH_S": "0.5",  # how soon a service sees the broker came back empty (kill_and_restart_kafka)
    })
    env.update(overrides)
    return env


@asynccontextmanager
async def running_stack(tmp_path: Path, crash: dict[str, str] | None = None, adapters_over: dict | None = None,
                        **overrides: str):
    """The whole stack on servers of its own; crash maps a service to its TAKEDOWN_CRASH_AT."""
    stack = Stack(tmp_path / "stack", kafka_port=free_port(), env=stack_env(tmp_path, adapters_over, **overrides))
    try:
        await asyncio.to_thread(stack.start_infrastructure)
        for name in ("sandbox", "outcomes", "dispatcher", "intake"):
            stack.spawn(name, **({"TAKEDOWN_CRASH_AT": crash[name]} if crash and name in crash else {}))
        for name in ("sandbox", "outcomes", "dispatcher", "intake"):
            await eventually(lambda n=name: asyncio.to_thread(stack.healthy, n), 90, f"{name} to start")
        yield stack
    finally:
        await asyncio.to_thread(stack.stop_all)


async def restart_when_dead(stack: Stack, name: str, timeout: float = 120) -> int:
    """Wait for a service to die (a crash point fired), start it again without the crash, wait
    until it is healthy; its exit code (-9 for SIGKILL)."""
    child = stack.children[name]
    await eventually(lambda: _exited(child), timeout, f"{name} to reach its crash point")
    stack.spawn(name)
    await eventually(lambda: asyncio.to_thread(stack.healthy, name), 90, f"{name} to restart")
    return child.returncode


async def _exited(child: subprocess.Popen) -> bool:
    return child.poll() is not None


def submissions(count: int, run: str | None = None) -> list[dict]:
    """count referrals with unique idempotency keys, spread over the platforms."""
    run = run or uuid.uuid4().hex[:8]
    platforms = list(URLS)
    return [{"url": URLS[platforms[i % len(platforms)]].format(key=f"{run}-{i}", n=10**9 + i),
             "category": "people_smuggling", "idempotency_key": f"{run}-{i}", "case_reference": f"FAULT-{run}"}
            for i in range(count)]


@dataclass
class Agency:
    """Refers items the way an agency system should: over HTTP in batches and straight onto
    referrals.inbound (each record signed afresh), retrying anything not acknowledged (an error, a
    503, a dropped connection) with the same idempotency key until it is. identity: the NCA's demo
    credentials (token, signing_secret)."""

    intake: str
    bootstrap: str
    identity: dict
    acknowledged: set[str] = field(default_factory=set)
    refusals: Counter = field(default_factory=Counter)  # what made it retry, by status or error
    via: Counter = field(default_factory=Counter)  # acknowledgements by path: "http", "kafka"

    def tally(self) -> Counter:
        """Acknowledgements by path and refusals so far; later.tally() - earlier one is what a window saw."""
        return Counter({f"acknowledged over {path}": n for path, n in self.via.items()}) + self.refusals

    async def refer(self, items: list[dict], batch: int = 100, deadline_s: float = 180) -> None:
        """Half over the batch API, half onto referrals.inbound, until every item is acknowledged."""
        half = len(items) // 2
        await asyncio.gather(self.over_http(items[:half], batch, deadline_s), self.over_kafka(items[half:], deadline_s))

    async def over_http(self, items: list[dict], batch: int = 100, deadline_s: float = 180) -> None:
        deadline = time.monotonic() + deadline_s
        async with httpx.AsyncClient(base_url=self.intake, timeout=10,
                                     headers={"Authorization": f"Bearer {self.identity['token']}"}) as client:
            for start in range(0, len(items), batch):
                chunk = items[start:start + batch]
                while not await self._post(client, chunk):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"intake did not acknowledge within {deadline_s}s: {self.refusals}")
                    await asyncio.sleep(0.2)  # a client's retry delay, not a synchronisation

    async def _post(self, client: httpx.AsyncClient, chunk: list[dict]) -> bool:
        try:
            response = await client.post("/v1/referrals/batch", json={"referrals": chunk})
        except httpx.HTTPError as exc:
            self.refusals[type(exc).__name__] += 1
            return False
        if response.status_code != 202:
            self.refusals[response.status_code] += 1
            return False
        results = response.json()["results"]
        assert all(r["status"] in ("accepted", "duplicate") for r in results), results
        self.acknowledged.update(item["idempotency_key"] for item in chunk)
        self.via["http"] += len(chunk)
        return True

    async def over_kafka(self, items: list[dict], deadline_s: float = 180) -> None:
        deadline = time.monotonic() + deadline_s
        pending = list(items)
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker did not acknowledge within {deadline_s}s: {self.refusals}")
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                        request_timeout_ms=5000)
            try:
                await producer.start()
                futures = [(item, await self._send(producer, item)) for item in pending]
                for item, future in futures:
                    try:
                        await future
                        self.acknowledged.add(item["idempotency_key"])
                        self.via["kafka"] += 1
                    except KafkaError as exc:
                        self.refusals[type(exc).__name__] += 1
            except KafkaError as exc:
                self.refusals[type(exc).__name__] += 1
            finally:
                await producer.stop()
            pending = [i for i in pending if i["idempotency_key"] not in self.acknowledged]


    async def _send(self, producer: AIOKafkaProducer, item: dict):
        value = json.dumps(item).encode()
        headers = signed_headers("NCA", self.identity["signing_secret"], value)
        return await producer.send(topics.REFERRALS_INBOUND, value, key=item["idempotency_key"].encode(),
                                   headers=[(k, v.encode()) for k, v in headers.items()])

    @classmethod
    def of(cls, stack: Stack, bootstrap: str | None = None) -> "Agency":
        """The NCA referring into stack, signed in with its demo credentials."""
        return cls(stack.url("intake"), bootstrap or stack.env["KAFKA_BOOTSTRAP_SERVERS"],
                   stack.credentials["agencies"]["NCA"])


class Trail:
    """What the audit trail and the outcomes tables say, read straight from Postgres."""

    def __init__(self, database_url: str):
        self.engine = create_async_engine(database_url)

    async def close(self) -> None:
        await self.engine.dispose()

    async def histories(self) -> dict[str, Counter]:
        """idempotency key -> how many times each event type is in its referral's history."""
        async with self.engine.connect() as conn:
            if not (await conn.execute(text("SELECT to_regclass('outcomes.audit_events')"))).scalar():
                return {}
            keys = dict((await conn.execute(text(
                "SELECT referral_id, data->>'idempotency_key' FROM outcomes.audit_events "
                "WHERE event_type = 'referral.submitted'"))).all())
            rows = (await conn.execute(text(
                "SELECT referral_id, event_type, count(*) FROM outcomes.audit_events GROUP BY 1, 2"))).all()
        histories: dict[str, Counter] = {}
        for referral_id, event_type, count in rows:
            histories.setdefault(keys.get(referral_id, f"unknown:{referral_id}"), Counter())[event_type] += count
        submitted = Counter(keys.values())
        for key, count in submitted.items():  # two referrals for one key would show as 2 submissions
            histories[key]["referral.submitted"] = count
        return histories

    async def complete(self, keys: set[str]) -> bool:
        """Whether every key's referral has its whole history recorded (at least once)."""
        histories = await self.histories()
        return all(key in histories and all(histories[key][t] >= 1 for t in HISTORY) for key in keys)

    async def statuses(self) -> Counter:
        """status/outcome of every referral, '/anomalous' added where its history has an impossible
        transition (events recorded out of their order, or twice)."""
        async with self.engine.connect() as conn:
            return Counter(dict((await conn.execute(text(
                "SELECT status || '/' || outcome || CASE WHEN anomalies = '[]' THEN '' ELSE '/anomalous' END, "
                "count(*) FROM outcomes.referrals GROUP BY 1"))).all()))


async def tickets(sandbox: str) -> Counter:
    """Tickets the platforms opened, per referral id."""
    async with httpx.AsyncClient() as client:
        return Counter(t["reference"] for t in (await client.get(f"{sandbox}/admin/tickets", timeout=30)).json())


def audit_verify(database_url: str) -> subprocess.CompletedProcess:
    """`takedown audit verify`, as an auditor would run it."""
    return subprocess.run([sys.executable, "-m", "services.cli", "audit", "verify"], capture_output=True,
                          text=True, env={**os.environ, "DATABASE_URL": database_url}, timeout=120)


async def check_everything(stack: Stack, agency: Agency, timeout: float = 180) -> dict:
    """Wait for every acknowledged referral's history, then compare sets; a summary to print."""
    trail = Trail(stack.env["DATABASE_URL"])
    try:
        await eventually(lambda: trail.complete(agency.acknowledged), timeout,
                         f"the complete history of {len(agency.acknowledged)} acknowledged referrals", interval=0.5)
        histories = await trail.histories()
        statuses = await trail.statuses()
    finally:
        await trail.close()
    seen = await tickets(stack.url("sandbox"))

    assert set(histories) == agency.acknowledged, "only acknowledged referrals, each under its own key"
    wrong = {k: dict(h) for k, h in histories.items() if any(h[t] != 1 for t in HISTORY) or sum(h.values()) != 3}
    assert not wrong, f"{len(wrong)} histories are not exactly once each, e.g. {list(wrong.items())[:3]}"
    assert statuses == Counter({"decided/removed": len(agency.acknowledged)}), statuses
    assert len(seen) == len(agency.acknowledged), "a ticket for each referral"
    assert set(seen.values()) == {1}, f"at most one ticket per dispatch: {seen.most_common(3)}"
    verified = audit_verify(stack.env["DATABASE_URL"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return {"referrals": len(agency.acknowledged), "refusals": dict(agency.refusals),
            "verify": verified.stdout.strip().splitlines()[-1]}
