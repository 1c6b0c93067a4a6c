"""SIGKILL the dispatcher while reports are in flight, restart it, and compare sets: the
platforms saw every referral exactly once, and every referral has a dispatch outcome."""

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx

from services.sandbox.app import create_app as create_sandbox
from services.sandbox.config import SandboxSettings
from shared import topics
from shared.embedded import free_port
from shared.events import Event, Platform, from_kafka, to_kafka
from tests.fakes import referral
from tests.support import TopicReader, answers_health, eventually, headers_of, produce, serving

PLATFORMS = (Platform.facebook, Platform.instagram, Platform.youtube, Platform.x, Platform.tiktok, Platform.other)
SLOW_PLATFORMS = """
default:
  latency_ms: {mean: 50, jitter: 10}
  decisions: {none: 1}
"""


@contextmanager
def dispatcher_process(env: dict, log: Path):
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "dispatcher"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def reports_seen(sandbox: str) -> tuple[int, int]:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{sandbox}/stats")).json()
    return stats["reports"], stats["duplicates"]


async def test_a_dispatcher_killed_mid_delivery_reports_each_referral_once_after_restart(
        settings_env, kafka, tmp_path):
    personas = tmp_path / "personas.yaml"
    personas.write_text(SLOW_PLATFORMS)
    refs = [referral(PLATFORMS[i % len(PLATFORMS)]) for i in range(600)]
    async with serving(create_sandbox(SandboxSettings(sandbox_personas=personas))) as sandbox:
        port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": settings_env["database_url"],
               "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500", "TOPIC_PARTITIONS": "3",
               "DISPATCHER_PORT": str(port), "DISPATCHER_CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
               "SANDBOX_URL": sandbox, "DELIVERY_BACKOFF_BASE_S": "0.1"}
        url = f"http://127.0.0.1:{port}"
        for ref in refs:
            key, value, headers = to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=ref))
            await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers=headers)

        with dispatcher_process(env, tmp_path / "dispatcher.log") as first:
            await eventually(lambda: answers_health(url), 60, "the dispatcher to start")
            await eventually(lambda: _at_least(sandbox, 100), 60, "a hundred reports to reach the platforms")
            first.send_signal(signal.SIGKILL)
            first.wait()
        seen_at_kill, _ = await reports_seen(sandbox)
        assert seen_at_kill < len(refs), "the kill must land before every report was made"

        with dispatcher_process(env, tmp_path / "dispatcher.log"):
            await eventually(lambda: answers_health(url), 60, "the dispatcher to restart")
            async with TopicReader(kafka, topics.REFERRALS_DISPATCH) as reader:
                records = await reader.wait_for(lambda rs: _referrals(rs) >= {r.referral_id for r in refs}, 120,
                                                "every referral to have a dispatch outcome")
        reports, duplicates = await reports_seen(sandbox)

    outcomes = [from_kafka(headers_of(r), r.value) for r in records]
    assert {e.type for e in outcomes} == {"referral.dispatched"}
    assert reports == len(refs), "each referral was reported exactly once"
    assert {e.referral_id for e in outcomes} == {r.referral_id for r in refs}
    assert len({e.id for e in outcomes}) == len(refs), "replayed dispatches carry the same event id"
    print(f"reports at kill: {seen_at_kill}, replays refused by the platforms: {duplicates}")


async def _at_least(sandbox: str, count: int) -> bool:
    return (await reports_seen(sandbox))[0] >= count


def _referrals(records) -> set:
    return {from_kafka(headers_of(r), r.value).referral_id for r in records}
