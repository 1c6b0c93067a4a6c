"""The broker loses everything mid-flow (issue 10): Postgres is the source of truth, so nothing
accepted is stranded.

- Tansu SIGKILLed while thousands of referrals are in flight and started again, empty (no topics,
  no offsets, no groups), on the same port: the services find it, their consumers read the
  recreated topics from the start, and what was lost with the broker is published again from
  the outboxes and put back on the lanes by the reconciler.
- `takedown run` stopped and started again mid-flow (Postgres keeps its data, the broker starts
  empty, the sandbox remembers its tickets as platforms do).

Either way every acknowledged referral reaches its decision exactly once, each platform opened one
ticket per dispatch (re-drives carry the same idempotency key), and the chain verifies. Referrals
are acknowledged over HTTP here: a record an agency published onto an embedded broker that lost
it before intake read it is not intake's to recover (docs/guarantees.md).
"""

import asyncio

from services.supervisor import Stack
from tests.faults.harness import Agency, check_everything, running_stack, submissions
from tests.faults.kit import sandbox_stats
from tests.support import eventually

COUNT = 2000
QUICK = {"REDRIVE_AFTER_S": "5", "RECONCILE_EVERY_S": "1"}


async def _reports_at_least(stack: Stack, count: int) -> bool:
    return (await sandbox_stats(stack))["reports"] >= count


async def test_the_broker_killed_mid_flow_and_started_empty_strands_nothing(tmp_path):
    async with running_stack(tmp_path, **QUICK) as stack:
        agency = Agency.of(stack)
        referring = asyncio.ensure_future(agency.over_http(submissions(COUNT), batch=50, deadline_s=300))
        await eventually(lambda: _reports_at_least(stack, 200), 120, "reports reaching the platforms", interval=0.1)
        await asyncio.to_thread(stack.crash_broker)
        stats_at_crash = await sandbox_stats(stack)
        await asyncio.to_thread(stack.restart_broker)
        await referring
        summary = await check_everything(stack, agency, timeout=300)
    in_flight = COUNT - stats_at_crash["reports"]
    print(f"broker killed with {in_flight} of {COUNT} referrals not yet reported;", summary)
    assert in_flight > 0, "the broker was lost with work in flight"


async def test_takedown_run_stopped_and_started_mid_flow_strands_nothing(tmp_path):
    async with running_stack(tmp_path, **QUICK) as stack:
        agency = Agency.of(stack)
        await agency.over_http(submissions(COUNT // 2), batch=100)
        await eventually(lambda: _reports_at_least(stack, 100), 120, "reports reaching the platforms", interval=0.1)
        env = {k: v for k, v in stack.env.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        await asyncio.to_thread(stack.stop_all)
        again = Stack(stack.data_dir, kafka_port=stack.kafka_port, env=env)
        try:
            await asyncio.to_thread(again.start)
            summary = await check_everything(again, agency, timeout=300)
        finally:
            await asyncio.to_thread(again.stop_all)
    print("takedown run stopped and started mid-flow;", summary)
