"""Identities and access control shared by every service: principals and roles, API keys, OIDC
tokens, agencies' signing secrets, and the FastAPI guards (docs/security.md)."""

from shared.auth.authenticator import Authenticator
from shared.auth.guard import DENIED, Caller, assert_guarded, authenticate, guard, require, route_roles, secure
from shared.auth.oidc import OidcConfig
from shared.auth.principal import Principal, Role
from shared.auth.tables import MIGRATIONS, SCHEMA

__all__ = ["Authenticator", "Caller", "DENIED", "MIGRATIONS", "OidcConfig", "Principal", "Role", "SCHEMA",
           "assert_guarded", "authenticate", "guard", "require", "route_roles", "secure"]
