"""The dispatcher's HTTP routes under bad input: platforms' callbacks and operators' answers.

A callback that does not verify is refused (401) before its body is read as JSON; one that does
verify but carries garbage is refused too, never a 5xx. Unknown fields in a decision object are
ignored, as docs/platform-apis.md promises platforms (a tolerant reader); unknown enum values are not.
"""

import json
import time
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dispatcher.adapters.http import hex_signature
from shared import webhooks
from tests.fuzz.conftest import wait_until
from tests.fuzz.payloads import (FUZZ, assert_clear_refusal, depths, json_headers, looking_like_attacks, nested,
                                 undecodable)

PLATFORMS = ["facebook", "instagram", "youtube", "x", "tiktok", "telegram", "other", "myspace", "%00", "a" * 300]
SIGNED = ("facebook", "other")
DECISION = {"visibility": ["content_removed"], "ground": "illegal_content", "decided_at": "2026-11-22T10:00:00Z"}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | looking_like_attacks(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)


@pytest.fixture(scope="module")
def dispatcher(stack):
    with stack.client("dispatcher") as client:
        client.operator = stack.headers("operator")  # the manual answers' identity; callbacks carry none
        yield client


@pytest.fixture(scope="module")
def ticket(stack) -> str:
    """The ticket of a referral reported by e-mail: an operator records its answer by hand."""
    with stack.client("intake") as intake, stack.client("outcomes") as outcomes:
        response = intake.post("/v1/referrals", json={"url": "https://t.me/fuzz_channel",
                                                      "category": "people_smuggling"})
        assert response.status_code == 202, response.text
        path = f"/v1/referrals/{response.json()['referral_id']}"
        wait_until(lambda: outcomes.get(path).json().get("ticket_id"), 60, "the telegram ticket")
        return outcomes.get(path).json()["ticket_id"]


def signed(platform: str, body: bytes) -> dict[str, str]:
    """Headers signing body as the sandbox's facebook (meta) or other (generic webhook) would."""
    if platform == "facebook":
        return {"X-Hub-Signature-256": hex_signature("sandbox-meta-app-secret", body)}
    return webhooks.sign(["whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="], body, webhooks.new_message_id(),
                         int(time.time()))


def assert_still_serving(dispatcher) -> None:
    assert dispatcher.get("/health").json()["status"] == "ok"


def test_unsigned_garbage_on_every_callback_route_gets_a_clear_4xx(dispatcher):
    body = st.one_of(st.binary(max_size=3000), undecodable(), depths().map(lambda d: nested(d).encode()),
                     JSON.map(lambda v: json.dumps(v).encode()))

    @FUZZ
    @given(platform=st.sampled_from(PLATFORMS), body=body)
    def unsigned(platform, body):
        assert_clear_refusal(dispatcher.post(f"/v1/callbacks/{platform}", content=body, headers=json_headers()),
                             401, 404)

    unsigned()
    assert_still_serving(dispatcher)


def test_signed_garbage_gets_a_clear_4xx(dispatcher):
    """What only a platform holding the secret could send: deep, odd, or unstorable JSON."""
    entry = st.fixed_dictionaries({}, optional={
        "report_id": JSON, "ticket_id": JSON, "external_reference": JSON, "reference": JSON, "decision": JSON,
        "information_request": JSON}) | JSON
    payload = st.one_of(
        st.builds(lambda e: json.dumps({"object": "takedown_report", "entry": [e]}).encode(), entry),
        entry.map(lambda e: json.dumps(e).encode()), depths().map(lambda d: nested(d, "object").encode()),
        st.sampled_from([b'{"report_id": "a\\u0000b", "reference": "x"}', b'{"ticket_id": "\\ud800"}',
                         b'{"object": "takedown_report", "entry": [{"report_id": "\\u0000", '
                         b'"external_reference": "00000000-0000-0000-0000-000000000000", "decision": {}}]}']))

    @FUZZ
    @given(platform=st.sampled_from(SIGNED), body=payload)
    def signed_garbage(platform, body):
        headers = json_headers(**signed(platform, body))
        assert_clear_refusal(dispatcher.post(f"/v1/callbacks/{platform}", content=body, headers=headers), 401, 409)

    signed_garbage()
    assert_still_serving(dispatcher)


