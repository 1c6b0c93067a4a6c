"""Each platform dialect of docs/platform-apis.md as the sandbox serves it: credentials, reports,
replays, and decisions coming back by signed callback (meta, x) or by polling (youtube, tiktok)."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from services.sandbox.domain import choose_outcome
from shared.events import Platform
from tests.integration.test_sandbox_api import LONG_DELAY, make_app, report, sandbox_client, signed
from tests.support import eventually

META = {"grant_type": "client_credentials", "client_id": "sandbox-meta", "client_secret": "sandbox-meta-secret"}
X = {"grant_type": "client_credentials", "client_id": "sandbox-x", "client_secret": "sandbox-x-secret"}
YOUTUBE_KEY = {"X-Api-Key": "sandbox-youtube-key"}
TIKTOK_KEY = {"X-Api-Key": "sandbox-tiktok-key"}
REMOVED = {"visibility": ["content_removed"], "account": None, "ground": "illegal_content",
           "territorial_scope": ["GB"], "no_action_reason": None}


def meta_report(reference="referral-1", callback_url="http://127.0.0.1:9/decisions", surface="facebook") -> dict:
    return {"surface": surface, "content_url": f"https://{surface}.com/groups/123",
            "violation_type": "human_exploitation", "external_reference": reference,
            "reporter": {"organization": "NCA", "case_number": "OP-7"},
            "evidence_hashes": [hashlib.sha256(b"screenshot").hexdigest()], "callback_url": callback_url}


def x_report(reference="referral-1", callback_url="http://127.0.0.1:9/decisions") -> dict:
    return {"url": "https://x.com/someone/status/1", "policy": "people_smuggling",
            "reporter_reference": reference, "callback_url": callback_url}


def youtube_flag(reference="referral-1") -> dict:
    return {"video_url": "https://www.youtube.com/watch?v=abc", "reason_code": "PEOPLE_SMUGGLING",
            "flagger_reference": reference, "notes": "Advertises crossings."}


def tiktok_report(reference="referral-1") -> dict:
    return {"link": "https://www.tiktok.com/@someone/video/1", "category": "fraud", "reference": reference}


async def token(client, path: str, form: dict) -> dict[str, str]:
    response = await client.post(path, data=form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    return {"Authorization": f"Bearer {body['access_token']}"}


def keyed(headers: dict, key: str | None = "key-1") -> dict:
    return {**headers, "Idempotency-Key": key} if key is not None else headers


def ticket_id_of(body: dict) -> str:
    return body.get("report_id") or body.get("flag_id") or body.get("ticket_id") or body["data"]["report_id"]


async def post_report(client, dialect: str, key: str | None = "key-1",
                      callback_url: str = "http://127.0.0.1:9/decisions") -> httpx.Response:
    """One valid report in dialect's own shape, with its credentials (and callback_url, if it calls back)."""
    if dialect == "meta":
        return await client.post("/meta/v1/reports", json=meta_report(callback_url=callback_url),
                                 headers=keyed(await token(client, "/meta/oauth/token", META), key))
    if dialect == "x":
        return await client.post("/x/2/reports", json=x_report(callback_url=callback_url),
                                 headers=keyed(await token(client, "/x/oauth2/token", X), key))
    if dialect == "youtube":
        return await client.post("/youtube/v1/flags", json=youtube_flag(), headers=keyed(YOUTUBE_KEY, key))
    if dialect == "tiktok":
        return await client.post("/tiktok/v1/reports", json=tiktok_report(), headers=keyed(TIKTOK_KEY, key))
    return await client.post("/platforms/other/reports", **signed(report(callback_url=callback_url), key))


DIALECTS = ["meta", "x", "youtube", "tiktok", "webhook"]


async def poll_until_decided(client, path: str, headers: dict) -> dict:
    async def decided():
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        return response.json() if response.json()["status"] == "decided" else None

    return await eventually(decided, 10, f"{path} to be decided")


# --- shared by every dialect ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_refuses_a_report_without_an_idempotency_key_with_422(dialect):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        assert (await post_report(client, dialect, key=None)).status_code == 422
        assert (await client.get("/stats")).json()["reports"] == 0


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_answers_a_replay_with_the_first_ticket_and_counts_it(dialect):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        first, again = await post_report(client, dialect), await post_report(client, dialect)
        assert (first.status_code, again.status_code) == (201, 200)
        assert ticket_id_of(first.json()) == ticket_id_of(again.json())
        duplicate = again.json().get("duplicate", again.json().get("data", {}).get("duplicate"))
        assert duplicate is True
        stats = (await client.get("/stats")).json()
        assert (stats["reports"], stats["duplicates"]) == (1, 1)


