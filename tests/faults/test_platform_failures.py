"""Platforms failing for a while as their referrals flow: each report still made exactly once.

Three platforms fail at once, each its own way, for FAILURE_S (the sandbox's admin outage):
facebook answers 503 with Retry-After, x answers 500, youtube holds every request past the
adapter's timeout and then takes the report all the same, so the dispatcher's retry is a replay
(the platform counts it under `duplicates`, and opens no second ticket). tiktok stays up.

The retry budget: a report is dead-lettered after DELIVERY_ATTEMPTS failed attempts, but while a
lane's circuit is open (or its platform said Retry-After) reports wait without spending attempts,
so a failure of FAILURE_S costs a report one or two attempts. Nothing may reach dispatch.dlq.
"""

import asyncio

import httpx

from shared import topics
from tests.faults.harness import Agency, check_everything, running_stack, submissions
from tests.faults.kit import sandbox_stats, topic_size
from tests.support import eventually

COUNT = 600
FAILURE_S = 10
TIMEOUT_S = 2  # youtube's adapter gives up on a request after this (10 s unless set)
HANG_S = 5  # and the platform holds it this long
FAILING = {"facebook": "unavailable", "x": "error", "youtube": "timeout"}


async def test_platforms_failing_for_a_while_get_every_report_exactly_once(tmp_path):
    async with running_stack(tmp_path, adapters_over={"youtube": {"timeout_s": TIMEOUT_S}}) as stack:
        agency = Agency.of(stack)
        items = submissions(COUNT)
        referring = [asyncio.ensure_future(agency.refer(items[:COUNT // 2]))]
        await eventually(lambda: _reports_at_least(stack, 100), 120, "reports reaching the platforms", interval=0.2)
        async with httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=30) as client:
            for platform, kind in FAILING.items():
                response = await client.post(f"/admin/{platform}/outage",
                                             json={"seconds": FAILURE_S, "kind": kind, "hang_s": HANG_S})
                assert response.json()["kind"] == kind
        referring.append(asyncio.ensure_future(agency.refer(items[COUNT // 2:])))  # more while they fail
        await asyncio.gather(*referring)
        summary = await check_everything(stack, agency)
        stats = (await sandbox_stats(stack))["by_platform"]
        dead = await topic_size(stack.env["KAFKA_BOOTSTRAP_SERVERS"], topics.DELIVERY_DLQ)
    failures = {p: {k: stats[p][k] for k in ("reports", "duplicates", "unavailable", "errors", "hung")}
                for p in (*FAILING, "tiktok")}
    print(f"platforms failing {FAILURE_S}s: {failures}; dead letters {dead};", summary)
    assert stats["facebook"]["unavailable"] > 0 and stats["x"]["errors"] > 0 and stats["youtube"]["hung"] > 0, \
        "each platform failed its own way while its reports came"
    assert stats["youtube"]["duplicates"] > 0, "a report the platform took after the timeout was retried as a replay"
    assert dead == 0, "a failure that ends within the retry budget dead-letters nothing"


async def _reports_at_least(stack, count: int) -> bool:
    stats = (await sandbox_stats(stack))["by_platform"]
    return all(stats[p]["reports"] >= count // len(FAILING) for p in FAILING)
