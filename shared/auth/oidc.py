"""OAuth2/OIDC access tokens from the unit's identity provider, checked with PyJWT.

Issuer, audience, expiry and not-before are required and checked; only asymmetric algorithms
are accepted (never `none`, never HS*: an HMAC "signed" with the provider's public key is the
classic confusion attack). Keys come from the provider's JWKS, cached by PyJWKClient.
"""

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, Field, field_validator

from shared.auth.principal import Principal, Role

log = logging.getLogger(__name__)
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


class OidcConfig(BaseModel):
    """Where tokens come from and which claims carry roles, agency and name."""

    issuer: str
    audience: str
    jwks_url: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    roles_claim: str = Field("roles", description="Claim (dotted path) listing roles, e.g. realm_access.roles.")
    agency_claim: str = "agency"
    name_claim: str = "sub"
    leeway_s: float = Field(30.0, ge=0, le=300)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [a for a in value if a not in ASYMMETRIC]
        if refused or not value:
            raise ValueError(f"only asymmetric algorithms are allowed ({', '.join(sorted(ASYMMETRIC))}), not {refused}")
        return value


def claim(claims: dict[str, Any], path: str) -> Any:
    """The claim at a dotted path, or None."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def principal_from_claims(config: OidcConfig, claims: dict[str, Any]) -> Principal | None:
    """The principal verified claims name; None if they grant no role we know."""
    raw = claim(claims, config.roles_claim)
    raw = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    roles = frozenset(Role(r) for r in raw if r in Role.__members__ and r != Role.platform)
    agency = claim(claims, config.agency_claim)
    agency = agency if isinstance(agency, str) and agency else None
    if Role.agency in roles and agency is None:
        roles = roles - {Role.agency}  # an agency role without an agency claim names nobody
    name = claim(claims, config.name_claim)
    if not roles or not isinstance(name, str) or not name:
        return None
    return Principal(name=agency if roles == {Role.agency} else name, roles=roles,
                     credential=f"oidc:{claims['iss']}#{claims['sub']}", agency=agency if Role.agency in roles else None)


class OidcVerifier:
    """Verifies bearer JWTs against the provider's JWKS."""

    def __init__(self, config: OidcConfig):
        # Imported here: PyJWT with cryptography costs every process about 9 MB, and a deployment
        # on API keys alone (the embedded default) never verifies a JWT.
        import jwt

        self.jwt, self.config = jwt, config
        # The key set is cached for 5 minutes; not each key for ever (cache_keys), so a key the
        # provider withdraws stops verifying within that time.
        self.jwks = jwt.PyJWKClient(config.jwks_url, cache_keys=False, lifespan=300, timeout=5)

    async def principal(self, token: str) -> Principal | None:
        """The principal of a valid token; None for any token that does not verify."""
        try:
            # PyJWKClient fetches with urllib, blocking: in a thread, off the event loop.
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = self.jwt.decode(token, key.key, algorithms=self.config.algorithms, audience=self.config.audience,
                                issuer=self.config.issuer, leeway=self.config.leeway_s,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_nbf": True})
        except (self.jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            # TypeError: a header naming an algorithm of another key type than its kid's key.
            log.info("bearer token refused: %s", type(exc).__name__)
            return None
        return principal_from_claims(self.config, claims)
