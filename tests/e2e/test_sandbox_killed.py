"""SIGKILL the sandbox right after it took reports, start it again on the same state file: every
report it acknowledged is still there, under its key, and is decided (nothing is flushed at exit:
what a request changed is written before its answer goes out)."""

import asyncio
import os

import httpx

from services.supervisor import Stack
from shared.embedded import free_port
from tests.integration.test_sandbox_dialects import YOUTUBE_KEY, youtube_flag
from tests.support import eventually

FLAGS = 50


async def flag(client: httpx.AsyncClient, i: int) -> httpx.Response:
    return await client.post("/youtube/v1/flags", json=youtube_flag(reference=f"referral-{i}"),
                             headers={**YOUTUBE_KEY, "Idempotency-Key": f"key-{i}"})


async def test_a_sandbox_killed_after_acknowledging_reports_still_has_them_and_decides_them(tmp_path):
    (tmp_path / "logs").mkdir()
    stack = Stack(tmp_path, env={**os.environ, "SANDBOX_PORT": str(free_port()), "SANDBOX_POLICY": "removed=1",
                                 "SANDBOX_DECISION_DELAY_S": "2", "SANDBOX_STATE_FILE": str(tmp_path / "state.db")})
    try:
        stack.spawn("sandbox")
        await eventually(lambda: asyncio.to_thread(stack.healthy, "sandbox"), 60, "the sandbox to start")
        async with httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=10) as client:
            taken = [await flag(client, i) for i in range(FLAGS)]
            assert {r.status_code for r in taken} == {201}
            stack.kill("sandbox")  # with their decisions (2 s after each report) mostly still to come

            stack.spawn("sandbox")
            await eventually(lambda: asyncio.to_thread(stack.healthy, "sandbox"), 60, "the sandbox to restart")
            replayed = [await flag(client, i) for i in range(FLAGS)]
            assert [(r.status_code, r.json()["flag_id"]) for r in replayed] == [
                (200, r.json()["flag_id"]) for r in taken]

            async def all_decided() -> bool:
                polls = [await client.get(f"/youtube/v1/flags/{r.json()['flag_id']}", headers=YOUTUBE_KEY)
                         for r in taken]
                return all(p.status_code == 200 and p.json()["status"] == "decided" for p in polls)

            await eventually(all_decided, 20, f"the {FLAGS} flags to be decided", interval=0.5)
    finally:
        await asyncio.to_thread(stack.stop_all)
