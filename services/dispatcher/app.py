"""Dispatcher's composition root: the one place its parts are built and wired."""

import contextlib
import logging

from fastapi import FastAPI

from services.dispatcher import api, handlers
from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.adapters.reporting_api import ReportingApiAdapter, ReportingApiConfig
from services.dispatcher.config import DispatcherSettings
from services.dispatcher.service import DispatchService
from shared import topics
from shared.events import Platform
from shared.kafka import consumer_options, ensure_topics, make_broker
from shared.serving import add_health, install_error_handlers

log = logging.getLogger(__name__)


def build_registry(settings: DispatcherSettings) -> AdapterRegistry:
    """One reporting-API adapter per platform, all pointed at the configured API base URL."""
    config = ReportingApiConfig(base_url=settings.sandbox_url, timeout_s=settings.delivery_timeout_s,
                                callback_base_url=settings.dispatcher_callback_base_url)
    registry = AdapterRegistry()
    for platform in Platform:
        registry.register(ReportingApiAdapter(platform.value, (platform,), config))
    return registry


def create_app(settings: DispatcherSettings, registry: AdapterRegistry | None = None) -> FastAPI:
    """Build the dispatcher; it connects to Kafka and platforms when the app starts, not before."""
    registry = registry or build_registry(settings)
    broker = make_broker(settings, "takedown-dispatcher")
    service = DispatchService(registry, broker, settings.delivery_attempts, settings.delivery_backoff_base_s)
    handlers.register(broker, service, consumer_options(settings, topics.GROUP_DISPATCHER))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await ensure_topics(settings, topics.needed_by("dispatcher"))
        await broker.start()
        log.info("dispatcher ready: Kafka %s, platforms API %s, adapters %s",
                 settings.kafka_bootstrap_servers, settings.sandbox_url, [a.slug for a in registry])
        yield
        await broker.stop()
        for adapter in registry:
            await adapter.close()

    app = FastAPI(title="takedown dispatcher", version="1", lifespan=lifespan)
    app.state.dispatcher = service
    app.include_router(api.router)

    install_error_handlers(app, "Kafka unavailable, decision not recorded; retry")
    add_health(app, "dispatcher")

    return app
