"""FastAPI security: one dependency per role, attached at router level, and a check at start-up
that every route has one, so a route added without a role is never served (fail closed).

    router = APIRouter(prefix="/v1", dependencies=[require(Role.auditor, Role.agency)], responses=DENIED)

    @router.get("/things")
    async def things(caller: Caller): ...
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security, status
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth.principal import Principal, Role

PUBLIC = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An API key (td_…) from `takedown keys create`, or an access token (JWT) "
                                "from the identity provider.")


DENIED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token: missing, unknown, revoked, expired or for another audience.",
          "content": {"application/json": {"example": {"detail": "not authenticated"}}}},
    403: {"description": "Authenticated, but this identity may not do this.",
          "content": {"application/json": {"example": {"detail": "needs one of the roles: auditor"}}}},
}


def unauthenticated(detail: str = "not authenticated") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
    """The caller's principal from its bearer token; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthenticated()
    principal = await request.app.state.authenticator.principal(credentials.credentials)
    if principal is None:
        raise unauthenticated("invalid, expired or revoked token")
    request.state.principal = principal  # who made the request, for middleware that logs or traces it
    return principal


Caller = Annotated[Principal, Depends(authenticate)]


def require(*roles: Role) -> Any:
    """A router-level dependency: 401 without identity, 403 without one of roles."""
    allowed = frozenset(roles)
    names = ", ".join(sorted(allowed))

    async def has_role(principal: Caller) -> Principal:
        if principal.roles.isdisjoint(allowed):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs one of the roles: {names}")
        return principal

    has_role.guards = allowed  # type: ignore[attr-defined] - what guarded_routes() looks for
    return Security(has_role)


def guard(check: Any) -> Any:
    """Mark another authenticating dependency (e.g. a signed platform callback) as a route's guard."""
    check.guards = frozenset({Role.platform})
    return Depends(check)


def _guards(dependant) -> set[Role]:
    found = set(getattr(dependant.call, "guards", ()))
    for sub in dependant.dependencies:
        found |= _guards(sub)
    return found


def route_roles(app: FastAPI) -> dict[tuple[str, str], frozenset[Role]]:
    """(method, path) -> the roles that may call it, for every route of app but the public ones."""
    table = {}
    # FastAPI 0.16x includes routers lazily: iter_route_contexts gives each route with the
    # dependencies of the routers it was included through.
    for route in iter_route_contexts(app.routes):
        if route.path in PUBLIC:
            continue
        dependant = getattr(route, "dependant", None)
        # A route that cannot be inspected (a mount, a websocket) counts as unguarded: refused.
        roles = frozenset(_guards(dependant)) if dependant is not None else frozenset()
        for method in route.methods or ("*",):
            table[(method, route.path)] = roles
    return table


def assert_guarded(app: FastAPI) -> None:
    """Refuse to build an app with a route that no role guards."""
    if open_routes := sorted(f"{m} {p}" for (m, p), roles in route_roles(app).items() if not roles):
        raise RuntimeError(f"{app.title}: routes without a role dependency (add one at router level): "
                           f"{', '.join(open_routes)}")


def secure(app: FastAPI, authenticator: Any) -> None:
    """Give app its authenticator and refuse to build it if a route has no role guard; call after
    every router is included."""
    app.state.authenticator = authenticator
    assert_guarded(app)
