"""Every dialect's status API, authenticated as that dialect authenticates, showing what its callbacks
carry; and a persona dropping callbacks for good, whose tickets' decisions the status API still shows."""

import pytest
import yaml

from services.sandbox.domain import drops_callbacks
from tests.integration.test_sandbox_answers import PLATFORM_OF, settled, signed_for, status_of, view
from tests.integration.test_sandbox_api import LONG_DELAY, make_app, sandbox_client
from tests.integration.test_sandbox_dialects import DIALECTS, META, X, post_report, ticket_id_of, token
from tests.support import eventually

ID_AND_REFERENCE = {"meta": ("report_id", "external_reference"), "x": ("report_id", "reporter_reference"),
                    "youtube": ("flag_id", None), "tiktok": ("report_id", None), "webhook": ("ticket_id", "reference")}


async def decided_view(client, dialect: str, ticket_id: str) -> dict:
    async def decided():
        body = view(dialect, await status_of(client, dialect, ticket_id))
        return body if body["status"] == "decided" else None

    return await eventually(decided, 10, f"{dialect} ticket {ticket_id} to be decided")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_shows_a_ticket_open_and_then_decided_as_its_callbacks_would(dialect):
    async with sandbox_client(make_app(policy="rejected=1", delay=0.1)) as client:
        ticket_id = ticket_id_of((await post_report(client, dialect)).json())
        id_field, reference_field = ID_AND_REFERENCE[dialect]
        expected = {id_field: ticket_id, "status": "open"}
        if reference_field:
            expected[reference_field] = "referral-1"
        if dialect == "webhook":
            expected["platform"] = "other"
        assert view(dialect, await status_of(client, dialect, ticket_id)) == expected

        decided = await decided_view(client, dialect, ticket_id)
        assert decided == {**expected, "status": "decided", "decision": decided["decision"]}
        assert decided["decision"]["no_action_reason"] == "no_violation"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_answers_the_status_of_an_unknown_ticket_with_404(dialect):
    async with sandbox_client(make_app()) as client:
        assert (await status_of(client, dialect, f"{PLATFORM_OF[dialect]}-nothing")).status_code == 404


async def test_meta_and_x_show_a_status_only_to_their_own_bearer_tokens():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        meta_id = ticket_id_of((await post_report(client, "meta")).json())
        x_id = ticket_id_of((await post_report(client, "x")).json())
        meta_token, x_token = await token(client, "/meta/oauth/token", META), await token(client, "/x/oauth2/token", X)
        for headers in ({}, {"Authorization": "Bearer made-up"}, x_token):
            assert (await status_of(client, "meta", meta_id, headers)).status_code == 401, headers
        for headers in ({}, {"Authorization": "Bearer made-up"}, meta_token):
            assert (await status_of(client, "x", x_id, headers)).status_code == 401, headers


async def test_the_webhook_status_must_be_signed_for_that_ticket_and_each_signature_serves_once():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = ticket_id_of((await post_report(client, "webhook")).json())
        assert (await status_of(client, "webhook", ticket_id, {})).status_code == 401
        wrong_secret = signed_for(ticket_id, secret="whsec_bm90LXRoZS1zYW5kYm94LXNlY3JldA==")
        assert (await status_of(client, "webhook", ticket_id, wrong_secret)).status_code == 401
        for_another = await status_of(client, "webhook", ticket_id, signed_for("other-elsewhere"))
        assert for_another.status_code == 401
        headers = signed_for(ticket_id)
        assert (await status_of(client, "webhook", ticket_id, headers)).status_code == 200
        replayed = await status_of(client, "webhook", ticket_id, headers)
        assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]


async def test_meta_status_follows_the_surfaces_persona_gate():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        report_id = ticket_id_of((await post_report(client, "meta")).json())  # a facebook report
        auth = await token(client, "/meta/oauth/token", META)
        await client.post("/admin/facebook/outage", json={"seconds": 30})
        assert (await status_of(client, "meta", report_id, auth)).status_code == 503
        await client.post("/admin/facebook/outage", json={"seconds": 0})
        assert (await status_of(client, "meta", report_id, auth)).status_code == 200


# --- drop_callbacks ------------------------------------------------------------------------------


def dropping(tmp_path, share: float) -> str:
    path = tmp_path / "personas.yaml"
    path.write_text(yaml.safe_dump({"default": {"latency_ms": {"mean": 0, "jitter": 0}, "drop_callbacks": share}}))
    return str(path)


@pytest.mark.parametrize("dialect", ["meta", "x", "webhook"])
async def test_a_dropped_ticket_is_never_called_back_but_its_status_shows_the_decision(dialect, receiver, tmp_path):
    app = make_app(policy="removed=1", delay=0.05, sandbox_personas=dropping(tmp_path, 1))
    async with sandbox_client(app) as client:
        ticket_id = ticket_id_of((await post_report(client, dialect, callback_url=receiver.url)).json())
        decided = await decided_view(client, dialect, ticket_id)
        await settled(app)

        assert decided["decision"]["visibility"] == ["content_removed"]
        assert receiver.calls == [], "not sent, nor retried"
        inspected = (await client.get(f"/platforms/{PLATFORM_OF[dialect]}/reports/{ticket_id}")).json()
        assert inspected["callbacks_dropped"] is True
        assert (await client.get("/stats")).json()["by_platform"][PLATFORM_OF[dialect]]["callbacks_dropped"] == 1


async def test_a_share_of_callbacks_is_dropped_as_drawn_and_the_rest_are_delivered(receiver, tmp_path):
    app = make_app(policy="removed=1", delay=0.05, sandbox_personas=dropping(tmp_path, 0.5))
    references = [f"referral-{i}" for i in range(12)]
    dropped = {r for r in references if drops_callbacks(0.5, "tests", r)}
    assert 0 < len(dropped) < len(references), "the seed draws some of each"
    async with sandbox_client(app) as client:
        for i, reference in enumerate(references):
            response = await client.post("/x/2/reports", headers={**await token(client, "/x/oauth2/token", X),
                                                                   "Idempotency-Key": f"k-{i}"},
                                         json={"url": "https://x.com/a/status/1", "policy": "fraud",
                                               "reporter_reference": reference, "callback_url": receiver.url})
            assert response.status_code == 201
        await receiver.wait_for(len(references) - len(dropped))
        await settled(app)
        called_back = {body["reporter_reference"] for body in receiver.bodies}
        assert called_back == set(references) - dropped
        summaries = (await client.get("/admin/tickets")).json()
        assert {t["reference"] for t in summaries if t["callbacks_dropped"]} == dropped
