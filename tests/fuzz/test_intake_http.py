"""Intake's HTTP routes under bad input: every refusal a clear 4xx, never a 5xx, and intake still
serves afterwards.

Unknown fields are refused: a submission or an action naming a field intake does not know gets
422 naming it (pydantic extra="forbid"), so a misspelt optional field is never silently dropped.
"""

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.payloads import (FUZZ, assert_clear_refusal, broken_utf8_json, json_headers, named_fields, nested,
                                 undecodable, wrong_types)

VALID = {"agency": "NCA", "url": "https://www.facebook.com/groups/fuzz", "category": "people_smuggling",
         "case_reference": "OP-FUZZ", "idempotency_key": "k", "notes": "n", "priority": "high",
         "evidence": [{"sha256": "ab" * 32, "captured_at": "2026-11-20T10:00:00Z"}]}
TEXT_FIELDS = ("agency", "url", "category", "case_reference", "idempotency_key", "notes", "priority")
ACTIONS = {"escalate": {"reason": "r"}, "appeal": {"reason": "r"}, "information": {"answer": "a"},
           "withdraw": {"reason": "r"}}
LIMITS = {"agency": 200, "url": 4096, "case_reference": 200, "idempotency_key": 200, "notes": 10_000}


@pytest.fixture(scope="module")
def intake(stack):
    with stack.client("intake") as client:
        yield client


@pytest.fixture(scope="module")
def referral_id(intake) -> str:
    """A referral the agency actions can name."""
    response = intake.post("/v1/referrals", json={**VALID, "idempotency_key": "fuzz-actions"})
    assert response.status_code == 202, response.text
    return response.json()["referral_id"]


def routes(referral: str) -> list[tuple[str, dict]]:
    """Every intake route that takes a body, with a valid body for it."""
    return [("/v1/referrals", VALID), ("/v1/referrals/batch", {"referrals": [VALID]}),
            *((f"/v1/referrals/{referral}/{action}", {"agency": "NCA", **body}) for action, body in ACTIONS.items())]


def assert_refused_item(response, field: str | None = None) -> None:
    """A batch of one item answered 202, the item refused with errors (one naming field, if given)."""
    [result] = response.json()["results"]
    assert result["status"] == "invalid" and result["errors"], result
    assert field is None or field in {e["field"] for e in result["errors"]}, result


def assert_still_serving(intake) -> None:
    """After a barrage: /health answers and a valid referral is still accepted."""
    assert intake.get("/health").json()["status"] == "ok"
    response = intake.post("/v1/referrals", json={**VALID, "idempotency_key": str(uuid.uuid4())})
    assert response.status_code == 202, response.text


def test_random_bytes_get_a_clear_4xx_on_every_route(intake, referral_id):
    @FUZZ
    @given(route=st.sampled_from(routes(referral_id)), body=st.binary(max_size=3000))
    def random_bytes(route, body):
        path, _ = route
        assert_clear_refusal(intake.post(path, content=body, headers=json_headers()), 400, 422)

    random_bytes()
    assert_still_serving(intake)


def test_bytes_that_are_not_utf8_inside_a_field_get_a_clear_4xx(intake, referral_id):
    @FUZZ
    @given(route=st.sampled_from(routes(referral_id)), junk=undecodable(), data=st.data())
    def not_utf8(route, junk, data):
        path, valid = route
        in_item = path.endswith("/batch")
        valid = VALID if in_item else valid
        field = data.draw(st.sampled_from(sorted(k for k, v in valid.items() if isinstance(v, str))))
        body = broken_utf8_json(valid, field, junk)
        body = b'{"referrals": [' + body + b"]}" if in_item else body
        response = intake.post(path, content=body, headers=json_headers())
        if in_item and response.status_code == 202:  # the batch parsed; the item is refused in its result
            assert_refused_item(response, field)
        else:
            assert_clear_refusal(response, 400, 422)

    not_utf8()
    assert_still_serving(intake)


def test_a_value_of_the_wrong_type_gets_422_naming_its_field(intake):
    @FUZZ
    @given(field=st.sampled_from(TEXT_FIELDS), value=wrong_types())
    def wrong_type(field, value):
        detail = assert_clear_refusal(intake.post("/v1/referrals", json={**VALID, field: value}), 422)
        assert (field,) in named_fields(detail), detail

    wrong_type()
    assert_still_serving(intake)


