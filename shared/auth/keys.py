"""The project's own API keys: `td_<key id>_<secret>`, shown once, stored only as a SHA-256 hash.

A 32-byte random secret needs no slow hash (argon2 is for passwords people choose): SHA-256 of it
cannot be reversed or guessed, and comparing it costs nothing. The key id in the clear lets a key
be found, listed, revoked and named in the audit trail without its secret.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.principal import Principal, Role
from shared.auth.tables import api_keys

PREFIX = "td"
TOKEN = re.compile(r"^td_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
DEFAULT_DAYS = 365


@dataclass(frozen=True)
class NewKey:
    key_id: str
    token: str  # shown once: nothing else can give it back
    expires_at: datetime


def mint() -> tuple[str, str, bytes]:
    """A new key: (key id, the token to hand out, the hash to store)."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}_{key_id}_{secret}", digest(secret)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a token of ours, or None if it is not one."""
    match = TOKEN.match(token)
    return (match[1], match[2]) if match else None


def check_role(role: Role, agency: str | None) -> None:
    """A key is for one person-role, or for one agency (and then names it)."""
    if role is Role.platform:
        raise ValueError("platforms sign their callbacks; they get no API key")
    if (role is Role.agency) != bool(agency):
        raise ValueError("an agency key needs --agency, and only an agency key takes one")


async def create(session: AsyncSession, role: Role, name: str | None, agency: str | None, created_by: str,
                 days: int = DEFAULT_DAYS) -> NewKey:
    """Store a new key's hash in the caller's transaction; the token, to show once."""
    check_role(role, agency)
    key_id, token, hashed = mint()
    expires = datetime.now(UTC) + timedelta(days=days)
    await session.execute(insert(api_keys).values(
        key_id=key_id, role=role.value, name=name or agency or key_id, agency=agency, secret_sha256=hashed,
        expires_at=expires, created_by=created_by))
    return NewKey(key_id, token, expires)


async def principal_for(session: AsyncSession, token: str) -> Principal | None:
    """The principal a token proves, or None: unknown, wrong secret, revoked or expired."""
    parsed = parse(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = (await session.execute(select(api_keys).where(
        api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None),
        api_keys.c.expires_at > func.now()))).mappings().first()
    if row is None or not hmac.compare_digest(bytes(row["secret_sha256"]), digest(secret)):
        return None
    # Once per check, not per request (services cache checks): `takedown keys list` shows keys in use.
    await session.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=func.now()))
    await session.commit()
    return Principal(name=row["name"], roles=frozenset({Role(row["role"])}), credential=f"key:{key_id}",
                     agency=row["agency"])


async def listing(session: AsyncSession) -> list[dict]:
    """Every key, newest first, without anything secret."""
    stmt = select(*(c for c in api_keys.c if c.name != "secret_sha256")).order_by(api_keys.c.created_at.desc())
    return [dict(row) for row in (await session.execute(stmt)).mappings()]


async def revoke(session: AsyncSession, key_id: str) -> bool:
    """Revoke a key at once (services may honour it for up to their cache's lifetime); False if unknown."""
    result = await session.execute(update(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                                   .values(revoked_at=func.now()))
    return result.rowcount == 1
