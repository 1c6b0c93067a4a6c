"""Outcomes' composition root: the one place its parts are built and wired."""

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from services.outcomes import api, auditors, handlers
from services.outcomes.config import OutcomesSettings
from services.outcomes.db import SCHEMA
from services.outcomes.probe import HttpContentProbe
from services.outcomes.scheduler import Scheduler
from services.outcomes.service import OutcomesService
from shared import auth, db, topics
from shared.auth import setup as auth_setup
from shared.fetch import GuardedFetcher
from shared.kafka import consumer_options, ensure_topics, make_broker, start_broker
from shared.kafka_watch import watch_service
from shared.redact import configured_secrets, register_secrets
from shared.serving import add_health, install_error_handlers, limit_body

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: OutcomesSettings) -> FastAPI:
    """Build outcomes; it migrates its schema and connects when the app starts, not before."""
    register_secrets(*configured_secrets(settings))  # kept out of logs and dead letters from here on
    engine = db.make_engine(settings.database_url)
    sessions = db.make_sessions(engine)
    # Exports stream for as long as an auditor reads: a small pool of their own, every statement
    # bounded, so they cannot take the connections ingestion needs.
    export_engine = db.make_engine(settings.database_url, pool_size=settings.export_concurrency, max_overflow=0,
                                   statement_timeout_s=settings.export_statement_timeout_s)
    broker = make_broker(settings, "takedown-outcomes")
    handlers.register(broker, OutcomesService(sessions), consumer_options(settings, topics.GROUP_OUTCOMES))
    probe = HttpContentProbe(settings.content_check_url, GuardedFetcher(settings.fetch_settings()))
    scheduler = Scheduler(sessions, broker, probe, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await auth_setup.migrate(settings.database_url)
        await db.migrate(settings.database_url, MIGRATIONS, SCHEMA)
        await ensure_topics(settings, topics.needed_by("outcomes"))
        await start_broker(broker)
        scheduler.start()
        watch = asyncio.create_task(watch_service(settings, "outcomes", broker), name="broker-watch")
        log.info("outcomes ready: Kafka %s, database %s", settings.kafka_bootstrap_servers,
                 db.describe(settings.database_url))
        yield
        await scheduler.stop()
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        await broker.stop()
        await engine.dispose()
        await export_engine.dispose()

    app = FastAPI(title="takedown outcomes", version="1", lifespan=lifespan)
    app.state.sessions, app.state.export_sessions = sessions, db.make_sessions(export_engine)
    app.state.export_slots = asyncio.Semaphore(settings.export_concurrency)
    app.include_router(auditors.router)  # first: /v1/referrals/export.csv is not a referral id
    app.include_router(auditors.oversight)
    app.include_router(api.router)
    install_error_handlers(app, "database unavailable; retry")
    limit_body(app, settings.max_body_bytes)
    add_health(app, "outcomes", engine)
    auth.secure(app, auth_setup.authenticator(settings, sessions))  # last: it checks every route

    return app
