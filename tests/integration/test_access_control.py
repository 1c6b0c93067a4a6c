"""Who may call what: every route of every service, enumerated from the apps, against anonymous
callers, every role, two agencies, revoked keys and forged, expired or misdirected tokens.

A route added without an entry here fails the first test; a route without a role guard cannot
even be built (shared.auth.assert_guarded).
"""

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.config import DispatcherSettings
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from services.outcomes.app import create_app as create_outcomes
from services.outcomes.config import OutcomesSettings
from shared.auth import Role, keys, route_roles
from shared.auth.guard import PUBLIC
from tests.idp import IdentityProvider
from tests.support import bearer, eventually, serving

AGENCY, AUDITOR, OPERATOR, OVERSIGHT, PLATFORM = "agency", "auditor", "operator", "oversight", "platform"
ROUTES = {
    "intake": {
        ("POST", "/v1/referrals"): {AGENCY},
        ("POST", "/v1/referrals/batch"): {AGENCY},
        ("POST", "/v1/referrals/{referral_id}/escalate"): {AGENCY},
        ("POST", "/v1/referrals/{referral_id}/appeal"): {AGENCY},
        ("POST", "/v1/referrals/{referral_id}/information"): {AGENCY},
        ("POST", "/v1/referrals/{referral_id}/withdraw"): {AGENCY},
        ("GET", "/v1/operators/stuck"): {OPERATOR},
    },
    "outcomes": {
        ("GET", "/v1/referrals"): {AUDITOR, AGENCY},
        ("GET", "/v1/referrals/{referral_id}"): {AUDITOR, AGENCY},
        ("GET", "/v1/referrals/export.csv"): {AUDITOR, AGENCY},
        ("GET", "/v1/referrals/export.ndjson"): {AUDITOR, AGENCY},
        ("GET", "/v1/reports/attrition"): {AUDITOR, AGENCY},
        ("GET", "/v1/reports/attrition.csv"): {AUDITOR, AGENCY},
        ("GET", "/v1/reports/dsa-article-22"): {AUDITOR, AGENCY},
        ("GET", "/v1/reports/dsa-article-22.csv"): {AUDITOR, AGENCY},
        ("GET", "/v1/auditor-queries"): {OVERSIGHT},
    },
    "dispatcher": {
        ("POST", "/v1/callbacks/{platform}"): {PLATFORM},  # by signature: no bearer token is a platform
        ("POST", "/v1/tickets/{platform}/{ticket_id}/answer"): {OPERATOR},
        ("GET", "/v1/operators/stuck"): {OPERATOR},
    },
}
PATH_VALUES = {"{platform}": "telegram", "{ticket_id}": "no-such-ticket"}
BODIES = {
    "/v1/referrals": {"url": "https://www.facebook.com/groups/matrix", "category": "people_smuggling"},
    "/v1/referrals/batch": {"referrals": [{"url": "https://youtu.be/matrix", "category": "fraud"}]},
    "/v1/referrals/{referral_id}/escalate": {"reason": "still up"},
    "/v1/referrals/{referral_id}/appeal": {"reason": "new evidence"},
    "/v1/referrals/{referral_id}/information": {"answer": "the second post"},
    "/v1/referrals/{referral_id}/withdraw": {"reason": "done"},
    "/v1/callbacks/{platform}": {"platform": "telegram", "ticket_id": "t", "reference": "r"},
    "/v1/tickets/{platform}/{ticket_id}/answer": {"decision": {"visibility": ["content_removed"],
                                                               "decided_at": "2026-11-22T10:00:00Z"}},
}
# Callers that prove nothing: each must get 401 everywhere.
UNAUTHENTICATED = ("anonymous", "garbage", "revoked key", "expired token", "token for another audience",
                   "HS256 token signed with the public key", "unsigned token (alg none)")
ROLES_OF = {"agency A (key)": {AGENCY}, "agency A (token)": {AGENCY}, "agency B (key)": {AGENCY},
            "auditor (key)": {AUDITOR}, "auditor (token)": {AUDITOR}, "operator (key)": {OPERATOR},
            "oversight (key)": {OVERSIGHT}}
OTHER_AGENCY = {"agency B (key)"}


def services_of(settings: dict) -> dict:
    return {"intake": create_intake(IntakeSettings(**settings, max_redispatches=100)),
            "outcomes": create_outcomes(OutcomesSettings(**settings, scheduler_enabled=False)),
            "dispatcher": create_dispatcher(DispatcherSettings(**settings))}


def test_every_route_of_every_service_is_in_the_matrix_with_the_roles_it_enforces():
    apps = services_of({})
    enforced = {name: {route: {r.value for r in roles} for route, roles in route_roles(app).items()}
                for name, app in apps.items()}
    assert enforced == ROUTES


@pytest.fixture
async def idp():
    provider = IdentityProvider()
    async with serving(provider.app) as url:
        provider.url = url
        yield provider


async def revoked_key(database_url: str) -> str:
    """A key that was valid, then revoked."""
    engine = create_async_engine(database_url)
    async with async_sessionmaker(engine)() as session, session.begin():
        made = await keys.create(session, Role.auditor, "gone", None, "test")
        await keys.revoke(session, made.key_id)
    await engine.dispose()
    return made.token


