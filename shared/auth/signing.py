"""Agencies' Kafka signing secrets (Standard Webhooks `whsec_`), kept so intake can verify records.

Unlike an API key, an HMAC secret must be kept to verify with, so it is stored as it is: the
database owner can read it (docs/security.md). Rotation keeps the newest two valid at once.
"""

import base64
import secrets
import time
from collections.abc import Callable, Iterable

from cachetools import TTLCache
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth.tables import signing_secrets

VALID_AT_ONCE = 2
CACHE_MAX = 10_000


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create(session: AsyncSession, agency: str, created_by: str) -> str:
    """A new signing secret for agency; all but the newest previous one are retired."""
    secret = new_secret()
    await session.execute(insert(signing_secrets).values(agency=agency, secret=secret, created_by=created_by))
    keep = (select(signing_secrets.c.id).where(signing_secrets.c.agency == agency,
                                               signing_secrets.c.retired_at.is_(None))
            .order_by(signing_secrets.c.id.desc()).limit(VALID_AT_ONCE))
    await session.execute(update(signing_secrets).where(
        signing_secrets.c.agency == agency, signing_secrets.c.retired_at.is_(None),
        signing_secrets.c.id.not_in(keep)).values(retired_at=func.now()))
    return secret


async def active(session: AsyncSession, agencies: list[str] | None = None) -> dict[str, list[str]]:
    """The secrets each agency may sign with now, newest first."""
    stmt = select(signing_secrets.c.agency, signing_secrets.c.secret).where(
        signing_secrets.c.retired_at.is_(None)).order_by(signing_secrets.c.id.desc())
    if agencies is not None:
        stmt = stmt.where(signing_secrets.c.agency.in_(agencies))
    found: dict[str, list[str]] = {}
    for agency, secret in await session.execute(stmt):
        found.setdefault(agency, []).append(secret)
    return found


async def retire(session: AsyncSession, agency: str) -> int:
    """Retire every secret of agency (a leak): its records are refused until a new one is made."""
    result = await session.execute(update(signing_secrets).where(
        signing_secrets.c.agency == agency, signing_secrets.c.retired_at.is_(None)).values(retired_at=func.now()))
    return result.rowcount


class ActiveSecrets:
    """Each agency's active secrets, remembered for cache_s so a busy topic costs no query per batch.

    A retired secret stops verifying within cache_s. Agencies with no secret are remembered too
    (as none), in a bounded cache, so records naming random agencies cannot grow it.
    """

    def __init__(self, sessions: async_sessionmaker, cache_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.sessions = sessions
        self._cache: TTLCache = TTLCache(maxsize=CACHE_MAX, ttl=cache_s, timer=clock)

    async def of(self, agencies: Iterable[str]) -> dict[str, list[str]]:
        """The active secrets of each of agencies (newest first; [] if none): one query for those not cached."""
        wanted = set(agencies)
        known = {a: self._cache[a] for a in wanted if a in self._cache}
        if missing := [a for a in wanted if a not in known]:
            async with self.sessions() as session:
                found = await active(session, missing)
            for agency in missing:
                known[agency] = self._cache[agency] = found.get(agency, [])
        return known
