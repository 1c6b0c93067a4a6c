"""What platforms answer: signed callbacks (meta, x, webhook), their time and replay keys, and the decision object."""

import json
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.dispatcher.adapters import load
from services.dispatcher.adapters.answers import InvalidAnswer, parse_answer
from services.dispatcher.adapters.base import Decision, InformationRequest, InvalidCallback, PlatformAdapter
from services.dispatcher.adapters.http import base64_signature, hex_signature
from shared import webhooks
from shared.embedded import free_port
from shared.events import AccountAction, Ground, NoActionReason, Platform, Visibility
from tests.unit.test_adapter_http import CALLBACKS, DECISION, QUESTION


@pytest.fixture
async def adapters():
    """make(slug): an adapter of that dialect (nothing is sent: callbacks are only read), closed after."""
    made: list[PlatformAdapter] = []

    def make(slug: str, **config) -> PlatformAdapter:
        cls = load(slug)
        made.append(cls(cls.Config(base_url=f"http://127.0.0.1:{free_port()}", callback_base_url=CALLBACKS,
                                   **config)))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


# -- callbacks and their signatures -------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="
OLD_WEBHOOK_SECRET = "whsec_b2xkLXdlYmhvb2stc2VjcmV0LWtleQ=="
FORGOTTEN_WEBHOOK_SECRET = "whsec_Zm9yZ290dGVuLXdlYmhvb2stc2VjcmV0"
PLATFORM = {"meta": Platform.facebook, "x": Platform.x, "webhook": Platform.other}


def signed_x(body: bytes, age_s: float = 0, secret: str = "sandbox-x-consumer-secret") -> dict[str, str]:
    ts = str(int(time.time() - age_s))
    return {"X-Timestamp": ts, "X-Signature": base64_signature(secret, ts.encode() + b"." + body)}


def signed_webhook(body: bytes, age_s: float = 0, secret: str = WEBHOOK_SECRET, message_id: str = "msg_1"):
    return webhooks.sign([secret], body, message_id, int(time.time() - age_s))


def meta_entry(report_id: str, rid: str, age_s: float = 0, **answer) -> dict:
    return {"report_id": report_id, "external_reference": rid, "time": int(time.time() - age_s), **answer}


def callbacks(rid: str, decision: dict = DECISION) -> dict[str, bytes]:
    return {slug: json.dumps(body).encode() for slug, body in {
        "meta": {"object": "takedown_report", "entry": [meta_entry("M1", rid, decision=decision)]},
        "x": {"report_id": "X1", "reporter_reference": rid, "decision": decision, "extra": 1},
        "webhook": {"ticket_id": "W1", "reference": rid, "platform": "other", "decision": decision}}.items()}


def signed(slug: str, body: bytes, secret: str | None = None) -> dict[str, str]:
    if slug == "x":
        return signed_x(body, secret=secret or "sandbox-x-consumer-secret")
    if slug == "webhook":
        return signed_webhook(body, secret=secret or WEBHOOK_SECRET)
    return {"X-Hub-Signature-256": hex_signature(secret or "sandbox-meta-app-secret", body)}


def parse(adapter: PlatformAdapter, headers: dict[str, str], body: bytes, platform: Platform | None = None):
    return adapter.parse_callback(headers, body, platform or PLATFORM[adapter.slug])


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_a_correctly_signed_callback_reads_as_the_decision(slug, adapters):
    rid = uuid4()
    body = callbacks(str(rid))[slug]
    [answer] = parse(adapters(slug), signed(slug, body), body).answers
    assert isinstance(answer, Decision) and answer.referral_id == rid and answer.ticket_id.endswith("1")
    assert answer.visibility == (Visibility.content_removed,) and answer.decided_at == datetime(2026, 11, 22, 10,
                                                                                               tzinfo=UTC)


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_callbacks_signed_with_another_secret_tampered_or_unsigned_are_refused(slug, adapters):
    body = callbacks(str(uuid4()))[slug]
    adapter = adapters(slug)
    other = FORGOTTEN_WEBHOOK_SECRET if slug == "webhook" else "another-secret"
    for headers, content in [(signed(slug, body, other), body), (signed(slug, body), body + b"\n"),
                             ({}, body)]:
        with pytest.raises(InvalidCallback):
            parse(adapter, headers, content)


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_a_verified_callback_carries_what_recognises_its_replay_and_until_when(slug, adapters):
    body = callbacks(str(uuid4()))[slug]
    adapter, headers = adapters(slug), signed(slug, body)
    first, again = parse(adapter, headers, body), parse(adapter, headers, body)
    assert first.replay_key and first.replay_key == again.replay_key, "the same delivery, the same key"
    assert time.time() < first.fresh_until <= time.time() + 300
    if slug == "webhook":
        assert first.replay_key == "webhook-id:msg_1"