# --- meta -----------------------------------------------------------------------------------------


async def test_meta_token_then_report_then_a_callback_signed_with_the_app_secret(receiver):
    async with sandbox_client(make_app(policy="removed=1")) as client:
        auth = await token(client, "/meta/oauth/token", META)
        response = await client.post("/meta/v1/reports", json=meta_report("referral-9", receiver.url),
                                     headers=keyed(auth))
        assert response.status_code == 201
        report_id = response.json()["report_id"]
        assert response.json() == {"report_id": report_id, "state": "received", "duplicate": False}

        [(headers, raw)] = await receiver.wait_for(1)
        expected = "sha256=" + hmac.new(b"sandbox-meta-app-secret", raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-hub-signature-256"], expected)
        body = json.loads(raw)
        assert body["object"] == "takedown_report"
        [entry] = body["entry"]
        assert (entry["report_id"], entry["external_reference"]) == (report_id, "referral-9")
        assert abs(entry["time"] - time.time()) < 60, "dated in unix seconds, as Meta's entries are"
        assert {k: entry["decision"][k] for k in REMOVED} == REMOVED


async def test_meta_reports_on_instagram_are_instagram_tickets():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        auth = await token(client, "/meta/oauth/token", META)
        response = await client.post("/meta/v1/reports", json=meta_report(surface="instagram"), headers=keyed(auth))
        assert response.json()["report_id"].startswith("instagram-")
        assert (await client.get("/stats")).json()["by_platform"]["instagram"]["reports"] == 1


async def test_meta_refuses_bad_client_credentials_with_401_and_a_wrong_grant_with_400():
    async with sandbox_client(make_app()) as client:
        assert (await client.post("/meta/oauth/token", data={**META, "client_secret": "guess"})).status_code == 401
        assert (await client.post("/meta/oauth/token", data={**META, "client_id": "sandbox-x"})).status_code == 401
        assert (await client.post("/meta/oauth/token", data={**META, "grant_type": "password"})).status_code == 400


async def test_meta_refuses_a_report_without_a_valid_bearer_token_with_401():
    async with sandbox_client(make_app()) as client:
        x_token = await token(client, "/x/oauth2/token", X)
        for headers in ({}, {"Authorization": "Bearer made-up"}, x_token):
            response = await client.post("/meta/v1/reports", json=meta_report(), headers=keyed(headers))
            assert response.status_code == 401, headers
        assert (await client.get("/stats")).json()["reports"] == 0


async def test_meta_refuses_an_unknown_violation_type_with_422():
    async with sandbox_client(make_app()) as client:
        auth = await token(client, "/meta/oauth/token", META)
        body = {**meta_report(), "violation_type": "people_smuggling"}
        assert (await client.post("/meta/v1/reports", json=body, headers=keyed(auth))).status_code == 422


# --- x --------------------------------------------------------------------------------------------


async def test_x_token_then_report_then_a_callback_signed_with_timestamp_and_consumer_secret(receiver):
    async with sandbox_client(make_app(policy="rejected=1")) as client:
        auth = await token(client, "/x/oauth2/token", X)
        response = await client.post("/x/2/reports", json=x_report("referral-5", receiver.url), headers=keyed(auth))
        assert response.status_code == 201
        report_id = response.json()["data"]["report_id"]
        assert report_id.startswith("x-")

        [(headers, raw)] = await receiver.wait_for(1)
        timestamp = headers["x-timestamp"]
        assert abs(int(timestamp) - time.time()) < 300
        mac = hmac.new(b"sandbox-x-consumer-secret", timestamp.encode() + b"." + raw, hashlib.sha256).digest()
        assert hmac.compare_digest(headers["x-signature"], "sha256=" + base64.b64encode(mac).decode())
        body = json.loads(raw)
        assert (body["report_id"], body["reporter_reference"]) == (report_id, "referral-5")
        assert body["decision"]["no_action_reason"] == "no_violation"


async def test_x_refuses_bad_client_credentials_and_reports_without_its_own_token_with_401():
    async with sandbox_client(make_app()) as client:
        assert (await client.post("/x/oauth2/token", data={**X, "client_secret": "guess"})).status_code == 401
        meta_token = await token(client, "/meta/oauth/token", META)
        for headers in ({}, {"Authorization": "Bearer made-up"}, meta_token):
            assert (await client.post("/x/2/reports", json=x_report(), headers=keyed(headers))).status_code == 401


# --- youtube --------------------------------------------------------------------------------------


async def test_youtube_flag_is_open_then_decided_when_polled():
    async with sandbox_client(make_app(policy="removed=1", delay=0.1)) as client:
        response = await client.post("/youtube/v1/flags", json=youtube_flag(), headers=keyed(YOUTUBE_KEY))
        assert response.status_code == 201
        flag_id = response.json()["flag_id"]
        first = (await client.get(f"/youtube/v1/flags/{flag_id}", headers=YOUTUBE_KEY)).json()
        assert first == {"flag_id": flag_id, "status": "open"}
        decided = await poll_until_decided(client, f"/youtube/v1/flags/{flag_id}", YOUTUBE_KEY)
        assert set(decided) == {"flag_id", "status", "decision"}
        assert {k: decided["decision"][k] for k in REMOVED} == REMOVED


async def test_youtube_refuses_a_wrong_or_missing_api_key_with_403():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        for headers in ({}, {"X-Api-Key": "guess"}, TIKTOK_KEY):
            assert (await client.post("/youtube/v1/flags", json=youtube_flag(),
                                      headers=keyed(headers))).status_code == 403
        flag_id = (await client.post("/youtube/v1/flags", json=youtube_flag(),
                                     headers=keyed(YOUTUBE_KEY))).json()["flag_id"]
        assert (await client.get(f"/youtube/v1/flags/{flag_id}", headers={"X-Api-Key": "guess"})).status_code == 403


async def test_youtube_polling_an_unknown_flag_is_404():
    async with sandbox_client(make_app()) as client:
        assert (await client.get("/youtube/v1/flags/youtube-nothing", headers=YOUTUBE_KEY)).status_code == 404


async def test_youtube_refuses_a_reason_code_that_is_not_an_upper_cased_category_with_422():
    async with sandbox_client(make_app()) as client:
        body = {**youtube_flag(), "reason_code": "people_smuggling"}
        assert (await client.post("/youtube/v1/flags", json=body, headers=keyed(YOUTUBE_KEY))).status_code == 422


# --- tiktok ---------------------------------------------------------------------------------------


async def test_tiktok_decides_in_the_response_when_the_decision_delay_is_zero():
    async with sandbox_client(make_app(policy="removed=1", delay=0)) as client:
        response = await client.post("/tiktok/v1/reports", json=tiktok_report(), headers=keyed(TIKTOK_KEY))
        assert response.status_code == 201
        body = response.json()
        assert (body["status"], body["duplicate"]) == ("decided", False)
        assert {k: body["decision"][k] for k in REMOVED} == REMOVED
        polled = (await client.get(f"/tiktok/v1/reports/{body['report_id']}", headers=TIKTOK_KEY)).json()
        assert polled == {"report_id": body["report_id"], "status": "decided", "decision": body["decision"]}


async def test_tiktok_with_a_decision_delay_answers_open_and_is_decided_when_polled():
    async with sandbox_client(make_app(policy="account_suspended=1", delay=0.1)) as client:
        body = (await client.post("/tiktok/v1/reports", json=tiktok_report(), headers=keyed(TIKTOK_KEY))).json()
        assert {k: body[k] for k in ("status", "duplicate")} == {"status": "open", "duplicate": False}
        assert "decision" not in body
        decided = await poll_until_decided(client, f"/tiktok/v1/reports/{body['report_id']}", TIKTOK_KEY)
        assert decided["decision"]["account"] == "account_suspended"


async def test_tiktok_refuses_a_wrong_api_key_with_403():
    async with sandbox_client(make_app(delay=0)) as client:
        assert (await client.post("/tiktok/v1/reports", json=tiktok_report(),
                                  headers=keyed({"X-Api-Key": "guess"}))).status_code == 403
        report_id = (await client.post("/tiktok/v1/reports", json=tiktok_report(),
                                       headers=keyed(TIKTOK_KEY))).json()["report_id"]
        assert (await client.get(f"/tiktok/v1/reports/{report_id}", headers=YOUTUBE_KEY)).status_code == 403


async def test_tiktok_under_the_shipped_persona_answers_each_report_in_the_response_as_its_fate_says():
    app = make_app(policy=None, delay=None)
    async with sandbox_client(app) as client:
        expected = {"none": "open", "information_request": "information_requested"}
        for i in range(30):
            reference = f"referral-{i}"
            body = (await client.post("/tiktok/v1/reports", json=tiktok_report(reference),
                                      headers=keyed(TIKTOK_KEY, f"k-{i}"))).json()
            fate = choose_outcome(app.state.sandbox.personas[Platform.tiktok].decisions, "tests", reference)
            assert body["status"] == expected.get(fate, "decided"), (reference, fate)
