"""Consumer groups rebalancing while referrals flow: members of outcomes and of the dispatcher
join and leave (cleanly by SIGTERM, and by SIGKILL) and nothing is lost or recorded twice.

Topics have 3 partitions here, so a second and a third member get partitions of their own, and
a member that leaves hands its partitions (and whatever it had not committed) to the others.
After each membership change the audit trail must grow by work referred after it: each
configuration did real work.
"""

import asyncio

from tests.faults.harness import Agency, check_everything, running_stack, submissions
from tests.faults.kit import Members, audit_head, trail_grows

COUNT = 1000  # in waves: one more with each membership change, so there is always work to share
WAVES = 5
STEP_EVENTS = 100  # events recorded under each membership before the next change


async def test_members_joining_and_leaving_while_referrals_flow_lose_and_duplicate_nothing(tmp_path):
    async with running_stack(tmp_path, TOPIC_PARTITIONS="3") as stack:
        agency = Agency.of(stack)
        items = submissions(COUNT)
        waves = [items[i::WAVES] for i in range(WAVES)]
        members = Members(stack)
        changes = [  # two joins and two leaves per group, the second leave by SIGKILL
            lambda: asyncio.gather(members.join("outcomes", "outcomes-2"), members.join("dispatcher", "dispatcher-2")),
            lambda: asyncio.gather(members.join("outcomes", "outcomes-3"), members.join("dispatcher", "dispatcher-3")),
            lambda: asyncio.gather(members.leave("outcomes-2"), members.leave("dispatcher-2")),
            lambda: asyncio.gather(members.leave("outcomes-3", kill=True), members.leave("dispatcher-3", kill=True)),
        ]
        referring = [asyncio.ensure_future(agency.refer(waves[0]))]
        heads = [await trail_grows(stack, STEP_EVENTS, since=0)]
        for change, wave in zip(changes, waves[1:], strict=True):
            # Half the wave is on its way while the membership changes, half is referred after:
            # the new membership must record work it alone could have done.
            referring.append(asyncio.ensure_future(agency.refer(wave[::2])))
            await change()
            before = await audit_head(stack)
            referring.append(asyncio.ensure_future(agency.refer(wave[1::2])))
            heads.append(await trail_grows(stack, STEP_EVENTS, since=before))
        await asyncio.gather(*referring)
        summary = await check_everything(stack, agency)
    print(f"rebalances: audit trail at {heads[1:]} of {3 * COUNT} events after each change; exits {members.exits};",
          summary)
    assert members.exits == {"outcomes-2": "clean", "dispatcher-2": "clean", "outcomes-3": -9, "dispatcher-3": -9}
