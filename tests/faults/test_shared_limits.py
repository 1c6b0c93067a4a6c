"""Two dispatcher processes on one platform stay within the platform's limit together: its rate
limit is per platform, not per process (services/dispatcher/limits.py).

Both join the dispatcher's consumer groups, so each takes some of dispatch.facebook's partitions;
each tells the platform to call back to itself, so the platform's tickets say which process
reported. What the platform received, and when, is read from the sandbox's state file.
"""

import asyncio
import sqlite3
import uuid
from collections import Counter
from pathlib import Path

import httpx

from services.dispatcher.config import DispatcherSettings
from services.sandbox.state import Ticket
from shared.embedded import free_port
from tests.faults.harness import URLS, Agency, check_everything, running_stack
from tests.support import busiest, eventually

LIMIT, BURST = 20, 5  # facebook's, for every dispatcher process together
COUNT = 300
LEASE_S = DispatcherSettings.model_fields["limit_lease_s"].default


def referrals_to_facebook(count: int) -> list[dict]:
    run = uuid.uuid4().hex[:8]
    return [{"url": URLS["facebook"].format(key=f"{run}-{i}"), "category": "people_smuggling",
             "idempotency_key": f"{run}-{i}", "case_reference": f"LIMITS-{run}"} for i in range(count)]


def received(state_file: Path) -> list[Ticket]:
    """Every report the platforms took, as the sandbox keeps it (its state file, read only)."""
    with sqlite3.connect(f"file:{state_file}?mode=ro", uri=True) as db:
        return [Ticket.model_validate_json(body) for (body,) in db.execute("SELECT body FROM tickets")]


async def test_two_dispatchers_together_stay_within_one_platforms_limit(tmp_path):
    limited = {"meta": {"rate_limit": {"per_second": LIMIT, "burst": BURST}}}
    async with running_stack(tmp_path, adapters_over=limited) as stack:
        port = free_port()
        second = f"http://127.0.0.1:{port}"
        stack.spawn("dispatcher", instance="dispatcher-2", DISPATCHER_PORT=str(port),
                    DISPATCHER_CALLBACK_BASE_URL=second)
        await eventually(lambda: asyncio.to_thread(_answers, stack, second), 120, "the second dispatcher to join")
        agency = Agency.of(stack)
        await agency.refer(referrals_to_facebook(COUNT))
        summary = await check_everything(stack, agency)
        tickets = [t for t in received(Path(stack.env["SANDBOX_STATE_FILE"])) if t.platform.value == "facebook"]

    times = [t.received_at.timestamp() for t in tickets]
    by_process = Counter(t.callback_url.split("/v1/callbacks")[0] if t.callback_url else None for t in tickets)
    peaks = {window: busiest(times, window) for window in (1, 2, 5)}
    print(f"two dispatchers, facebook at {LIMIT}/s burst {BURST}: {len(tickets)} reports in "
          f"{max(times) - min(times):.1f} s, busiest windows {peaks}, by process {dict(by_process)};", summary)
    assert len(tickets) == COUNT
    for window, most in peaks.items():
        assert most <= LIMIT * (window + LEASE_S) + BURST, f"{most} reports in {window} s"
    assert (len(times) - BURST) / (max(times) - min(times)) <= LIMIT * 1.05, "the sustained rate is the limit"
    assert by_process[second] >= COUNT * 0.1 and by_process[stack.url("dispatcher")] >= COUNT * 0.1, \
        f"both dispatchers reported: {by_process}"


def _answers(stack, url: str) -> bool:
    if stack.children["dispatcher-2"].poll() is not None:
        raise RuntimeError("dispatcher-2 exited; see its log")
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
