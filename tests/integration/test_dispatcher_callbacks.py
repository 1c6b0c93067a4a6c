"""Platforms' decision callbacks through the dispatcher's HTTP route, with the real adapters and the
sandbox standing in for the platforms: the generic webhook (Standard Webhooks) and Meta
(X-Hub-Signature-256), each refused with 401 and the reason when stale, replayed, signed with a
secret no longer held or, for the webhook, signed for another platform.

The sandbox's own callbacks are taken first; then the sandbox decides nothing, and each test posts
what a platform would, signed with the secrets the sandbox holds."""

import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from services.dispatcher import db
from services.dispatcher.adapters.base import InvalidCallback
from services.dispatcher.adapters.http import hex_signature
from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.adapters.webhook import WebhookAdapter, WebhookConfig
from services.dispatcher.app import MIGRATIONS, create_app
from services.dispatcher.config import DispatcherSettings
from services.dispatcher.decisions import Decisions
from services.sandbox.app import create_app as create_sandbox
from services.sandbox.callbacks import decide
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects import meta
from services.sandbox.state import Ticket
from shared import db as shared_db
from shared import topics, webhooks
from shared.embedded import free_port
from shared.events import Platform
from tests.fakes import referral
from tests.integration.test_dispatcher import submit, wait_for_events
from tests.support import serving

WEBHOOK_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="  # the sandbox's
OLD_WEBHOOK_SECRET = "whsec_b2xkLXdlYmhvb2stc2VjcmV0LWtleQ=="
FORGOTTEN_WEBHOOK_SECRET = "whsec_Zm9yZ290dGVuLXdlYmhvb2stc2VjcmV0"
APP_SECRET, OLD_APP_SECRET = "sandbox-meta-app-secret", "old-meta-app-secret"
ADAPTERS = {"webhook": {"platforms": "other,telegram", "previous_secret": OLD_WEBHOOK_SECRET},
            "telegram": {"enabled": "false"}, "meta": {"previous_app_secret": OLD_APP_SECRET}}
DECISION = {"visibility": ["content_removed"], "ground": "illegal_content", "decided_at": "2026-11-22T10:00:00Z"}


