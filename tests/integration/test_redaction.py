"""Nothing secret leaves a process: a platform echoing our credentials back, through the real
dispatcher, broker and logs; and database errors without their statements' parameters."""

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.dispatcher.adapters import CATALOGUE
from services.dispatcher.app import create_app
from services.dispatcher.config import DispatcherSettings
from shared import db, topics
from shared.events import Event, from_kafka, to_kafka
from shared.redact import install_log_filter
from tests.fakes import referral
from tests.support import TopicReader, headers_of, produce, serving

CLIENT_ID, CLIENT_SECRET, APP_SECRET = "test-meta", "Cl1ent/S3cret+Value=", "app-secret-9f8e7d6c"
TOKEN = "tok-Zx81-QmWq_7"
AGENCY_TOKEN, AGENCY_COOKIE = "agency-token-4e5f", "agency-cookie-6a7b"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


# Every way our credentials were sent or might be echoed: none may show anywhere.
LEAKS = (CLIENT_SECRET, quote(CLIENT_SECRET, safe=""), quote_plus(CLIENT_SECRET), b64(CLIENT_SECRET), APP_SECRET,
         b64(APP_SECRET), b64(f"{CLIENT_ID}:{CLIENT_SECRET}"), TOKEN, AGENCY_TOKEN, AGENCY_COOKIE)


class EchoingPlatform:
    """Meta's dialect: issues a token, then refuses every report with a 400 whose body echoes the
    request's Authorization header, the token request's form and our secrets, in several encodings."""

    def __init__(self):
        self.forms: list[str] = []
        self.app = FastAPI(title="echoing platform")
        self.app.add_api_route("/meta/oauth/token", self.token, methods=["POST"])
        self.app.add_api_route("/meta/v1/reports", self.refuse, methods=["POST"])

    async def token(self, request: Request) -> Response:
        self.forms.append((await request.body()).decode())
        return JSONResponse({"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600})

    async def refuse(self, request: Request) -> Response:
        echo = (f"refused; you sent Authorization: {request.headers['authorization']}; form {self.forms[-1]}; "
                f"basic {b64(f'{CLIENT_ID}:{CLIENT_SECRET}')}; {json.dumps({'app_secret': APP_SECRET})}")
        return Response(echo, status_code=400)


def settings_with(settings_env: dict, platform_url: str) -> DispatcherSettings:
    """Meta alone, at the echoing platform, its secrets configured as in production (the environment)."""
    adapters = {slug: {"enabled": False} for slug in CATALOGUE if slug != "meta"}
    adapters["meta"] = {"base_url": platform_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                        "app_secret": APP_SECRET}
    return DispatcherSettings(**settings_env, adapters=adapters)


async def first_record(kafka: str, topic: str, what: str):
    async with TopicReader(kafka, topic) as reader:
        return (await reader.wait_for(lambda rs: len(rs) >= 1, 30, what))[0]


def leaked(*texts: str) -> list[str]:
    return [leak for leak in LEAKS if any(leak in t for t in texts)]


async def test_a_platform_that_echoes_our_authorization_header_and_credentials_back_leaves_no_secret_in_logs_dead_letters_or_events(
        settings_env, kafka, caplog):
    caplog.set_level(logging.DEBUG)
    install_log_filter()  # as configure_logging does: on the root logger's handlers, pytest's included
    platform = EchoingPlatform()
    key, value, headers = to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=referral()))
    async with serving(platform.app) as url, serving(create_app(settings_with(settings_env, url))):
        await produce(kafka, topics.REFERRALS_SUBMITTED, value, key=key, headers={
            **headers, "authorization": f"Bearer {AGENCY_TOKEN}", "Cookie": f"session={AGENCY_COOKIE}"})
        dead = await first_record(kafka, topics.DELIVERY_DLQ, "the dead letter")
        event_record = await first_record(kafka, topics.REFERRALS_DISPATCH, "referral.dispatch_failed")

    event, dead_headers = from_kafka(headers_of(event_record), event_record.value), headers_of(dead)
    assert event.type == "referral.dispatch_failed" and event.data.permanent
    # The echo reached both, blanked out: the test would pass vacuously if it had been cut off.
    for reason in (event.data.reason, dead_headers["dlq_reason"]):
        assert reason.startswith("HTTP 400 from POST /meta/v1/reports: refused; you sent Authorization: ***; form ")
        assert "client_secret=***" in reason and '{"app_secret": "***"}' in reason
    assert not {"authorization", "cookie", "Cookie"} & set(dead_headers) and dead_headers["ce_type"]
    assert leaked(dead.value.decode(), json.dumps(dead_headers), event_record.value.decode(),
                  json.dumps(headers_of(event_record))) == []
    assert "Authorization: ***" in caplog.text
    assert leaked(caplog.text, *(r.getMessage() for r in caplog.records)) == []
    assert quote_plus(CLIENT_SECRET) in platform.forms[0]  # it was sent, and echoed


@pytest.mark.parametrize("engine_of", [db.make_engine, db.single_use_engine], ids=["pooled", "single-use"])
async def test_a_failing_statements_parameters_stay_out_of_its_error(database_url, engine_of):
    engine = engine_of(database_url)
    try:
        with pytest.raises(DBAPIError) as failed:
            async with engine.connect() as conn:
                await conn.execute(text("INSERT INTO nowhere (note) VALUES (:note)"), {"note": "param-secret-31"})
    finally:
        await engine.dispose()

    assert "nowhere" in str(failed.value) and "param-secret-31" not in str(failed.value)
