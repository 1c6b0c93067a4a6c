"""The whole system as `make run` starts it: one referral over HTTP and one over Kafka each
travel intake → Kafka → dispatcher → platform → outcomes → Postgres, and the history
survives a restart. Ctrl-C (SIGTERM here) leaves no process behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from shared import topics
from shared.auth import demo
from shared.embedded import free_port
from tests.support import bearer, eventually, produce_signed

LIFECYCLE = ["referral.submitted", "referral.dispatched", "takedown.decided"]


class Stack:
    """`takedown run` as a child process, on free ports, with its data in data_dir."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in ("intake", "dispatcher", "outcomes", "sandbox", "kafka", "smtp")}
        self.env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        self.env.update({f"{n.upper()}_PORT": str(p) for n, p in self.ports.items() if n not in ("kafka", "smtp")})
        self.env.update({
            "TAKEDOWN_KAFKA_PORT": str(self.ports["kafka"]),
            "SANDBOX_URL": f"http://127.0.0.1:{self.ports['sandbox']}",
            "DISPATCHER_CALLBACK_BASE_URL": f"http://127.0.0.1:{self.ports['dispatcher']}",
            "SANDBOX_POLICY": "removed=1", "SANDBOX_DECISION_DELAY_S": "0.2", "POLL_INTERVAL_S": "0.5",
            "SANDBOX_SMTP_PORT": str(self.ports["smtp"]), "ADAPTERS__TELEGRAM__SMTP_PORT": str(self.ports["smtp"]),
        })
        self.process: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def credentials(self) -> dict:
        """The demo identities, from the file `takedown run` writes."""
        return json.loads((self.data_dir / demo.FILE).read_text())

    def token(self, who: str) -> str:
        """A demo identity's token: an agency's or a person's role."""
        credentials = self.credentials()
        return credentials["agencies"][who]["token"] if who in credentials["agencies"] else credentials[who]["token"]

    def start(self) -> None:
        log_path = self.data_dir / "run.log"
        seen = log_path.stat().st_size if log_path.exists() else 0
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "--data-dir", str(self.data_dir)],
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while b"takedown is up" not in log_path.read_bytes()[seen:]:
            assert self.process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "takedown run did not come up in 120 s"
            time.sleep(0.1)

    def descendants(self) -> list[psutil.Process]:
        """Every process the stack started: services, the broker and the Postgres server."""
        procs = psutil.Process(self.process.pid).children(recursive=True)
        pg = [p for p in psutil.process_iter(["cmdline"]) if str(self.data_dir) in " ".join(p.info["cmdline"] or [])
              and p.pid != self.process.pid]
        return list({p.pid: p for p in procs + pg}.values())

    def stop(self) -> list[psutil.Process]:
        """SIGTERM, as Ctrl-C would; return whatever is still alive afterwards."""
        started = self.descendants()
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0
        self.log.close()
        gone, alive = psutil.wait_procs(started, timeout=15)
        return alive


@pytest.fixture
def stack(tmp_path):
    running = Stack(tmp_path)
    running.start()
    yield running
    if running.process.poll() is None:
        running.process.kill()


async def history_of(client: httpx.AsyncClient, outcomes: str, referral_id: str) -> list[str] | None:
    response = await client.get(f"{outcomes}/v1/referrals/{referral_id}")
    if response.status_code != 200:
        return None
    body = response.json()
    return [h["event_type"] for h in body["history"]] if body["status"] == "decided" else None


async def test_referrals_over_http_and_kafka_are_decided_with_their_history_kept_across_a_restart(stack):
    async with httpx.AsyncClient(timeout=10, headers=bearer(stack.token("auditor"))) as client:
        response = await client.post(f"{stack.url('intake')}/v1/referrals", headers=bearer(stack.token("NCA")), json={
            "url": "https://www.facebook.com/groups/crossings?fbclid=1",
            "category": "people_smuggling", "case_reference": "OP-2020-1"})
        assert response.status_code == 202
        http_id = response.json()["referral_id"]
        secret = stack.credentials()["agencies"]["BorderForce"]["signing_secret"]
        await produce_signed(stack.kafka, topics.REFERRALS_INBOUND, json.dumps({
            "url": "https://youtu.be/boats", "category": "people_smuggling",
            "idempotency_key": "bf-1"}).encode(), "BorderForce", secret)

        http_history = await eventually(lambda: history_of(client, stack.url("outcomes"), http_id), 60,
                                        "the HTTP referral to be decided")
        page = await eventually(lambda: _decided_for(client, stack.url("outcomes"), "BorderForce"), 60,
                                "the Kafka referral to be decided")
        kafka_id = page[0]["referral_id"]
        kafka_history = await history_of(client, stack.url("outcomes"), kafka_id)
        referral = (await client.get(f"{stack.url('outcomes')}/v1/referrals/{http_id}")).json()

    assert http_history == LIFECYCLE and kafka_history == LIFECYCLE
    assert referral["outcome"] == "removed" and referral["platform"] == "facebook"
    assert referral["canonical_url"] == "https://facebook.com/groups/crossings"
    assert [h["actor"] for h in referral["history"]] == ["agency:NCA", "service:dispatcher", "platform:facebook"]
    assert page[0]["platform"] == "youtube" and page[0]["canonical_url"] == "https://youtube.com/watch?v=boats"

    assert stack.stop() == [], "processes left behind after SIGTERM"

    stack.start()
    async with httpx.AsyncClient(timeout=10, headers=bearer(stack.token("auditor"))) as client:
        after = (await client.get(f"{stack.url('outcomes')}/v1/referrals/{http_id}")).json()
    assert [h["event_id"] for h in after["history"]] == [h["event_id"] for h in referral["history"]]
    assert stack.stop() == []


async def _decided_for(client: httpx.AsyncClient, outcomes: str, agency: str) -> list | None:
    response = await client.get(f"{outcomes}/v1/referrals", params={"agency": agency, "status": "decided"})
    return response.json()["items"] or None


def seed_and_wait(stack, facebook: int, youtube: int) -> subprocess.CompletedProcess:
    env = {**stack.env, "TAKEDOWN_DATA_DIR": str(stack.data_dir)}
    return subprocess.run([sys.executable, "-m", "services.cli", "seed", "--facebook", str(facebook), "--youtube",
                           str(youtube), "--intake", stack.url("intake"), "--outcomes", stack.url("outcomes"), "--wait",
                           "--timeout", "120"], env=env, capture_output=True, text=True, timeout=180)


def removed_by_platform(stack) -> tuple[int, int]:
    report = httpx.get(f"{stack.url('outcomes')}/v1/reports/attrition", params={"agency": "NCA"},
                       headers=bearer(stack.token("auditor")), timeout=10).json()
    by_platform = {row["platform"]: row for row in report["rows"]}
    return by_platform["facebook"]["removed"], by_platform["youtube"]["removed"]


def test_seed_waits_until_every_referral_it_made_is_decided(stack):
    """`takedown seed --wait` refers a set over the batch API with the agency's demo key and returns only once
    the outcomes service reports every one of them decided: a second run too, with the first run's decisions
    already in the report."""
    for run, (facebook, youtube) in enumerate(((40, 20), (30, 10)), 1):
        done = seed_and_wait(stack, facebook, youtube)

        assert done.returncode == 0, done.stderr
        total = facebook + youtube
        assert f"referred {total} pages as agency 'NCA'" in done.stdout and f"all {total} decided" in done.stdout
        assert removed_by_platform(stack) == ((40, 20) if run == 1 else (70, 30)), f"run {run} returned early"
    assert stack.stop() == []
