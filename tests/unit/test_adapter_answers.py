"""What platforms answer: signed callbacks (meta, x, webhook) and the decision object."""

import json
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.dispatcher.adapters import load
from services.dispatcher.adapters.answers import InvalidAnswer, parse_answer
from services.dispatcher.adapters.base import Decision, InformationRequest, InvalidCallback, PlatformAdapter
from services.dispatcher.adapters.http import base64_signature, hex_signature
from shared.embedded import free_port
from shared.events import AccountAction, Ground, NoActionReason, Visibility
from tests.unit.test_adapter_http import CALLBACKS, DECISION, QUESTION


@pytest.fixture
async def adapters():
    """make(slug): an adapter of that dialect (nothing is sent: callbacks are only read), closed after."""
    made: list[PlatformAdapter] = []

    def make(slug: str) -> PlatformAdapter:
        cls = load(slug)
        made.append(cls(cls.Config(base_url=f"http://127.0.0.1:{free_port()}", callback_base_url=CALLBACKS)))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


# -- callbacks and their signatures -------------------------------------------------------------------

def signed_x(body: bytes, age_s: float = 0, secret: str = "sandbox-x-consumer-secret") -> dict[str, str]:
    ts = str(int(time.time() - age_s))
    return {"X-Timestamp": ts, "X-Signature": base64_signature(secret, ts.encode() + b"." + body)}


def callbacks(rid: str, decision: dict = DECISION) -> dict[str, bytes]:
    return {slug: json.dumps(body).encode() for slug, body in {
        "meta": {"object": "takedown_report", "entry": [{"report_id": "M1", "external_reference": rid,
                                                         "decision": decision}]},
        "x": {"report_id": "X1", "reporter_reference": rid, "decision": decision, "extra": 1},
        "webhook": {"ticket_id": "W1", "reference": rid, "decision": decision}}.items()}


def signed(slug: str, body: bytes, secret: str | None = None) -> dict[str, str]:
    if slug == "x":
        return signed_x(body, secret=secret or "sandbox-x-consumer-secret")
    header = {"meta": "X-Hub-Signature-256", "webhook": "X-Takedown-Signature"}[slug]
    return {header: hex_signature(secret or f"sandbox-{slug}-{'app-' if slug == 'meta' else ''}secret", body)}


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_a_correctly_signed_callback_reads_as_the_decision(slug, adapters):
    rid = uuid4()
    body = callbacks(str(rid))[slug]
    [answer] = adapters(slug).parse_callback(signed(slug, body), body)
    assert isinstance(answer, Decision) and answer.referral_id == rid and answer.ticket_id.endswith("1")
    assert answer.visibility == (Visibility.content_removed,) and answer.decided_at == datetime(2026, 11, 22, 10,
                                                                                               tzinfo=UTC)


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_callbacks_signed_with_another_secret_tampered_or_unsigned_are_refused(slug, adapters):
    body = callbacks(str(uuid4()))[slug]
    adapter = adapters(slug)
    for headers, content in [(signed(slug, body, "another-secret"), body), (signed(slug, body), body + b"\n"),
                             ({}, body)]:
        with pytest.raises(InvalidCallback):
            adapter.parse_callback(headers, content)


@pytest.mark.parametrize("age_s, accepted", [(299, True), (301, False), (-299, True), (-301, False)])
def test_x_refuses_signatures_older_than_five_minutes_or_from_the_future(age_s, accepted, adapters):
    x, body = adapters("x"), callbacks(str(uuid4()))["x"]
    headers = signed_x(body)
    x.clock = lambda: int(headers["X-Timestamp"]) + age_s
    if accepted:
        assert x.parse_callback(headers, body)
    else:
        with pytest.raises(InvalidCallback, match="X-Timestamp"):
            x.parse_callback(headers, body)


@pytest.mark.parametrize("slug", ["meta", "x", "webhook"])
def test_a_signed_callback_with_an_invalid_decision_object_is_refused(slug, adapters):
    body = callbacks(str(uuid4()), {**DECISION, "visibility": ["content_vaporised"]})[slug]
    with pytest.raises(InvalidCallback, match="invalid decision object"):
        adapters(slug).parse_callback(signed(slug, body), body)


def test_a_meta_callback_carries_one_answer_per_entry(adapters):
    rids = [uuid4(), uuid4()]
    body = json.dumps({"object": "takedown_report", "entry": [
        {"report_id": "M1", "external_reference": str(rids[0]), "decision": DECISION},
        {"report_id": "M2", "external_reference": str(rids[1]), "information_request": QUESTION}]}).encode()
    answers = adapters("meta").parse_callback({"x-hub-signature-256": signed("meta", body)["X-Hub-Signature-256"]},
                                              body)
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