def test_an_operators_answer_in_any_shape_is_recorded_or_refused_never_a_5xx(dispatcher, ticket):
    envelope = st.one_of(JSON, st.fixed_dictionaries({}, optional={"decision": JSON, "information_request": JSON}),
                         st.builds(lambda extra, explanation: {"decision": {**DECISION, **extra,
                                                                            "explanation": explanation}},
                                   st.dictionaries(st.text(max_size=10), JSON, max_size=3), looking_like_attacks()))

    @FUZZ
    @given(envelope=envelope)
    def any_shape(envelope):
        response = dispatcher.post(f"/v1/tickets/telegram/{ticket}/answer", json=envelope, headers=dispatcher.operator)
        if response.status_code != 202:
            assert_clear_refusal(response, 422)

    any_shape()
    assert_still_serving(dispatcher)


@pytest.mark.parametrize("text", ["a\\u0000b", "\\ud800", "x\\udfff"])
@pytest.mark.parametrize("field", ["explanation", "question"])
def test_text_postgres_cannot_store_in_an_answer_gets_422(dispatcher, ticket, text, field):
    """It would reach the audit trail as an event outcomes cannot store."""
    answer = ({"decision": {**DECISION, "explanation": "\ue000"}} if field == "explanation" else
              {"information_request": {"question": "\ue000", "requested_at": "2026-11-22T10:00:00Z"}})
    body = json.dumps(answer).replace("\\ue000", text)
    response = dispatcher.post(f"/v1/tickets/telegram/{ticket}/answer", content=body,
                               headers=json_headers(**dispatcher.operator))
    assert field in str(assert_clear_refusal(response, 422))


def test_odd_ticket_ids_and_platforms_in_the_path_get_a_clear_4xx(dispatcher):
    ticket_ids = st.one_of(looking_like_attacks().map(lambda s: quote(s, safe="")),
                           st.sampled_from(["%00", "a%00b", "%ED%A0%80", "%FF", "x" * 5000]))

    @FUZZ
    @given(platform=st.sampled_from(PLATFORMS), ticket_id=ticket_ids)
    def odd_path(platform, ticket_id):
        ticket_id = ticket_id or "%20"
        response = dispatcher.post(f"/v1/tickets/{platform}/{ticket_id}/answer", json={"decision": DECISION},
                                   headers=dispatcher.operator)
        assert_clear_refusal(response, 404, 409, 422)  # 409: a platform that answers through its API

    odd_path()
    assert_still_serving(dispatcher)


@pytest.mark.parametrize("platform", SIGNED)
@pytest.mark.parametrize("body", [nested(10_000).encode(), nested(10_000, "object").encode(),
                                  b'{"ticket_id": "a\\u0000b", "reference": "00000000-0000-0000-0000-000000000000"}',
                                  b'{"object": "takedown_report", "entry": [{"report_id": "\\u0000", '
                                  b'"external_reference": "00000000-0000-0000-0000-000000000000"}]}'],
                         ids=["deep-list", "deep-object", "nul-ticket", "nul-report"])
def test_a_signed_callback_too_deep_to_parse_or_naming_an_unstorable_ticket_is_refused(dispatcher, platform, body):
    response = dispatcher.post(f"/v1/callbacks/{platform}", content=body, headers=json_headers(**signed(platform, body)))
    assert "callback refused" in assert_clear_refusal(response, 401)


@pytest.mark.parametrize("ticket_id", ["%00", "a%00b"])
def test_a_ticket_id_with_a_nul_character_gets_422_naming_it(dispatcher, ticket_id):
    response = dispatcher.post(f"/v1/tickets/telegram/{ticket_id}/answer", json={"decision": DECISION},
                               headers=dispatcher.operator)
    assert ["path", "ticket_id"] in [e["loc"] for e in assert_clear_refusal(response, 422)]