def test_text_postgres_cannot_store_gets_422_naming_its_field(intake, referral_id):
    """NUL and lone surrogates: JSON carries them, Postgres refuses them."""
    @FUZZ
    @given(route=st.sampled_from(routes(referral_id)), bad=st.sampled_from(["\\u0000", "\\ud800", "a\\udfffb"]),
           data=st.data())
    def unstorable(route, bad, data):
        path, valid = route
        if path.endswith("/batch"):
            path, valid = "/v1/referrals", VALID  # a batch answers such an item in its results
        field = data.draw(st.sampled_from(sorted(k for k, v in valid.items() if isinstance(v, str))))
        body = json.dumps({**valid, field: "\ue000"}).replace("\\ue000", bad)
        detail = assert_clear_refusal(intake.post(path, content=body, headers=json_headers()), 422)
        assert (field,) in named_fields(detail), detail

    unstorable()
    assert_still_serving(intake)


@pytest.mark.parametrize("text", ["\\u0000", "a\\u0000", "\\ud800", "\\udfff\\ud800"])
@pytest.mark.parametrize("field", ["agency", "notes"])
def test_a_nul_or_an_unpaired_surrogate_is_refused_with_a_readable_422(intake, field, text):
    """Before: a 500 from Postgres (NUL), or from encoding the 422 that echoed the surrogate."""
    body = json.dumps({**VALID, "idempotency_key": str(uuid.uuid4()), field: "\ue000"}).replace("\\ue000", text)
    detail = assert_clear_refusal(intake.post("/v1/referrals", content=body, headers=json_headers()), 422)
    assert [e["loc"] for e in detail] == [["body", field]]


@pytest.mark.parametrize("depth", [64, 500, 999, 1000, 10_000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_deeply_nested_json_gets_a_clear_4xx_wherever_it_is(intake, referral_id, depth, kind):
    """Python's parser stops near 1,000 levels (400); below that, the value fails validation (422)."""
    deep = nested(depth, kind)
    for path, valid in routes(referral_id):
        for body in (deep, json.dumps({**valid, "agency": "\ue000"}).replace('"\\ue000"', deep)):
            assert_clear_refusal(intake.post(path, content=body, headers=json_headers()), 400, 422)
    response = intake.post("/v1/referrals/batch", content='{"referrals": [%s]}' % deep, headers=json_headers())
    if response.status_code == 202:  # the batch parsed; the item is refused in its result
        assert_refused_item(response)
    else:
        assert_clear_refusal(response, 400, 422)
    assert_still_serving(intake)


def test_unknown_fields_get_422_naming_each_of_them(intake, referral_id):
    known = set(VALID) | {"reason", "answer", "referrals"}
    names = st.text(min_size=1, max_size=30).filter(lambda k: k not in known)
    @FUZZ
    @given(route=st.sampled_from(routes(referral_id)),
           extra=st.dictionaries(names, st.one_of(st.none(), st.text(max_size=5), st.integers()), min_size=1,
                                 max_size=4))
    def unknown(route, extra):
        path, valid = route
        detail = assert_clear_refusal(intake.post(path, json={**valid, **extra}), 422)
        assert {(name,) for name in extra} <= named_fields(detail), detail

    unknown()
    assert_still_serving(intake)


@pytest.mark.parametrize("field", sorted(LIMITS))
def test_a_huge_field_gets_422_naming_it(intake, field):
    for size in (LIMITS[field] + 1, 1_000_000, 8_000_000):
        value = "https://x.com/" + "a" * size if field == "url" else "a" * size
        detail = assert_clear_refusal(intake.post("/v1/referrals", json={**VALID, field: value}), 422)
        assert (field,) in named_fields(detail), detail
    assert_still_serving(intake)


def test_too_many_evidence_items_or_batch_items_get_422(intake):
    evidence = VALID["evidence"] * 101
    detail = assert_clear_refusal(intake.post("/v1/referrals", json={**VALID, "evidence": evidence}), 422)
    assert ("evidence",) in named_fields(detail)
    detail = assert_clear_refusal(intake.post("/v1/referrals/batch", json={"referrals": [VALID] * 1001}), 422)
    assert ("referrals",) in named_fields(detail)
    assert_still_serving(intake)
