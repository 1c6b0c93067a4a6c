"""SIGKILL each service at each point where a crash matters, restart it, and compare sets.

The points (shared/faults.py) are before the database commit, between it and the Kafka offset
commit, and after both. Intake is killed on both its paths (the batch API and referrals.inbound
share its transaction) and in its outbox relay between publishing and deleting; the dispatcher
after the platform took a report and before anything of it was stored, after publishing what
came of it, and between lane batches; outcomes before and after its batch's commit, and
between batches.
"""

import asyncio

import pytest

from tests.faults.harness import HISTORY, Agency, Trail, check_everything, restart_when_dead, running_stack, submissions
from tests.support import eventually

COUNT = 2000
POINTS = [  # service, crash point, on which pass through it
    ("intake", "intake.before_commit", 4),
    ("intake", "intake.after_commit", 4),
    ("intake", "outbox.after_publish", 3),
    ("dispatcher", "dispatcher.reported", 300),
    ("dispatcher", "dispatcher.published", 300),
    ("dispatcher", "dispatcher.lane_batch", 6),
    ("outcomes", "outcomes.before_commit", 3),
    ("outcomes", "outcomes.after_commit", 3),
    ("outcomes", "outcomes.batch_received", 4),
]


async def test_without_faults_every_referral_is_recorded_once(tmp_path):
    async with running_stack(tmp_path) as stack:
        agency = Agency.of(stack)
        await agency.refer(submissions(COUNT))
        summary = await check_everything(stack, agency)
    print(summary)
    assert not agency.refusals


@pytest.mark.parametrize(("service", "point", "nth"), POINTS, ids=[p for _, p, _ in POINTS])
async def test_a_service_killed_at_a_crash_point_loses_and_duplicates_nothing(tmp_path, service, point, nth):
    async with running_stack(tmp_path, crash={service: f"{point}:{nth}"}) as stack:
        agency = Agency.of(stack)
        referring = asyncio.ensure_future(agency.refer(submissions(COUNT)))
        exit_code = await restart_when_dead(stack, service)
        await referring
        summary = await check_everything(stack, agency)
    print(point, summary)
    assert exit_code == -9, f"{service} must have died by SIGKILL at {point}, not {exit_code}"


async def test_postgres_killed_mid_flow_recovers_every_committed_referral(tmp_path):
    """A power cut of the database (SIGKILL of Postgres and every backend): what intake acknowledged
    was committed, so WAL recovery brings it back, and the services carry on where they were."""
    async with running_stack(tmp_path) as stack:
        agency = Agency.of(stack)
        referring = asyncio.ensure_future(agency.refer(submissions(COUNT)))
        trail = Trail(stack.env["DATABASE_URL"])
        try:
            await eventually(lambda: _some_recorded(trail), 120, "a few hundred referrals recorded", interval=0.2)
            complete_at_crash = sum(all(h[t] for t in HISTORY) for h in (await trail.histories()).values())
        finally:
            await trail.close()
        await asyncio.to_thread(stack.crash_database)
        await asyncio.to_thread(stack.start_database)
        await referring
        summary = await check_everything(stack, agency)
    print(f"complete histories just before the crash: {complete_at_crash} of {COUNT};", summary)
    assert complete_at_crash < COUNT, "the crash must land while referrals are still on their way"


async def _some_recorded(trail: Trail) -> bool:
    return len(await trail.histories()) >= 300
