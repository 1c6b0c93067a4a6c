"""Intake's composition root: the one place its parts are built and wired."""

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.intake import actions, api, handlers
from services.intake.backpressure import Bound, Gauge, InboundValve, KafkaLag, Refused
from services.intake.config import IntakeSettings
from services.intake.db import OUTBOX, SCHEMA
from services.intake.inbound import InboundPolicy
from services.intake.service import IntakeService
from shared import auth, db, topics
from shared.auth import setup as auth_setup
from shared.kafka import consumer_options, ensure_topics, make_broker, start_broker
from shared.kafka_watch import watch_service
from shared.receipts import register_receipts
from shared.redact import configured_secrets, register_secrets
from shared.relay import OutboxRelay
from shared.stuck import broker_lost
from shared.serving import add_health, install_error_handlers, limit_body

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IntakeSettings) -> FastAPI:
    """Build intake; it connects to Postgres and Kafka when the app starts, not before."""
    register_secrets(*configured_secrets(settings))  # kept out of logs and dead letters from here on
    engine = db.make_engine(settings.database_url)
    sessions = db.make_sessions(engine)
    broker = make_broker(settings, "takedown-intake")
    relay = OutboxRelay(sessions, broker, OUTBOX, settings.outbox_batch, settings.outbox_idle_poll_s,
                        settings.redrive_after_s)
    gauge, lag = _gauge(settings, sessions)
    service = IntakeService(sessions, on_commit=relay.wake, admission=gauge)
    inbound = handlers.register(broker, service, consumer_options(settings, topics.GROUP_INTAKE),
                                policy=InboundPolicy.of(settings))
    gauge.listeners.append(InboundValve(inbound).apply)
    register_receipts(broker, "intake", sessions, OUTBOX, consumer_options(settings, topics.GROUP_INTAKE))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await auth_setup.migrate(settings.database_url)
        await db.migrate(settings.database_url, MIGRATIONS, SCHEMA)
        await ensure_topics(settings, topics.needed_by("intake"))
        await start_broker(broker)
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay"),
                 asyncio.create_task(watch_service(settings, "intake", broker,
                                                   on_lost=lambda: broker_lost(sessions, OUTBOX)), name="broker-watch"),
                 asyncio.create_task(gauge.run(settings.backpressure_sample_s), name="backpressure-gauge")]
        log.info("intake ready: Kafka %s, database %s", settings.kafka_bootstrap_servers,
                 db.describe(settings.database_url))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await lag.close()
        await broker.stop()
        await engine.dispose()

    app = FastAPI(title="takedown intake", version="1", lifespan=lifespan)
    app.state.intake, app.state.relay, app.state.sessions, app.state.gauge = service, relay, sessions, gauge
    app.state.max_redispatches, app.state.redrive_after_s = settings.max_redispatches, settings.redrive_after_s
    app.include_router(api.router)
    app.include_router(actions.router)
    app.include_router(api.operators)

    install_error_handlers(app, "storage unavailable, nothing was accepted; retry")
    app.add_exception_handler(Refused, _too_many)
    limit_body(app, settings.max_body_bytes)
    add_health(app, "intake", engine)
    auth.secure(app, auth_setup.authenticator(settings, sessions))  # last: it checks every route

    return app


async def _too_many(request: Request, exc: Refused) -> JSONResponse:
    """429 with Retry-After: intake is at its bound of work not yet dispatched."""
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)})


def _gauge(settings: IntakeSettings, sessions) -> tuple[Gauge, KafkaLag]:
    """The backpressure gauge: intake's events the dispatcher has not confirmed (counted up to ten
    times the bound), and the dispatcher's lag."""
    bound = Bound.of(settings)

    async def outbox_depth() -> int:
        async with sessions() as session:
            return await OUTBOX.unconfirmed_by(session, "dispatcher", 10 * bound.max_backlog)

    sample_ms = int(settings.backpressure_sample_s * 1000)
    lag = KafkaLag(settings.kafka_bootstrap_servers, fetch_wait_ms=max(10, min(500, sample_ms // 2)))
    return Gauge(bound, outbox_depth, lag, timeout_s=max(2.0, 2 * settings.backpressure_sample_s)), lag
