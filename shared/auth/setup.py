"""What a service does at start for access control: migrate the auth schema, build its authenticator."""

from sqlalchemy.ext.asyncio import async_sessionmaker

from shared import db
from shared.auth.authenticator import Authenticator
from shared.auth.tables import MIGRATIONS, SCHEMA
from shared.settings import BaseServiceSettings


async def migrate(url: str) -> None:
    """Bring the auth schema to head; every service and the keys command may call it."""
    await db.migrate(url, MIGRATIONS, SCHEMA)


def authenticator(settings: BaseServiceSettings, sessions: async_sessionmaker) -> Authenticator:
    """The authenticator settings describe: API keys always, the identity provider's tokens if set."""
    return Authenticator(sessions, settings.oidc(), settings.auth_cache_s)
