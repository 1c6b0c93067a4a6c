"""Personas' failure behaviour over HTTP: rate limits (429), errors (500), outages (503) from the
persona file and from the admin endpoint, and latency; each counted in /stats."""

import time

import httpx
import pytest
import yaml

from services.sandbox.callbacks import Decider
from services.sandbox.personas import parse_personas
from services.sandbox.posting import Callback, callback_session
from tests.integration.test_sandbox_api import make_app, report, sandbox_client, signed
from tests.integration.test_sandbox_dialects import (META, TIKTOK_KEY, X, YOUTUBE_KEY, keyed, meta_report,
                                                     poll_until_decided, tiktok_report, token, youtube_flag)
from tests.support import eventually, serving


def persona_file(tmp_path, **platforms) -> str:
    """A persona file with the given platform entries over a fast, quiet default."""
    path = tmp_path / "personas.yaml"
    default = {"latency_ms": {"mean": 0, "jitter": 0}, "decision_delay_s": 0.05, "decisions": {"removed": 1}}
    path.write_text(yaml.safe_dump({"default": default, **platforms}))
    return str(path)


def app_with(tmp_path, **platforms):
    return make_app(policy=None, delay=None, sandbox_personas=persona_file(tmp_path, **platforms))


async def flag(client, key: str, **options):
    return await client.post("/youtube/v1/flags", json=youtube_flag(key), headers=keyed(YOUTUBE_KEY, key), **options)


async def platform_stats(client, platform: str) -> dict:
    return (await client.get("/stats")).json()["by_platform"][platform]


async def test_requests_beyond_the_burst_are_answered_429_with_a_retry_after_in_whole_seconds(tmp_path):
    app = app_with(tmp_path, youtube={"rate_limit": {"per_second": 1, "burst": 2, "retry_after_s": 3}})
    async with sandbox_client(app) as client:
        statuses = [(await flag(client, f"k-{i}")).status_code for i in range(2)]
        assert statuses == [201, 201]
        throttled = await flag(client, "k-2")
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "3"
        assert (await client.get("/youtube/v1/flags/youtube-none", headers=YOUTUBE_KEY)).status_code == 429
        assert await platform_stats(client, "youtube") == {
            "reports": 2, "duplicates": 0, "decided": 0, "requests": 4, "throttled": 2, "errors": 0,
            "unavailable": 0, "hung": 0, "answers": 0, "answer_duplicates": 0, "callbacks_dropped": 0}
        # Other platforms have budgets of their own.
        tiktok = await client.post("/tiktok/v1/reports", json=tiktok_report(), headers=keyed(TIKTOK_KEY))
        assert tiktok.status_code == 201


async def test_the_rate_limit_refills_over_time(tmp_path):
    app = app_with(tmp_path, youtube={"rate_limit": {"per_second": 20, "burst": 1}})
    async with sandbox_client(app) as client:
        assert (await flag(client, "k-0")).status_code == 201
        assert (await flag(client, "k-1")).status_code == 429

        async def refilled():
            return (await flag(client, "k-1")).status_code == 201

        await eventually(refilled, 5, "the bucket to refill")


async def test_an_error_rate_of_one_answers_every_report_500_and_opens_no_ticket(tmp_path):
    app = app_with(tmp_path, tiktok={"error_rate": 1}, other={"error_rate": 1})
    async with sandbox_client(app) as client:
        for i in range(3):
            response = await client.post("/tiktok/v1/reports", json=tiktok_report(), headers=keyed(TIKTOK_KEY))
            assert response.status_code == 500
        assert (await client.post("/platforms/other/reports", **signed(report()))).status_code == 500
        # Polls are not reports: the error rate does not touch them.
        assert (await client.get("/tiktok/v1/reports/tiktok-none", headers=TIKTOK_KEY)).status_code == 404
        stats = (await client.get("/stats")).json()
        assert stats["reports"] == 0
        assert (stats["by_platform"]["tiktok"]["errors"], stats["by_platform"]["other"]["errors"]) == (3, 1)
        assert (await flag(client, "k")).status_code == 201  # youtube's persona has no errors


async def test_an_outage_started_by_the_admin_answers_503_until_it_is_ended(tmp_path):
    async with sandbox_client(app_with(tmp_path)) as client:
        flag_id = (await flag(client, "before")).json()["flag_id"]
        started = await client.post("/admin/youtube/outage", json={"seconds": 30})
        assert started.status_code == 200
        assert started.json()["down"] is True and started.json()["until"] and started.json()["kind"] == "unavailable"

        during = await flag(client, "during")
        assert during.status_code == 503
        assert 1 <= int(during.headers["Retry-After"]) <= 30
        assert (await client.get(f"/youtube/v1/flags/{flag_id}", headers=YOUTUBE_KEY)).status_code == 503
        assert (await client.post("/tiktok/v1/reports", json=tiktok_report(),
                                  headers=keyed(TIKTOK_KEY))).status_code == 201  # only youtube is down

        ended = await client.post("/admin/youtube/outage", json={"seconds": 0})
        assert ended.json() == {"platform": "youtube", "down": False, "until": None, "kind": None}
        assert (await flag(client, "after")).status_code == 201
        await poll_until_decided(client, f"/youtube/v1/flags/{flag_id}", YOUTUBE_KEY)
        assert (await platform_stats(client, "youtube"))["unavailable"] == 2