@dataclass
class Stack:
    api: httpx.AsyncClient
    kafka: str

    async def ticket_for(self, platform: Platform) -> tuple[str, str]:
        """A referral reported to platform (through the sandbox): its id and the platform's ticket."""
        ref = referral(platform)
        await submit(self.kafka, ref)
        [dispatched] = await wait_for_events(self.kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 1)
        return str(ref.referral_id), dispatched.data.ticket_id

    async def call_back(self, platform: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.api.post(f"/v1/callbacks/{platform}", content=body,
                                   headers={"Content-Type": "application/json", **headers})

    async def decided(self, count: int) -> list:
        return await wait_for_events(self.kafka, topics.TAKEDOWN_DECISIONS, "takedown.decided", count)


@asynccontextmanager
async def dispatcher_and_sandbox(settings_env: dict, policy: str = "none=1"):
    """The dispatcher built from its settings, as `takedown dispatcher` builds it, and the sandbox
    (by default, deciding nothing: the tests post the callbacks)."""
    async with serving(create_sandbox(SandboxSettings(sandbox_policy=policy, sandbox_decision_delay_s=0))) as sandbox:
        port = free_port()
        settings = DispatcherSettings(**settings_env, sandbox_url=sandbox, adapters=ADAPTERS,
                                      dispatcher_callback_base_url=f"http://127.0.0.1:{port}")
        async with serving(create_app(settings), port=port) as url, httpx.AsyncClient(base_url=url) as api:
            yield Stack(api, settings_env["kafka_bootstrap_servers"])


def webhook_callback(rid: str, ticket: str, platform: str = "other") -> bytes:
    return json.dumps({"ticket_id": ticket, "reference": rid, "platform": platform, "decision": DECISION}).encode()


def signed(body: bytes, secret: str = WEBHOOK_SECRET, age_s: float = 0) -> dict[str, str]:
    return webhooks.sign([secret], body, webhooks.new_message_id(), int(time.time() - age_s))


def meta_callback(rid: str, ticket: str, age_s: float = 0) -> bytes:
    entry = {"report_id": ticket, "external_reference": rid, "time": int(time.time() - age_s), "decision": DECISION}
    return json.dumps({"object": "takedown_report", "entry": [entry]}).encode()


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    return response.json()["detail"]


@pytest.mark.parametrize("platform", [Platform.other, Platform.facebook])
async def test_the_sandboxs_own_signed_callbacks_are_taken(settings_env, platform):
    async with dispatcher_and_sandbox(settings_env, policy="removed=1") as stack:
        rid, ticket = await stack.ticket_for(platform)
        [decided] = await stack.decided(1)

    assert (str(decided.referral_id), decided.data.ticket_id, decided.actor) == (rid, ticket, f"platform:{platform}")


async def test_a_webhook_callback_is_taken_once_and_the_same_webhook_id_again_is_refused_as_a_replay(settings_env):
    async with dispatcher_and_sandbox(settings_env) as stack:
        rid, ticket = await stack.ticket_for(Platform.other)
        body = webhook_callback(rid, ticket)
        headers = signed(body)
        taken = await stack.call_back("other", body, headers)
        replayed = await stack.call_back("other", body, headers)
        [decided] = await stack.decided(1)

    assert taken.status_code == 202, taken.text
    assert refusal(replayed) == "callback refused: replayed: this callback was accepted before"
    assert (str(decided.referral_id), decided.data.ticket_id) == (rid, ticket)


async def test_stale_future_dated_misdirected_or_wrongly_signed_webhook_callbacks_are_refused_saying_why(
        settings_env):
    async with dispatcher_and_sandbox(settings_env) as stack:
        rid, ticket = await stack.ticket_for(Platform.other)
        body = webhook_callback(rid, ticket)
        stale = await stack.call_back("other", body, signed(body, age_s=301))
        ahead = await stack.call_back("other", body, signed(body, age_s=-301))
        misdirected = await stack.call_back("telegram", body, signed(body))
        forgotten = await stack.call_back("other", body, signed(body, FORGOTTEN_WEBHOOK_SECRET))
        rotated_out = await stack.call_back("other", body, signed(body, OLD_WEBHOOK_SECRET))
        decided = await stack.decided(1)

    assert refusal(stale).startswith("callback refused: stale: signed 30")
    assert "in the future" in refusal(ahead)
    assert refusal(misdirected) == "callback refused: signed for another platform ('other'), not telegram"
    assert refusal(forgotten) == "callback refused: wrong signature"
    assert rotated_out.status_code == 202, "signed with the secret being rotated out: still taken"
    assert len(decided) == 1, "nothing refused was published"
    for response in (stale, ahead, misdirected, forgotten):
        assert "whsec_" not in response.text


async def test_a_meta_callback_is_taken_once_checked_for_staleness_and_verified_with_either_app_secret(settings_env):
    async with dispatcher_and_sandbox(settings_env) as stack:
        rid, ticket = await stack.ticket_for(Platform.facebook)
        body, stale = meta_callback(rid, ticket), meta_callback(rid, ticket, age_s=301)
        taken = await stack.call_back("facebook", body, {"X-Hub-Signature-256": hex_signature(APP_SECRET, body)})
        replayed = await stack.call_back("facebook", body, {"X-Hub-Signature-256": hex_signature(OLD_APP_SECRET,
                                                                                                  body)})
        too_old = await stack.call_back("facebook", stale, {"X-Hub-Signature-256": hex_signature(APP_SECRET, stale)})
        again = meta_callback(rid, ticket, age_s=1)  # the same decision sent anew: another delivery
        rotated_out = await stack.call_back("facebook", again,
                                            {"X-Hub-Signature-256": hex_signature(OLD_APP_SECRET, again)})
        await stack.decided(1)

    assert taken.status_code == 202, taken.text
    assert "replayed" in refusal(replayed), "signed anew with the other secret, it is the same callback"
    assert refusal(too_old).startswith("callback refused: stale: an entry's time is 30")
    assert rotated_out.status_code == 202, rotated_out.text



async def test_a_meta_webhook_the_sandbox_joined_from_several_decisions_is_taken_with_each_of_them(settings_env):
    async with dispatcher_and_sandbox(settings_env) as stack:
        refs = [referral(Platform.facebook) for _ in range(3)]
        await submit(stack.kafka, *refs)
        dispatched = await wait_for_events(stack.kafka, topics.REFERRALS_DISPATCH, "referral.dispatched", 3)
        notify = meta.notifier(SandboxSettings())
        callbacks = []
        for event in dispatched:
            ticket = Ticket(ticket_id=event.data.ticket_id, dialect="meta", platform=Platform.facebook,
                            reference=str(event.referral_id), url="https://facebook.example/post/1",
                            callback_url="http://dispatcher/v1/callbacks/facebook", received_at=datetime.now(UTC))
            decide(ticket, "removed")
            callbacks.append(notify(ticket))
        joined = callbacks[0].join(callbacks)
        taken = await stack.call_back("facebook", joined.body, joined.headers(joined.body))
        decided = await stack.decided(3)

    assert (taken.status_code, taken.json()["answers"]) == (202, 3), taken.text
    assert sorted(str(e.referral_id) for e in decided) == sorted(str(r.referral_id) for r in refs)

# -- what is remembered: an accepted callback with its decision, and only while a replay is fresh --------

@pytest.fixture
async def engine(database_url):
    await shared_db.migrate(database_url, MIGRATIONS, db.SCHEMA)
    engine = shared_db.make_engine(database_url)
    yield engine
    await engine.dispose()


async def test_a_callback_is_taken_with_kafka_down_its_decision_kept_in_the_outbox_and_a_replay_refused(engine):
    registry = AdapterRegistry()
    registry.register(WebhookAdapter(WebhookConfig()))
    decisions = Decisions(registry, {}, engine)  # no broker at all: the decision waits in the outbox
    ref = referral(Platform.other)
    async with engine.begin() as conn:
        await db.open_ticket(conn, "other", "W1", ref.referral_id, "webhook", None)
    body = webhook_callback(str(ref.referral_id), "W1")
    headers = signed(body)

    verified = decisions.verify_callback(Platform.other, headers, body)
    assert await decisions.accept_callback(Platform.other, verified) == 1
    with pytest.raises(InvalidCallback, match="replayed"):
        await decisions.accept_callback(Platform.other, decisions.verify_callback(Platform.other, headers, body))
    async with engine.connect() as conn:
        queued = (await conn.execute(select(db.OUTBOX.table))).all()
        [status] = (await conn.execute(select(db.tickets.c.status))).scalars()
    assert [(row.topic, row.headers["ce_type"], row.awaiting) for row in queued] == [
        (topics.TAKEDOWN_DECISIONS, "takedown.decided", ["outcomes"])]
    assert status == db.DECIDED


async def test_an_accepted_callback_is_forgotten_once_a_replay_of_it_would_be_stale_anyway(engine):
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        assert await db.first_acceptance(conn, "webhook", "webhook-id:old", now - timedelta(seconds=1))
        assert await db.first_acceptance(conn, "webhook", "webhook-id:fresh", now + timedelta(minutes=6))
    async with engine.begin() as conn:
        assert await db.first_acceptance(conn, "webhook", "webhook-id:next", now + timedelta(minutes=6))
        assert not await db.first_acceptance(conn, "webhook", "webhook-id:fresh", now + timedelta(minutes=6))
    async with engine.connect() as conn:
        kept = (await conn.execute(select(db.callbacks_seen.c.replay_key))).scalars().all()
    assert sorted(kept) == ["webhook-id:fresh", "webhook-id:next"]
