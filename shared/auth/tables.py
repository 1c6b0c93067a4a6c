"""The identities every service checks: API keys and agencies' Kafka signing secrets (schema auth).

Every service migrates this schema at start (the migration is serialised by an advisory lock),
so any of them, and the `takedown keys` command, can read and write it.
"""

from pathlib import Path

from sqlalchemy import Column, DateTime, Identity, BigInteger, LargeBinary, MetaData, String, Table, Text, func

SCHEMA = "auth"
MIGRATIONS = Path(__file__).parent / "migrations"
metadata = MetaData(schema=SCHEMA)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("agency", String(200)),
    Column("secret_sha256", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),  # at most AUTH_CACHE_S old while in use
    Column("created_by", Text, nullable=False),
)

signing_secrets = Table(
    "signing_secrets", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("agency", String(200), nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False),
)
