"""API keys and signing secrets against a real database: made once, stored as hashes, listed
without secrets, revoked and expired for good; the demo identities `make run` writes."""

import asyncio
import json
import stat

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from typer.testing import CliRunner

from services.cli import app
from shared.auth import Authenticator, Role, demo, keys, setup, signing
from shared.auth.tables import api_keys
from tests.support import eventually

runner = CliRunner()


async def cli(*args: str, url: str):
    """`takedown keys ...` as an operator runs it (in a thread: the command runs its own event loop)."""
    return await asyncio.to_thread(runner.invoke, app, ["keys", *args, "--database-url", url])


async def sessions_of(url: str):
    await setup.migrate(url)
    return async_sessionmaker(create_async_engine(url), expire_on_commit=False)


async def test_a_created_key_authenticates_as_its_agency_and_only_its_hash_is_stored(database_url):
    made = await cli("create", "--role", "agency", "--agency", "NCA", url=database_url)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    sessions = await sessions_of(database_url)
    async with sessions() as session:
        principal = await keys.principal_for(session, token)
        stored = (await session.execute(text("SELECT CAST(t AS TEXT) FROM auth.api_keys t"))).scalar_one()
    assert principal.actor == "agency:NCA" and principal.credential == f"key:{keys.parse(token)[0]}"
    assert keys.parse(token)[1] not in stored and token not in stored


async def test_the_list_shows_every_key_and_no_secret(database_url):
    token = (await cli("create", "--role", "auditor", "--name", "alice", url=database_url)).stdout.strip()
    listed = await cli("list", url=database_url)
    key_id, secret = keys.parse(token)
    assert listed.exit_code == 0 and key_id in listed.output and "alice" in listed.output
    assert secret not in listed.output


async def test_a_revoked_key_is_refused_once_the_check_it_was_remembered_by_lapses(database_url):
    token = (await cli("create", "--role", "auditor", url=database_url)).stdout.strip()
    sessions = await sessions_of(database_url)
    authenticator = Authenticator(sessions, cache_s=0.2)
    assert await authenticator.principal(token) is not None
    assert (await cli("revoke", keys.parse(token)[0], url=database_url)).exit_code == 0

    async def refused():
        return await authenticator.principal(token) is None

    await eventually(refused, 5, "the revoked key to be refused")
    assert (await cli("revoke", keys.parse(token)[0], url=database_url)).exit_code == 1  # already revoked


async def test_an_expired_key_is_refused_and_a_used_one_shows_when(database_url):
    sessions = await sessions_of(database_url)
    async with sessions() as session, session.begin():
        made = await keys.create(session, Role.operator, "bob", None, "test")
    async with sessions() as session:
        assert await keys.principal_for(session, made.token) is not None
        [row] = await keys.listing(session)
        assert row["last_used_at"] is not None
    async with sessions() as session, session.begin():
        await session.execute(update(api_keys).values(expires_at=text("now() - interval '1 second'")))
    async with sessions() as session:
        assert await keys.principal_for(session, made.token) is None


async def test_a_wrong_secret_for_a_real_key_id_is_refused(database_url):
    sessions = await sessions_of(database_url)
    async with sessions() as session, session.begin():
        made = await keys.create(session, Role.auditor, None, None, "test")
    forged = f"td_{made.key_id}_{'A' * 43}"
    async with sessions() as session:
        assert await keys.principal_for(session, forged) is None


async def test_a_person_key_cannot_name_an_agency_and_a_platform_gets_no_key(database_url):
    assert (await cli("create", "--role", "auditor", "--agency", "NCA", url=database_url)).exit_code != 0
    assert (await cli("create", "--role", "platform", url=database_url)).exit_code != 0
    assert (await cli("create", "--role", "agency", url=database_url)).exit_code != 0


async def test_the_newest_two_signing_secrets_are_valid_and_retiring_all_refuses_every_one(database_url):
    made = [(await cli("signing-secret", "--agency", "NCA", url=database_url)).stdout.strip() for _ in range(3)]
    sessions = await sessions_of(database_url)
    async with sessions() as session:
        assert (await signing.active(session, ["NCA"]))["NCA"] == [made[2], made[1]]
    assert (await cli("signing-secret", "--agency", "NCA", "--retire-all", url=database_url)).exit_code == 0
    async with sessions() as session:
        assert await signing.active(session, ["NCA"]) == {}


async def test_demo_identities_are_kept_across_restarts_and_made_again_for_a_new_database(
        database_url, postgres_server, tmp_path):
    from tests.seed import fresh_database

    path = tmp_path / demo.FILE
    first = await demo.ensure_async(database_url, path)
    again = await demo.ensure_async(database_url, path)
    assert again == first and json.loads(path.read_text()) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first["agencies"]) == {"NCA", "BorderForce"} and {"auditor", "operator", "oversight"} <= set(first)
    elsewhere = await demo.ensure_async(await asyncio.to_thread(fresh_database, postgres_server), path)
    assert elsewhere["auditor"]["token"] != first["auditor"]["token"]
