"""Access control without I/O: tokens' form, principals, OIDC claims, and routes that fail closed."""

import pytest
from fastapi import APIRouter, FastAPI

from shared.auth import Principal, Role, assert_guarded, require, route_roles
from shared.auth import keys
from shared.auth.oidc import OidcConfig, principal_from_claims

CONFIG = dict(issuer="https://idp.example", audience="takedown", jwks_url="https://idp.example/jwks")


def test_a_minted_key_parses_back_to_its_id_and_its_hash_matches_only_its_secret():
    key_id, token, hashed = keys.mint()
    parsed = keys.parse(token)
    assert parsed is not None and parsed[0] == key_id
    assert keys.digest(parsed[1]) == hashed
    assert keys.digest(parsed[1] + "x") != hashed


@pytest.mark.parametrize("token", ["", "td_", "td_abc_def", "Bearer td_x", "eyJ.a.b", "td_0123456789ab_short",
                                   "td_0123456789AB_" + "a" * 43, "xx_0123456789ab_" + "a" * 43])
def test_anything_not_shaped_like_our_key_is_not_parsed_as_one(token):
    assert keys.parse(token) is None


def test_two_minted_keys_share_nothing():
    first, second = keys.mint(), keys.mint()
    assert first[0] != second[0] and first[1] != second[1] and first[2] != second[2]


def test_an_agency_key_needs_an_agency_and_a_person_key_takes_none():
    keys.check_role(Role.agency, "NCA")
    keys.check_role(Role.auditor, None)
    for role, agency in [(Role.agency, None), (Role.auditor, "NCA"), (Role.platform, None)]:
        with pytest.raises(ValueError):
            keys.check_role(role, agency)


def test_the_actor_is_the_agency_for_agencies_and_the_person_for_people():
    agency = Principal("NCA", frozenset({Role.agency}), "key:k1", agency="NCA")
    auditor = Principal("alice", frozenset({Role.auditor}), "key:k2")
    assert agency.actor == "agency:NCA" and auditor.actor == "user:alice"
    assert agency.sees("NCA") and not agency.sees("BorderForce") and auditor.sees("BorderForce")


def test_roles_agency_and_name_come_from_the_configured_claims():
    config = OidcConfig(**CONFIG, roles_claim="realm_access.roles", agency_claim="org")
    claims = {"iss": "https://idp.example", "sub": "u-1", "realm_access": {"roles": ["agency", "unknown"]},
              "org": "NCA"}
    principal = principal_from_claims(config, claims)
    assert principal == Principal("NCA", frozenset({Role.agency}), "oidc:https://idp.example#u-1", agency="NCA")


def test_claims_granting_no_known_role_or_an_agency_role_without_agency_name_nobody():
    config = OidcConfig(**CONFIG)
    base = {"iss": "https://idp.example", "sub": "u-1"}
    assert principal_from_claims(config, {**base, "roles": ["admin"]}) is None
    assert principal_from_claims(config, {**base, "roles": ["agency"]}) is None
    assert principal_from_claims(config, {**base, "roles": "platform"}) is None


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["RS256", "HS512"], []])
def test_symmetric_and_none_algorithms_cannot_be_configured(algorithms):
    with pytest.raises(ValueError):
        OidcConfig(**CONFIG, algorithms=algorithms)


def test_an_app_with_a_route_that_no_role_guards_is_refused_at_build_time():
    app = FastAPI(title="t")
    guarded = APIRouter(dependencies=[require(Role.auditor)])
    guarded.add_api_route("/ok", lambda: None)
    app.include_router(guarded)
    app.add_api_route("/forgotten", lambda: None)
    with pytest.raises(RuntimeError, match="GET /forgotten"):
        assert_guarded(app)


def test_the_roles_of_a_route_are_those_of_its_routers_guard():
    app = FastAPI(title="t")
    router = APIRouter(dependencies=[require(Role.auditor, Role.agency)])
    router.add_api_route("/things", lambda: None)
    app.include_router(router)
    assert route_roles(app) == {("GET", "/things"): frozenset({Role.auditor, Role.agency})}
    assert_guarded(app)