async def test_an_error_outage_answers_500_without_retry_after_and_opens_no_ticket(tmp_path):
    async with sandbox_client(app_with(tmp_path)) as client:
        started = await client.post("/admin/youtube/outage", json={"seconds": 30, "kind": "error"})
        assert started.json()["kind"] == "error"
        failed = await flag(client, "during")
        assert failed.status_code == 500 and "Retry-After" not in failed.headers
        await client.post("/admin/youtube/outage", json={"seconds": 0})
        assert (await flag(client, "during")).status_code == 201
        stats = await platform_stats(client, "youtube")
        assert (stats["errors"], stats["reports"], stats["duplicates"]) == (1, 1, 0)


async def test_a_timeout_outage_holds_each_request_then_takes_the_report_the_client_gave_up_on(tmp_path):
    # Over a real socket: the client's timeout must be able to expire while the sandbox holds the request.
    async with serving(app_with(tmp_path)) as url, httpx.AsyncClient(base_url=url) as client:
        await client.post("/admin/youtube/outage", json={"seconds": 30, "kind": "timeout", "hang_s": 0.5})
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            await flag(client, "hung", timeout=0.1)

        async def taken():
            return (await platform_stats(client, "youtube"))["reports"] == 1

        await eventually(taken, 5, "the held report to be taken")
        assert time.monotonic() - started >= 0.5
        await client.post("/admin/youtube/outage", json={"seconds": 0})
        assert (await flag(client, "hung")).status_code in (200, 201)  # the retry, with the same key
        stats = await platform_stats(client, "youtube")
        assert (stats["hung"], stats["reports"], stats["duplicates"]) == (1, 1, 1)


async def test_an_outage_of_facebook_takes_down_the_meta_token_endpoint_and_facebook_reports(tmp_path):
    async with sandbox_client(app_with(tmp_path)) as client:
        auth = await token(client, "/meta/oauth/token", META)
        await client.post("/admin/facebook/outage", json={"seconds": 30})
        assert (await client.post("/meta/oauth/token", data=META)).status_code == 503
        assert (await client.post("/meta/v1/reports", json=meta_report(),
                                  headers=keyed(auth, "fb"))).status_code == 503
        assert (await client.post("/meta/v1/reports", json=meta_report(surface="instagram"),
                                  headers=keyed(auth, "ig"))).status_code == 201
        assert (await client.post("/x/oauth2/token", data=X)).status_code == 200
        assert (await platform_stats(client, "facebook"))["unavailable"] == 2


async def test_an_outage_window_in_the_persona_file_answers_503_while_it_lasts(tmp_path):
    app = app_with(tmp_path, x={"outages": [{"start_s": 0, "end_s": 600}]},
                   tiktok={"outages": [{"start_s": 0, "end_s": 1}]},
                   youtube={"outages": [{"start_s": 600, "end_s": 700}]})
    async with sandbox_client(app) as client:
        down = await client.post("/x/oauth2/token", data=X)
        assert down.status_code == 503 and int(down.headers["Retry-After"]) > 500
        assert (await flag(client, "k")).status_code == 201  # youtube's window has not started

        async def tiktok_back():
            response = await client.post("/tiktok/v1/reports", json=tiktok_report(), headers=keyed(TIKTOK_KEY))
            return response.status_code == 201

        assert (await client.post("/tiktok/v1/reports", json=tiktok_report(),
                                  headers=keyed(TIKTOK_KEY))).status_code == 503
        await eventually(tiktok_back, 5, "tiktok's outage window to end")

        # The admin can end a window early.
        await client.post("/admin/x/outage", json={"seconds": 0})
        assert (await client.post("/x/oauth2/token", data=X)).status_code == 200


async def test_a_persona_latency_delays_each_answer(tmp_path):
    app = app_with(tmp_path, youtube={"latency_ms": {"mean": 150, "jitter": 0}})
    async with sandbox_client(app) as client:
        started = time.monotonic()
        assert (await flag(client, "k")).status_code == 201
        assert time.monotonic() - started >= 0.15
        started = time.monotonic()
        assert (await client.post("/tiktok/v1/reports", json=tiktok_report(),
                                  headers=keyed(TIKTOK_KEY))).status_code == 201
        assert time.monotonic() - started < 0.15


async def test_reset_ends_admin_outages_and_refills_rate_limits(tmp_path):
    app = app_with(tmp_path, youtube={"rate_limit": {"per_second": 0.001, "burst": 1}})
    async with sandbox_client(app) as client:
        assert (await flag(client, "a")).status_code == 201
        assert (await flag(client, "b")).status_code == 429
        await client.post("/admin/tiktok/outage", json={"seconds": 60})
        await client.post("/reset")
        assert (await flag(client, "b")).status_code == 201
        assert (await client.post("/tiktok/v1/reports", json=tiktok_report(),
                                  headers=keyed(TIKTOK_KEY))).status_code == 201


async def test_a_callback_is_posted_again_until_the_receiver_takes_it_and_abandoned_only_after_its_time(receiver):
    decider = Decider(parse_personas({}), "seed", {})
    callback = Callback(receiver.url, b"{}", lambda body: {})
    async with callback_session() as client:
        decider.poster.client = client
        receiver.answers = [503, 503, 500]  # the dispatcher's database is down, say
        assert await decider.poster.deliver("t-1", callback) is True
        assert len(receiver.calls) == 4
        receiver.answers = [503] * 100
        assert await decider.poster.deliver("t-2", callback, give_up_s=1.0) is False
        assert len(receiver.calls) > 5, "posted again, spaced, before giving up"