@pytest.mark.parametrize("age_s, accepted", [(299, True), (301, False), (-299, True), (-301, False)])
def test_x_refuses_signatures_older_than_five_minutes_or_from_the_future(age_s, accepted, adapters):
    x, body = adapters("x"), callbacks(str(uuid4()))["x"]
    headers = signed_x(body)
    x.clock = lambda: int(headers["X-Timestamp"]) + age_s
    if accepted:
        assert parse(x, headers, body)
    else:
        with pytest.raises(InvalidCallback, match="X-Timestamp"):
            parse(x, headers, body)


# 20 s either side of the 5 minutes: the entries are dated now, and checked a moment later.
@pytest.mark.parametrize("age_s, refusal", [(280, None), (-280, None), (320, "stale"), (-320, "in the future")])
def test_webhook_callbacks_are_refused_when_stale_or_dated_beyond_five_minutes_ahead(age_s, refusal, adapters):
    hook, body = adapters("webhook"), callbacks(str(uuid4()))["webhook"]
    headers = signed_webhook(body, age_s=age_s)
    if refusal is None:
        assert parse(hook, headers, body).answers
    else:
        with pytest.raises(InvalidCallback, match=refusal):
            parse(hook, headers, body)


def test_a_webhook_callback_signed_for_another_platform_is_refused(adapters):
    hook, body = adapters("webhook"), callbacks(str(uuid4()))["webhook"]
    with pytest.raises(InvalidCallback, match="signed for another platform \\('other'\\), not telegram"):
        parse(hook, signed_webhook(body), body, Platform.telegram)
    unnamed = json.dumps({k: v for k, v in json.loads(body).items() if k != "platform"}).encode()
    with pytest.raises(InvalidCallback, match="another platform"):
        parse(hook, signed_webhook(unnamed), unnamed)


def test_during_a_rotation_webhook_callbacks_signed_with_the_previous_secret_verify_and_older_ones_do_not(adapters):
    hook, body = adapters("webhook", previous_secret=OLD_WEBHOOK_SECRET), callbacks(str(uuid4()))["webhook"]
    assert parse(hook, signed_webhook(body, secret=OLD_WEBHOOK_SECRET), body).answers
    assert parse(hook, signed_webhook(body), body).answers
    with pytest.raises(InvalidCallback, match="wrong signature"):
        parse(hook, signed_webhook(body, secret=FORGOTTEN_WEBHOOK_SECRET), body)


def test_during_a_rotation_meta_callbacks_signed_with_the_previous_app_secret_verify_and_older_ones_do_not(adapters):
    meta, body = adapters("meta", app_secret="new-app-secret", previous_app_secret="sandbox-meta-app-secret"), \
        callbacks(str(uuid4()))["meta"]
    assert parse(meta, signed("meta", body, "sandbox-meta-app-secret"), body).answers
    assert parse(meta, signed("meta", body, "new-app-secret"), body).answers
    with pytest.raises(InvalidCallback, match="wrong signature"):
        parse(meta, signed("meta", body, "an-app-secret-of-long-ago"), body)


