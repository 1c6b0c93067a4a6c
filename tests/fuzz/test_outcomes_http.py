"""The auditors' API under bad input: odd query parameters, known or not, and odd credentials.

Every query is recorded with its parameters as sent, unknown ones included; a parameter that
cannot be recorded (a NUL character: Postgres text cannot hold it) is refused with 422 naming it.
A credential that proves nothing is refused with 401, whatever it looks like.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.payloads import FUZZ, SCRIPT, SQL, assert_clear_refusal, looking_like_attacks

ROUTES = ["/v1/referrals", "/v1/referrals/export.csv", "/v1/referrals/export.ndjson", "/v1/reports/attrition",
          "/v1/reports/attrition.csv", "/v1/reports/dsa-article-22", "/v1/reports/dsa-article-22.csv",
          "/v1/auditor-queries", "/v1/referrals/00000000-0000-0000-0000-000000000000"]
PARAMS = ["agency", "platform", "category", "status", "outcome", "reason", "submitted_from", "submitted_to",
          "decided_from", "decided_to", "url", "url_prefix", "case_reference", "limit", "cursor", "from", "to",
          "group_by", "actor", "zzz", "", "a\x00b"]
VALUES = st.one_of(looking_like_attacks(), st.text(max_size=30), st.sampled_from(
    ["\x00", "a\x00b", "-1", "0", "1e309", "9" * 40, "2026-02-30", "2026-11-20T25:00:00Z", "x" * 3000, "null", "[]"]))


@pytest.fixture(scope="module")
def outcomes(stack):
    """A client of outcomes, signed in as the demo auditor."""
    with stack.client("outcomes") as client:
        yield client


def assert_still_serving(outcomes) -> None:
    assert outcomes.get("/health").json()["status"] == "ok"
    assert outcomes.get("/v1/referrals").status_code == 200


def test_odd_query_parameters_are_answered_or_refused_never_a_5xx(stack, outcomes):
    @FUZZ
    @given(route=st.sampled_from(ROUTES), params=st.lists(st.tuples(st.sampled_from(PARAMS), VALUES), max_size=5),
           agency=st.booleans())
    def odd_query(route, params, agency):
        """As whoever may call the route: oversight the query log; an auditor or an agency the rest."""
        who = "NCA" if agency and route != "/v1/auditor-queries" else None
        headers = stack.headers(who) if who else stack.signed_in("outcomes", route)
        response = outcomes.get(route, params=params, headers=headers)
        if response.status_code >= 400 and not (route.endswith("0000") and response.status_code == 404):
            # an agency naming another agency in a filter is refused (403)
            refusals = (422, 403) if who and any(name == "agency" for name, _ in params) else (422,)
            assert_clear_refusal(response, *refusals)
        if any("\x00" in name + value for name, value in params):
            assert response.status_code == 422, response.text

    odd_query()
    assert_still_serving(outcomes)


def test_odd_credentials_are_refused_with_401_never_a_5xx(stack):
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=400).map(str.strip)
    attacks = st.sampled_from([s for s in SQL + SCRIPT if s.isascii() and "\x00" not in s])
    hex_ids = st.text("0123456789abcdef", min_size=12, max_size=12)
    secrets = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=43, max_size=43)
    authorizations = st.one_of(
        attacks, printable, printable.map("Bearer {}".format), attacks.map("Bearer {}".format),
        st.tuples(hex_ids, secrets).map(lambda k: f"Bearer td_{k[0]}_{k[1]}"),  # well formed, unknown
        st.lists(printable.filter(lambda s: "." not in s), min_size=3, max_size=3).map(
            lambda p: "Bearer " + ".".join(p)),  # shaped like a JWT
        printable.map("Basic {}".format)).map(str.strip)  # HTTP drops a header value's outer spaces

    @FUZZ
    @given(route=st.sampled_from(ROUTES), authorization=authorizations, actor=st.one_of(st.none(), printable))
    def odd_credential(route, authorization, actor):
        headers = {"Authorization": authorization} | ({"X-Actor": actor} if actor is not None else {})
        with stack.client("outcomes", headers=headers) as client:
            response = client.get(route)
        assert_clear_refusal(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"

    odd_credential()
    with stack.client("outcomes") as outcomes:
        assert_still_serving(outcomes)


@pytest.mark.parametrize("params", [{"agency": "a\x00b"}, {"unknown": "\x00"}, {"a\x00b": "1"}])
@pytest.mark.parametrize("route", ["/v1/referrals", "/v1/referrals/00000000-0000-0000-0000-000000000000"])
def test_a_query_parameter_with_a_nul_character_gets_422_naming_it(outcomes, route, params):
    """It could not be recorded with the query (Postgres text holds no NUL): a 500, before."""
    response = outcomes.get(route, params=params)
    [name] = params
    assert [e["loc"] for e in assert_clear_refusal(response, 422)] == [["query", name]]
