"""Platforms that give up on their callbacks, and a platform that asks questions (issue 10).

- facebook and x (both call back) drop half their callbacks for good (the persona's
  `drop_callbacks`): every decision so lost is found by polling the platform's status API once
  the ticket has waited WEBHOOK_POLL_AFTER_S, each recorded exactly once.
- a platform that asks the agency a question about every report decides only once the answer
  reaches it: the agency answers over HTTP, the dispatcher forwards each answer once, and the
  referral is decided.
"""

import json

import httpx
from sqlalchemy import text

from tests.faults.harness import Agency, Trail, check_everything, running_stack, submissions
from tests.faults.kit import sandbox_stats
from tests.support import eventually

COUNT = 400
DROPPING = {"facebook": 0.5, "x": 0.5}


async def test_every_decision_whose_callback_was_dropped_is_recovered_by_polling(tmp_path):
    personas = tmp_path / "personas.json"  # JSON is YAML
    personas.write_text(json.dumps({"default": {"decision_delay_s": 0.2},
                                    **{p: {"drop_callbacks": share} for p, share in DROPPING.items()}}))
    async with running_stack(tmp_path, SANDBOX_PERSONAS=str(personas), WEBHOOK_POLL_AFTER_S="3") as stack:
        agency = Agency.of(stack)
        await agency.refer(submissions(COUNT))
        summary = await check_everything(stack, agency)
        stats = (await sandbox_stats(stack))["by_platform"]
    dropped = {p: stats[p]["callbacks_dropped"] for p in DROPPING}
    print(f"callbacks dropped for good: {dropped};", summary)
    assert all(n > 10 for n in dropped.values()), dropped


async def test_a_platform_that_asks_a_question_decides_once_the_agencys_answer_reached_it(tmp_path):
    async with running_stack(tmp_path, SANDBOX_POLICY="information_request=1") as stack:
        agency = Agency.of(stack)
        items = [i for i in submissions(40) if "tiktok" in i["url"] or "youtube" in i["url"]]
        await agency.over_http(items)
        trail = Trail(stack.env["DATABASE_URL"])
        try:
            asked = await eventually(lambda: _with_status(trail, "information_requested", len(items)), 120,
                                     "every platform to ask its question")
            async with httpx.AsyncClient(base_url=stack.url("intake"), timeout=30,
                                         headers={"Authorization": f"Bearer {agency.identity['token']}"}) as client:
                for referral_id in asked:
                    answered = await client.post(f"/v1/referrals/{referral_id}/information",
                                                 json={"answer": "The video at 00:42; see case FAULT."})
                    assert answered.status_code == 202, answered.text
            decided = await eventually(lambda: _with_status(trail, "decided", len(items)), 120,
                                       "every referral decided after its answer")
            forwarded = await _count(trail, "referral.information_forwarded")
        finally:
            await trail.close()
        stats = (await sandbox_stats(stack))["by_platform"]
    assert set(decided) == set(asked)
    assert forwarded == len(items), "each answer forwarded, and recorded, once"
    assert sum(stats[p]["answers"] for p in ("tiktok", "youtube")) == len(items), "one answer per ticket"


async def _with_status(trail: Trail, status: str, count: int) -> list[str] | None:
    async with trail.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT referral_id FROM outcomes.referrals WHERE status = :s"),
                                   {"s": status})).scalars().all()
    return [str(r) for r in rows] if len(rows) >= count else None


async def _count(trail: Trail, event_type: str) -> int:
    async with trail.engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM outcomes.audit_events WHERE event_type = :t"),
                                   {"t": event_type})).scalar()