# 20 s either side of the 5 minutes: the entries are dated now, and checked a moment later.
@pytest.mark.parametrize("age_s, refusal", [(280, None), (-280, None), (320, "stale"), (-320, "in the future")])
def test_meta_callbacks_are_refused_when_an_entry_is_stale_or_dated_beyond_five_minutes_ahead(age_s, refusal,
                                                                                           adapters):
    rid = str(uuid4())
    body = json.dumps({"object": "takedown_report", "entry": [
        meta_entry("M1", rid, decision=DECISION), meta_entry("M2", rid, age_s=age_s, decision=DECISION)]}).encode()
    if refusal is None:
        assert len(parse(adapters("meta"), signed("meta", body), body).answers) == 2
    else:
        with pytest.raises(InvalidCallback, match=refusal):
            parse(adapters("meta"), signed("meta", body), body)


def test_a_meta_tolerance_set_wider_takes_an_older_entry_and_keeps_its_key_as_long(adapters):
    meta, rid = adapters("meta", callback_tolerance_s=3600), str(uuid4())
    entry = meta_entry("M1", rid, age_s=1800, decision=DECISION)
    body = json.dumps({"object": "takedown_report", "entry": [entry]}).encode()
    assert parse(meta, signed("meta", body), body).fresh_until == entry["time"] + 3600


@pytest.mark.parametrize("moment", [None, "1795000000", 1.5e9, True, 10**400])
def test_a_meta_callback_entry_without_a_time_in_unix_seconds_is_refused(moment, adapters):
    entry = {**meta_entry("M1", str(uuid4()), decision=DECISION), "time": moment}
    body = json.dumps({"object": "takedown_report", "entry": [entry]}).encode()
    with pytest.raises(InvalidCallback, match="without a time"):
        parse(adapters("meta"), signed("meta", body), body)


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_a_signed_callback_with_an_invalid_decision_object_is_refused(slug, adapters):
    body = callbacks(str(uuid4()), {**DECISION, "visibility": ["content_vaporised"]})[slug]
    with pytest.raises(InvalidCallback, match="invalid decision object"):
        parse(adapters(slug), signed(slug, body), body)


def test_a_meta_callback_carries_one_answer_per_entry(adapters):
    rids = [uuid4(), uuid4()]
    body = json.dumps({"object": "takedown_report", "entry": [
        meta_entry("M1", str(rids[0]), decision=DECISION),
        meta_entry("M2", str(rids[1]), information_request=QUESTION)]}).encode()
    answers = parse(adapters("meta"), {"x-hub-signature-256": signed("meta", body)["X-Hub-Signature-256"]},
                    body).answers
    assert [(type(a), a.referral_id) for a in answers] == [(Decision, rids[0]), (InformationRequest, rids[1])]


# -- the decision object ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    *[("visibility", [v.value]) for v in Visibility], *[("account", a.value) for a in AccountAction],
    *[("ground", g.value) for g in Ground], *[("no_action_reason", n.value) for n in NoActionReason]])
def test_every_dsa_value_is_read(field, value):
    decision = parse_answer({"decision": {**DECISION, field: value}}, "T", uuid4())
    read = getattr(decision, field)
    assert (list(read) if field == "visibility" else read) == value


@pytest.mark.parametrize("field, value", [("visibility", ["removed"]), ("account", "account_banned"),
                                          ("ground", "ILLEGAL_CONTENT"), ("no_action_reason", "busy"),
                                          ("territorial_scope", ["GBR"]), ("decided_at", "yesterday")])
def test_an_unknown_or_malformed_value_is_refused(field, value):
    with pytest.raises(InvalidAnswer, match=field):
        parse_answer({"decision": {**DECISION, field: value}}, "T", uuid4())


def test_unknown_fields_are_ignored_and_nulls_and_lower_case_scopes_are_tolerated():
    decision = parse_answer({"decision": {**DECISION, "visibility": None, "territorial_scope": ["gb", "ww"],
                                          "confidence": 0.9}, "trace": "abc"}, "T", uuid4())
    assert (decision.visibility, decision.territorial_scope) == ((), ("GB", "WW"))


@pytest.mark.parametrize("envelope", [{}, {"decision": DECISION, "information_request": QUESTION},
                                      {"decision": {k: v for k, v in DECISION.items() if k != "decided_at"}},
                                      {"information_request": {"question": ""}}])
def test_an_envelope_without_exactly_one_valid_answer_is_refused(envelope):
    with pytest.raises(InvalidAnswer):
        parse_answer(envelope, "T", uuid4())
