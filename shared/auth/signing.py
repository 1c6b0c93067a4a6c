"""Agencies' Kafka signing secrets (Standard Webhooks `whsec_`), kept so intake can verify records.

Unlike an API key, an HMAC secret must be kept to verify with, so it is stored as it is: the
database owner can read it (docs/security.md). Rotation keeps the newest two valid at once.
"""

import base64
import secrets

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.tables import signing_secrets

VALID_AT_ONCE = 2


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