@pytest.fixture
async def callers(credentials, idp, database_url) -> dict[str, dict]:
    tokens = {
        "anonymous": None, "garbage": "not-a-token",
        "revoked key": await revoked_key(database_url),
        "expired token": idp.token(["auditor"], lifetime_s=-600),
        "token for another audience": idp.token(["auditor"], audience="another-service"),
        "HS256 token signed with the public key": idp.forged_hs256(["auditor"]),
        "unsigned token (alg none)": idp.unsigned(["auditor"]),
        "agency A (key)": credentials["agencies"]["NCA"]["token"],
        "agency A (token)": idp.token(["agency"], agency="NCA", subject="nca-system"),
        "agency B (key)": credentials["agencies"]["BorderForce"]["token"],
        "auditor (key)": credentials["auditor"]["token"],
        "auditor (token)": idp.token(["auditor"], subject="alice"),
        "operator (key)": credentials["operator"]["token"],
        "oversight (key)": credentials["oversight"]["token"],
    }
    return {name: bearer(token) if token else {} for name, token in tokens.items()}


@pytest.fixture
async def served(settings_env, idp, credentials):
    """Every service served, and a referral of agency A (the NCA) that outcomes has recorded."""
    apps = services_of({**settings_env, **idp.settings()})
    async with serving(apps["intake"]) as intake, serving(apps["outcomes"]) as outcomes, \
            serving(apps["dispatcher"]) as dispatcher:
        urls = {"intake": intake, "outcomes": outcomes, "dispatcher": dispatcher}
        nca = bearer(credentials["agencies"]["NCA"]["token"])
        async with httpx.AsyncClient() as client:
            made = await client.post(f"{intake}/v1/referrals", headers=nca, json=BODIES["/v1/referrals"])
            referral_id = made.json()["referral_id"]

            async def recorded():
                answer = await client.get(f"{outcomes}/v1/referrals/{referral_id}", headers=nca)
                return answer.status_code == 200

            await eventually(recorded, 30, "outcomes to record agency A's referral")
        yield urls, referral_id


def expected(caller: str, roles: set[str], path: str) -> int | None:
    """The status a caller must get, or None where any answer but 401/403/5xx is right."""
    if caller in UNAUTHENTICATED or PLATFORM in roles:
        return 401  # a platform proves itself by its signature, which no bearer token carries
    if not ROLES_OF[caller] & roles:
        return 403
    if caller in OTHER_AGENCY and "{referral_id}" in path:
        return 404  # another agency's referral does not exist for it
    return None


def fill(path: str, referral_id: str) -> str:
    for name, value in {**PATH_VALUES, "{referral_id}": referral_id}.items():
        path = path.replace(name, value)
    return path


async def test_each_caller_gets_the_answer_its_identity_allows_on_every_route(served, callers):
    (urls, referral_id) = served
    wrong = []
    async with httpx.AsyncClient(timeout=30) as client:
        for service, routes in ROUTES.items():
            for (method, path), roles in routes.items():
                url = urls[service] + fill(path, referral_id)
                for caller, headers in callers.items():
                    answer = await client.request(method, url, headers=headers, json=BODIES.get(path))
                    want = expected(caller, roles, path)
                    ok = answer.status_code == want if want else answer.status_code not in (401, 403) \
                        and answer.status_code < 500
                    if not ok:
                        wrong.append(f"{caller} {method} {path}: {answer.status_code}, expected {want or 'allowed'}")
    assert wrong == []


async def test_a_401_says_how_to_authenticate_and_names_no_secret(served, callers):
    (urls, _) = served
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{urls['outcomes']}/v1/referrals", headers=callers["revoked key"])
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert "td_" not in answer.text


async def test_health_and_the_api_documents_need_no_identity(served):
    (urls, _) = served
    async with httpx.AsyncClient() as client:
        for url in urls.values():
            for path in ("/health", "/openapi.json", "/docs"):
                assert (await client.get(url + path)).status_code == 200, (url, path)


async def test_the_openapi_documents_declare_the_bearer_scheme_and_the_401_and_403_answers(served):
    (urls, _) = served
    async with httpx.AsyncClient() as client:
        for service, url in urls.items():
            document = (await client.get(url + "/openapi.json")).json()
            for path, operations in document["paths"].items():
                for method, operation in operations.items():
                    roles = ROUTES[service].get((method.upper(), path))
                    if roles is None:
                        assert path in PUBLIC, (method, path)
                    elif PLATFORM in roles:  # signed callbacks: 401 when the signature does not verify
                        assert "401" in operation["responses"] and "security" not in operation, (method, path)
                    else:
                        assert {"401", "403"} <= set(operation["responses"]), (method, path)
                        assert operation["security"] == [{"bearer": []}], (method, path)
                        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_a_token_from_the_identity_provider_is_recorded_under_its_subject_and_issuer(served, idp, credentials):
    (urls, referral_id) = served
    async with httpx.AsyncClient(base_url=urls["outcomes"]) as client:
        read = await client.get(f"/v1/referrals/{referral_id}", headers=bearer(idp.token(["auditor"], subject="alice")))
        log = await client.get("/v1/auditor-queries", headers=bearer(credentials["oversight"]["token"]))
    assert read.status_code == 200
    [entry] = [q for q in log.json()["items"] if q["route"] == "/v1/referrals/{referral_id}" and q["actor"] == "user:alice"]
    assert entry["credential"] == "oidc:https://idp.test#alice"
    assert entry["params"] == {"referral_id": referral_id}  # which referral was read, not only the route
