"""The broker frozen and the database stopped for 20 seconds while referrals flow.

Frozen broker (SIGSTOP: connections stay open, nothing answers): intake keeps accepting over
HTTP, since a referral is durable once it and its event are in Postgres (the outbox sends the
event later); producing onto referrals.inbound is refused until the broker answers again.

Stopped database: intake answers 503 over HTTP and accepts nothing; the consumers (intake's on
referrals.inbound, the dispatcher's lanes, outcomes) wait it out and commit nothing past the
records they hold. Afterwards, each time: nothing lost, nothing twice (check_everything).
"""

import asyncio

import httpx

from shared import topics
from tests.faults.harness import Agency, check_everything, running_stack, submissions
from tests.faults.kit import Clock, committed, trail_grows
from tests.support import bearer

COUNT = 400  # referred before and through the fault
DURING = 100  # referred while it is on
FAULT_S = 20
# The groups whose every record needs the database, and what they read.
HOLDING = {topics.GROUP_INTAKE: (topics.REFERRALS_INBOUND,), topics.GROUP_OUTCOMES: topics.CONSUMED["outcomes"]}


async def test_a_broker_frozen_for_20_seconds_loses_and_duplicates_nothing(tmp_path):
    async with running_stack(tmp_path) as stack:
        agency = Agency.of(stack)
        items = submissions(COUNT + DURING)
        referring = asyncio.ensure_future(agency.refer(items[:COUNT]))
        await trail_grows(stack, 200, since=0)  # mid-flow: every service has work in hand
        before = agency.tally()
        await asyncio.to_thread(stack.pause_broker)
        clock = Clock()
        try:
            over_kafka = asyncio.ensure_future(agency.over_kafka(items[COUNT + DURING // 2:]))
            await agency.over_http(items[COUNT:COUNT + DURING // 2], batch=20, deadline_s=FAULT_S)
            http_done_s = clock()
            await clock.sleep_until(FAULT_S)
            during = agency.tally() - before
        finally:
            await asyncio.to_thread(stack.resume_broker)
        await asyncio.gather(referring, over_kafka)
        summary = await check_everything(stack, agency)
    print(f"broker frozen {FAULT_S}s: during it {dict(during)}; HTTP referrals all acknowledged "
          f"{http_done_s:.1f}s into it;", summary)
    assert during["acknowledged over http"] >= DURING // 2, "intake accepts over HTTP while the broker is frozen"


async def test_a_database_stopped_for_20_seconds_gets_503s_and_loses_nothing(tmp_path):
    async with running_stack(tmp_path) as stack:
        bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
        agency = Agency.of(stack, bootstrap)
        items = submissions(COUNT + DURING)
        referring = asyncio.ensure_future(agency.refer(items[:COUNT]))
        await trail_grows(stack, 200, since=0)
        await asyncio.to_thread(stack.stop_database)
        clock = Clock()
        try:
            async with httpx.AsyncClient(base_url=stack.url("intake"), timeout=10,
                                         headers=bearer(stack.credentials["agencies"]["NCA"]["token"])) as client:
                refused = await client.post("/v1/referrals", json=items[COUNT])
            before = agency.tally()
            held = {g: await committed(bootstrap, g, *names) for g, names in HOLDING.items()}
            during_task = asyncio.ensure_future(agency.refer(items[COUNT:]))
            await clock.sleep_until(FAULT_S)
            during = agency.tally() - before
            still = {g: await committed(bootstrap, g, *names) for g, names in HOLDING.items()}
        finally:
            await asyncio.to_thread(stack.start_database)
        await asyncio.gather(referring, during_task)
        summary = await check_everything(stack, agency)
    print(f"database stopped {FAULT_S}s: during it {dict(during)}; intake's offsets held at "
          f"{held[topics.GROUP_INTAKE]};", summary)
    assert refused.status_code == 503, (refused.status_code, refused.text)
    assert refused.headers["content-type"] == "application/json" and "Retry-After" in refused.headers
    assert "nothing was accepted" in refused.json()["detail"]
    assert during[503] > 0 and during["acknowledged over http"] == 0, "intake refuses with 503 while it cannot store"
    assert during["acknowledged over kafka"] > 0, "the broker still takes submissions"
    assert 500 not in agency.refusals, f"a database outage is not an internal error: {agency.refusals}"
    assert still == held, "no consumer commits past a record it could not store"
