"""Demo identities for the embedded default: API keys for two agencies, an auditor, an operator and
oversight, and each agency's Kafka signing secret, kept in one file (mode 0600) across restarts.

Only `takedown run` on its embedded database makes them: a real deployment creates its keys with
`takedown keys create`.
"""

import asyncio
import json
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import keys, setup, signing
from shared.db import single_use_engine
from shared.auth.principal import Role

FILE = "dev-credentials.json"
AGENCIES = ("NCA", "BorderForce")
PEOPLE = {Role.auditor: "demo-auditor", Role.operator: "demo-operator", Role.oversight: "demo-oversight"}
CREATED_BY = "takedown run (demo credentials)"


def ensure(database_url: str, path: Path) -> dict:
    """The demo credentials in path, made (again) if missing or no longer valid in this database."""
    return asyncio.run(ensure_async(database_url, path))


async def ensure_async(database_url: str, path: Path) -> dict:
    """ensure(), for callers already in an event loop (tests)."""
    await setup.migrate(database_url)
    engine = single_use_engine(database_url)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            kept = _load(path)
            if kept is not None and await _still_valid(session, kept):
                return kept
        async with sessions() as session, session.begin():
            made = await _make(session)
    finally:
        await engine.dispose()
    _write(path, made)
    return made


async def _make(session: AsyncSession) -> dict:
    made: dict = {"agencies": {}}
    for agency in AGENCIES:
        key = await keys.create(session, Role.agency, None, agency, CREATED_BY)
        secret = await signing.create(session, agency, CREATED_BY)
        made["agencies"][agency] = {"token": key.token, "signing_secret": secret}
    for role, name in PEOPLE.items():
        made[role.value] = {"token": (await keys.create(session, role, name, None, CREATED_BY)).token}
    return made


async def _still_valid(session: AsyncSession, kept: dict) -> bool:
    try:
        tokens = [a["token"] for a in kept["agencies"].values()] + [kept[r.value]["token"] for r in PEOPLE]
        secrets_by_agency = {name: a["signing_secret"] for name, a in kept["agencies"].items()}
    except (KeyError, TypeError, AttributeError):
        return False
    for token in tokens:
        if await keys.principal_for(session, token) is None:
            return False
    active = await signing.active(session, list(secrets_by_agency))
    return all(secret in active.get(agency, []) for agency, secret in secrets_by_agency.items())


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, credentials: dict) -> None:
    """Write the file readable by its owner only, replacing any old one in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)  # a stale one may have another mode, or be a link elsewhere
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(credentials, out, indent=2)
    os.replace(temporary, path)
