"""Bearer token -> principal: the project's API keys in Postgres, or the identity provider's JWTs."""

import hashlib
import logging

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.auth import keys
from shared.auth.oidc import OidcConfig, OidcVerifier
from shared.auth.principal import Principal

log = logging.getLogger(__name__)
CACHE_MAX = 10_000


class Authenticator:
    """Checks tokens, remembering each answer for cache_s so a busy client costs no query per call.

    A revoked key is refused within cache_s. Answers are cached under a hash of the token, never
    the token itself, in a bounded cache, so random tokens cannot grow it.
    """

    def __init__(self, sessions: async_sessionmaker, oidc: OidcConfig | None = None, cache_s: float = 5.0):
        self.sessions = sessions
        self.oidc = OidcVerifier(oidc) if oidc is not None else None
        self._cache: TTLCache = TTLCache(maxsize=CACHE_MAX, ttl=cache_s)

    async def principal(self, token: str) -> Principal | None:
        """Who token proves to be; None if it proves nothing."""
        slot = hashlib.sha256(token.encode()).digest()
        if slot in self._cache:
            return self._cache[slot]
        found = await self._check(token)
        self._cache[slot] = found
        return found

    async def _check(self, token: str) -> Principal | None:
        if keys.parse(token) is not None:
            async with self.sessions() as session:
                return await keys.principal_for(session, token)
        if self.oidc is not None and token.count(".") == 2:
            return await self.oidc.principal(token)
        return None
