"""An agency escalates, appeals, answers or withdraws a referral it made: each becomes a
lifecycle event on the referral's partition, and escalations and appeals are dispatched again.
The agency is the caller's (its bearer token's); to any other agency the referral does not exist."""

import httpx
import pytest

from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.config import DispatcherSettings
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from shared import topics
from shared.embedded import free_port
from shared.auth import keys
from shared.events import from_kafka
from tests.fakes import FakeAdapter
from tests.support import TopicReader, bearer, headers_of, serving

EVIDENCE = {"sha256": "b" * 64, "captured_at": "2026-11-20T10:00:00Z"}


@pytest.fixture
async def intake(settings_env, credentials):
    """An HTTP client of intake, signed in as the NCA."""
    async with serving(create_intake(IntakeSettings(**settings_env))) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer(credentials["agencies"]["NCA"]["token"])) as client:
            yield client


@pytest.fixture
def border_force(credentials) -> dict[str, str]:
    """The headers that make a request Border Force's instead of the NCA's."""
    return bearer(credentials["agencies"]["BorderForce"]["token"])


async def referred(intake: httpx.AsyncClient) -> str:
    response = await intake.post("/v1/referrals", json={"url": "https://fb.com/groups/boats",
                                                        "category": "people_smuggling", "notes": "first report"})
    assert response.status_code == 202, response.text
    return response.json()["referral_id"]


async def events_on_submitted(kafka: str, count: int) -> list:
    async with TopicReader(kafka, topics.REFERRALS_SUBMITTED) as reader:
        records = await reader.wait_for(lambda rs: len(rs) >= count, what=f"{count} events")
    return [from_kafka(headers_of(r), r.value) for r in records]


async def test_each_action_becomes_an_event_by_the_agency_and_redispatches_count_up(intake, kafka):
    rid = await referred(intake)

    escalated = await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": "no answer"})
    appealed = await intake.post(f"/v1/referrals/{rid}/appeal", json={"reason": "new video", "evidence": [EVIDENCE]})
    answered = await intake.post(f"/v1/referrals/{rid}/information", json={"answer": "post 3"})
    withdrawn = await intake.post(f"/v1/referrals/{rid}/withdraw", json={})
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


async def test_only_the_referring_agency_can_act_and_only_on_a_referral_that_exists(intake, border_force, credentials):
    rid = await referred(intake)

    naming_another = await intake.post(f"/v1/referrals/{rid}/withdraw", json={"agency": "BorderForce"})
    by_another = await intake.post(f"/v1/referrals/{rid}/withdraw", json={}, headers=border_force)
    unknown = await intake.post("/v1/referrals/00000000-0000-4000-8000-000000000000/withdraw", json={})
    empty = await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": ""})
    by_an_auditor = await intake.post(f"/v1/referrals/{rid}/withdraw", json={},
                                      headers=bearer(credentials["auditor"]["token"]))
    async with httpx.AsyncClient(base_url=intake.base_url) as anonymous:
        by_nobody = await anonymous.post(f"/v1/referrals/{rid}/withdraw", json={})

    assert (naming_another.status_code, by_another.status_code, unknown.status_code) == (403, 404, 404)
    assert (empty.status_code, by_an_auditor.status_code, by_nobody.status_code) == (422, 403, 401)
    assert empty.json()["detail"][0]["loc"] == ["body", "reason"]
    assert by_nobody.headers["WWW-Authenticate"] == "Bearer"


