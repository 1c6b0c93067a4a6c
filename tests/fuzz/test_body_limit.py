"""Request bodies over the limit (MAX_BODY_BYTES, 10 MiB by default) get 413 with a JSON error,
whether declared by Content-Length or streamed in chunks, and the services keep serving."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st

from shared.serving import install_error_handlers, limit_body
from shared.settings import BaseServiceSettings
from tests.fuzz.payloads import FUZZ, assert_clear_refusal, json_headers

LIMIT = 1024
TWENTY_MB = 20 * 1024 * 1024
# One route taking a body per service; outcomes only reads, so a GET with a body (which it never reads).
ROUTES = {"intake": ("POST", "/v1/referrals"), "dispatcher": ("POST", "/v1/callbacks/facebook"),
          "outcomes": ("GET", "/v1/referrals"), "sandbox": ("POST", "/meta/v1/reports")}


def small_app() -> FastAPI:
    """A bare app with the shared plumbing and a LIMIT-byte body limit."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"read": len(await request.body())}

    @app.post("/model")
    async def model(body: dict) -> dict:
        return {"keys": len(body)}

    install_error_handlers(app, "unavailable")
    limit_body(app, LIMIT)
    return app


def chunks(size: int, chunk: int = 300):
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


async def achunks(size: int):
    for chunk in chunks(size):
        yield chunk


def post(path: str, content) -> httpx.Response:
    """One request to a fresh small_app(), sent as ASGI messages: chunk by chunk when streamed."""
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(small_app()), base_url="http://app") as client:
            return await client.post(path, content=content, headers=json_headers())

    return asyncio.run(send())


def test_the_default_limit_leaves_room_for_a_batch_of_a_thousand():
    assert BaseServiceSettings().max_body_bytes == 10 * 1024 * 1024


@pytest.mark.parametrize("path", ["/echo", "/model"])
def test_a_body_is_read_up_to_the_limit_and_refused_past_it_declared_or_streamed(path):
    @FUZZ
    @given(size=st.one_of(st.integers(0, 3 * LIMIT), st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1])),
           streamed=st.booleans())
    def sized(size, streamed):
        response = post(path, achunks(size) if streamed else b"x" * size)
        if size > LIMIT:
            detail = assert_clear_refusal(response, 413)
            assert detail == f"request body larger than {LIMIT} bytes"
        else:
            assert response.status_code != 413, response.text

    sized()


@pytest.mark.parametrize("service", sorted(ROUTES))
def test_twenty_megabytes_get_413_from_every_service_which_keeps_serving(stack, service):
    method, path = ROUTES[service]
    with stack.client(service) as client:  # signed in where the route asks for an identity
        declared = client.request(method, path, content=b"{" * TWENTY_MB, headers=json_headers())
        assert "10485760 bytes" in assert_clear_refusal(declared, 413)
        streamed = client.request(method, path, content=chunks(TWENTY_MB, 1024 * 1024), headers=json_headers())
        if method == "GET":  # nothing reads it, so nothing stops reading it: the route answers as usual
            assert streamed.status_code == 200, streamed.text
        else:
            assert "10485760 bytes" in assert_clear_refusal(streamed, 413)
        assert client.get("/health").json()["status"] == "ok"


def test_a_full_batch_of_ordinary_referrals_fits_under_the_limit(stack):
    referral = {"agency": "NCA", "url": "https://www.facebook.com/groups/batch", "category": "people_smuggling",
                "case_reference": "OP-2020-17", "notes": "n" * 2000,
                "evidence": [{"sha256": "ab" * 32, "captured_at": "2026-11-20T10:00:00Z"}] * 3}
    with stack.client("intake") as intake:
        response = intake.post("/v1/referrals/batch", json={"referrals": [referral] * 1000})
    assert response.status_code == 202, response.text[:300]
    assert response.json()["invalid"] == 0
