"""Dispatcher's composition root: the one place its parts are built and wired."""

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from services.dispatcher import api, handlers
from services.dispatcher.adapters.registry import AdapterRegistry, build_registry, refuse_sandbox_secrets
from services.dispatcher.config import DispatcherSettings
from services.dispatcher.db import OUTBOX, SCHEMA
from services.dispatcher.decisions import Decisions
from services.dispatcher.lanes import Lane, RetryPolicy
from services.dispatcher.outbound import Outbound
from services.dispatcher.limits import LimitStore
from services.dispatcher.reconciler import Reconciler
from services.dispatcher.reconciler import broker_lost as reconciler_broker_lost
from services.dispatcher.service import DispatchService, Timing
from services.dispatcher.sharing import SharedLimits
from shared import auth, db, topics
from shared.auth import setup as auth_setup
from shared.kafka import consumer_options, ensure_topics, make_broker, start_broker
from shared.kafka_watch import watch_service
from shared.receipts import register_receipts
from shared.redact import configured_secrets, register_secrets
from shared.relay import OutboxRelay
from shared.reliability import keep_going
from shared.serving import add_health, install_error_handlers, limit_body

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def build_lanes(settings: DispatcherSettings, registry: AdapterRegistry, limits: SharedLimits) -> dict:
    """One lane per served platform; platforms of one adapter share its breaker and rate limit, and
    so does every dispatcher process (through Postgres: limits.py)."""
    policy = RetryPolicy(settings.delivery_attempts, settings.delivery_backoff_base_s, settings.delivery_backoff_cap_s)
    lanes = {}
    for adapter in registry:
        limit = adapter.config.rate_limit
        breaker, bucket = limits.protections(adapter.slug, limit.per_second, limit.burst, settings.breaker_failures,
                                             settings.breaker_reset_s, settings.breaker_max_reset_s)
        lanes.update(dict.fromkeys(adapter.platforms, Lane(adapter, breaker, bucket, policy)))
    return lanes


def lane_options(settings: DispatcherSettings) -> dict:
    """Lanes wait out a platform's outage inside a batch: give them long before a rebalance."""
    return {**consumer_options(settings, topics.GROUP_DISPATCHER), "max_records": settings.lane_batch,
            "max_poll_interval_ms": 30 * 60 * 1000}


def create_app(settings: DispatcherSettings, registry: AdapterRegistry | None = None) -> FastAPI:
    """Build the dispatcher; it connects to Kafka, Postgres and platforms when the app starts.

    An adapter holding a sandbox secret for a platform that is not the sandbox is refused here."""
    registry = registry or build_registry(settings.adapter_settings)
    refuse_sandbox_secrets(registry, settings.sandbox_url)
    register_secrets(*configured_secrets(settings), *(s for a in registry for s in configured_secrets(a.config)))
    engine = db.make_engine(settings.database_url)
    broker = make_broker(settings, "takedown-dispatcher")
    sessions = db.make_sessions(engine)
    relay = OutboxRelay(sessions, broker, OUTBOX, settings.outbox_batch, settings.outbox_idle_poll_s,
                        settings.redrive_after_s)
    limits = SharedLimits(LimitStore(engine), settings.limit_lease_s, settings.limit_sync_s)
    lanes, outbound = build_lanes(settings, registry, limits), Outbound(broker)
    service = DispatchService(registry, lanes, outbound, engine,
                              Timing(settings.redrive_after_s, settings.webhook_poll_after_s), relay.wake)
    decisions = Decisions(registry, lanes, engine, relay.wake)
    reconciler = Reconciler(sessions, outbound, settings.redrive_after_s,
                            paused=lambda: [p.value for p, lane in lanes.items() if lane.breaker.cooling()])
    handlers.register(broker, service, consumer_options(settings, topics.GROUP_DISPATCHER), lane_options(settings),
                      tuple(p.value for p in registry.platforms))
    register_receipts(broker, "dispatcher", sessions, OUTBOX, consumer_options(settings, topics.GROUP_DISPATCHER))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await auth_setup.migrate(settings.database_url)
        await db.migrate(settings.database_url, MIGRATIONS, SCHEMA)
        await ensure_topics(settings, topics.needed_by("dispatcher"))
        await start_broker(broker)
        tasks = [asyncio.create_task(loop, name=name) for name, loop in (
            ("ticket-poller", poll_forever(decisions, settings.poll_tick_s)), ("outbox-relay", relay.run()),
            ("reconciler", reconciler.run(settings.reconcile_every_s)), ("lane-limits", limits.run()),
            ("broker-watch", watch_service(settings, "dispatcher", broker,
                                           on_lost=lambda: reconciler_broker_lost(sessions))))]
        log.info("dispatcher ready: Kafka %s, adapters %s", settings.kafka_bootstrap_servers,
                 {a.slug: [p.value for p in a.platforms] for a in registry})
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
        for adapter in registry:
            await adapter.close()
        await engine.dispose()

    app = FastAPI(title="takedown dispatcher", version="1", lifespan=lifespan)
    app.state.dispatcher, app.state.decisions, app.state.sessions = service, decisions, sessions
    return serve_routes(app, settings, engine, sessions)


def serve_routes(app: FastAPI, settings: DispatcherSettings, engine, sessions) -> FastAPI:
    """The dispatcher's routes, error answers, body limit and health, every route behind its role."""
    app.state.redrive_after_s = settings.redrive_after_s
    app.include_router(api.callbacks)
    app.include_router(api.operators)
    install_error_handlers(app, "the database is unavailable, decision not recorded; retry")
    limit_body(app, settings.max_body_bytes)
    add_health(app, "dispatcher", engine)
    auth.secure(app, auth_setup.authenticator(settings, sessions))  # last: it checks every route
    return app


async def poll_forever(decisions: Decisions, tick_s: float) -> None:
    """Poll due tickets until cancelled; a failing round is logged and retried with backoff."""
    async def round_() -> bool:
        return await decisions.poll_due() > 0

    await keep_going(round_, tick_s, "polling round")