async def test_an_escalated_referral_is_reported_again_under_a_key_of_its_own(intake, settings_env, kafka):
    adapter = FakeAdapter()
    registry = AdapterRegistry()
    registry.register(adapter)
    dispatcher = create_dispatcher(DispatcherSettings(**settings_env), registry=registry)
    async with serving(dispatcher, port=free_port()):
        rid = await referred(intake)
        await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": "still up after 72 h"})
        await intake.post(f"/v1/referrals/{rid}/withdraw", json={})
        async with TopicReader(kafka, topics.REFERRALS_DISPATCH) as reader:
            records = await reader.wait_for(lambda rs: len(rs) >= 2, what="two dispatches")

    dispatches = [from_kafka(headers_of(r), r.value).data for r in records]
    assert sorted(d.dispatch for d in dispatches) == [1, 2]
    assert sorted(c.delivery_key for c in adapter.calls) == sorted([rid, f"{rid}/2"])
    assert len({d.ticket_id for d in dispatches}) == 2


async def test_a_referral_is_dispatched_again_three_times_at_most_then_409_and_nothing_more_is_queued(intake, kafka):
    rid = await referred(intake)

    allowed = [await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": "still up"}),
               await intake.post(f"/v1/referrals/{rid}/appeal", json={"reason": "new video"}),
               await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": "still up, again"})]
    refused = [await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": "one more time"}),
               await intake.post(f"/v1/referrals/{rid}/appeal", json={"reason": "and more evidence"})]
    answered = await intake.post(f"/v1/referrals/{rid}/information", json={"answer": "post 3"})
    events = await events_on_submitted(kafka, 5)

    assert [r.status_code for r in allowed] == [202] * 3 and [r.json()["dispatch"] for r in allowed] == [2, 3, 4]
    assert [r.status_code for r in refused] == [409, 409]
    assert "3 times already" in refused[0].json()["detail"]
    assert answered.status_code == 202, "only re-dispatches are limited"
    assert [e.type for e in events] == ["referral.submitted", "referral.escalated", "referral.appealed",
                                        "referral.escalated", "referral.information_supplied"]


async def test_another_agency_acting_on_a_referral_finds_nothing_and_nothing_is_queued(intake, kafka, border_force):
    rid = await referred(intake)

    answers = [await intake.post(f"/v1/referrals/{rid}/{action}", json=body, headers=border_force)
               for action, body in (("escalate", {"reason": "mine now"}), ("appeal", {"reason": "mine now"}),
                                    ("information", {"answer": "mine now"}), ("withdraw", {}))]
    own = await intake.post(f"/v1/referrals/{rid}/escalate", json={"reason": "no answer"})
    events = await events_on_submitted(kafka, 2)

    assert [r.status_code for r in answers] == [404] * 4
    assert all(r.json()["detail"] == f"no referral {rid}" for r in answers), "as if it did not exist"
    assert own.status_code == 202 and own.json()["dispatch"] == 2, "the refused re-dispatches counted for nothing"
    assert [(e.type, e.actor) for e in events] == [("referral.submitted", "agency:NCA"),
                                                   ("referral.escalated", "agency:NCA")]


async def test_an_actions_actor_is_the_caller_whatever_the_body_or_an_x_actor_header_says(intake, kafka, credentials):
    rid = await referred(intake)
    nca_key = keys.parse(credentials["agencies"]["NCA"]["token"])[0]

    naming_another = await intake.post(f"/v1/referrals/{rid}/information",
                                       json={"agency": "BorderForce", "answer": "from Border Force"})
    naming_itself = await intake.post(f"/v1/referrals/{rid}/information", json={"agency": "NCA", "answer": "post 3"})
    claiming_another = await intake.post(f"/v1/referrals/{rid}/withdraw", json={},
                                         headers={"X-Actor": "agency:BorderForce"})
    events = await events_on_submitted(kafka, 3)

    assert naming_another.status_code == 403 and "BorderForce" in naming_another.json()["detail"]
    assert (naming_itself.status_code, claiming_another.status_code) == (202, 202)
    assert [e.type for e in events] == ["referral.submitted", "referral.information_supplied", "referral.withdrawn"]
    assert {(e.actor, e.credential) for e in events} == {("agency:NCA", f"key:{nca_key}")}
    assert events[1].data.answer == "post 3"
