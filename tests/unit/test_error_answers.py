"""What a service answers when a route fails: 503 with Retry-After for an outage (database or
broker unreachable), 500 for anything else; JSON either way, and an outage is not re-raised to
the server (which would log a traceback for every 503)."""

import asyncpg.exceptions
import httpx
from fastapi import FastAPI
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as dbapi
from sqlalchemy.exc import DBAPIError

from shared.serving import install_error_handlers


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI(title="failing")
    install_error_handlers(app, "the database is unavailable; nothing was accepted")

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


async def call(error: Exception) -> httpx.Response:
    # raise_app_exceptions=True: an error re-raised to the server is raised here, failing the test
    transport = httpx.ASGITransport(app=app_raising(error), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get("/fail")


async def test_an_outage_is_a_503_with_retry_after_and_is_not_re_raised():
    starting = DBAPIError.instance("SELECT 1", {}, dbapi.Error("starting up", asyncpg.exceptions.CannotConnectNowError(
        "the database system is starting up")), dbapi.Error)
    for error in (ConnectionRefusedError(111, "Connection refused"), starting):
        response = await call(error)
        assert response.status_code == 503, error
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {"detail": "the database is unavailable; nothing was accepted"}


async def test_any_other_error_is_a_500_in_json():
    transport = httpx.ASGITransport(app=app_raising(ValueError("bug")), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get("/fail")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
