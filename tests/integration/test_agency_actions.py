"""An agency escalates, appeals, answers or withdraws a referral it made: each becomes a
lifecycle event on the referral's partition, and escalations and appeals are dispatched again."""

import httpx
import pytest

from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.config import DispatcherSettings
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from shared import topics
from shared.embedded import free_port
from shared.events import from_kafka
from tests.fakes import FakeAdapter
from tests.support import TopicReader, headers_of, serving

EVIDENCE = {"sha256": "b" * 64, "captured_at": "2026-11-20T10:00:00Z"}


@pytest.fixture
async def intake(settings_env):
    async with serving(create_intake(IntakeSettings(**settings_env))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


async def referred(intake: httpx.AsyncClient) -> str:
    response = await intake.post("/v1/referrals", json={"agency": "NCA", "url": "https://fb.com/groups/boats",
                                                        "category": "people_smuggling", "notes": "first report"})
    return response.json()["referral_id"]


async def events_on_submitted(kafka: str, count: int) -> list:
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        records = await reader.wait_for(lambda rs: len(rs) >= count, what=f"{count} events")
    return [from_kafka(headers_of(r), r.value) for r in records]


async def test_each_action_becomes_an_event_by_the_agency_and_redispatches_count_up(intake, kafka):
    rid = await referred(intake)

    escalated = await intake.post(f"/v1/referrals/{rid}/escalate", json={"agency": "NCA", "reason": "no answer"})
    appealed = await intake.post(f"/v1/referrals/{rid}/appeal",
                                 json={"agency": "NCA", "reason": "new video", "evidence": [EVIDENCE]})
    answered = await intake.post(f"/v1/referrals/{rid}/information", json={"agency": "NCA", "answer": "post 3"})
    withdrawn = await intake.post(f"/v1/referrals/{rid}/withdraw", json={"agency": "NCA"})
    events = await events_on_submitted(kafka, 5)

    assert [r.status_code for r in (escalated, appealed, answered, withdrawn)] == [202] * 4
    assert (escalated.json()["dispatch"], appealed.json()["dispatch"], answered.json()["dispatch"]) == (2, 3, None)
    assert [e.type for e in events] == ["referral.submitted", "referral.escalated", "referral.appealed",
                                        "referral.information_supplied", "referral.withdrawn"]
    assert {e.actor for e in events} == {"agency:NCA"} and {str(e.referral_id) for e in events} == {rid}
    appeal = events[2].data
    assert appeal.referral.dispatch == 3 and appeal.referral.delivery_key == f"{rid}/3"
    assert [e.sha256 for e in appeal.referral.evidence] == ["b" * 64]
    assert appeal.referral.notes == "first report\n\nDispatch 3: new video"


async def test_only_the_referring_agency_can_act_and_only_on_a_referral_that_exists(intake):
    rid = await referred(intake)

    other = await intake.post(f"/v1/referrals/{rid}/withdraw", json={"agency": "Europol"})
    unknown = await intake.post("/v1/referrals/00000000-0000-4000-8000-000000000000/withdraw", json={"agency": "NCA"})
    empty = await intake.post(f"/v1/referrals/{rid}/escalate", json={"agency": "NCA", "reason": ""})

    assert (other.status_code, unknown.status_code, empty.status_code) == (403, 404, 422)
    assert empty.json()["detail"][0]["loc"] == ["body", "reason"]


async def test_an_escalated_referral_is_reported_again_under_a_key_of_its_own(intake, settings_env, kafka):
    adapter = FakeAdapter()
    registry = AdapterRegistry()
    registry.register(adapter)
    dispatcher = create_dispatcher(DispatcherSettings(**settings_env), registry=registry)
    async with serving(dispatcher, port=free_port()):
        rid = await referred(intake)
        await intake.post(f"/v1/referrals/{rid}/escalate", json={"agency": "NCA", "reason": "still up after 72 h"})
        await intake.post(f"/v1/referrals/{rid}/withdraw", json={"agency": "NCA"})
        async with TopicReader(kafka, topics.REFERRALS_DISPATCH) as reader:
            records = await reader.wait_for(lambda rs: len(rs) >= 2, what="two dispatches")

    dispatches = [from_kafka(headers_of(r), r.value).data for r in records]
    assert sorted(d.dispatch for d in dispatches) == [1, 2]
    assert sorted(c.delivery_key for c in adapter.calls) == sorted([rid, f"{rid}/2"])
    assert len({d.ticket_id for d in dispatches}) == 2
