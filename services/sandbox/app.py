"""The sandbox's composition root: personas from the settings, state, dialects and operations.

Each new report gets a ticket and, after its platform persona's delay, a fate drawn from the
persona's decision weights; the dialect calls the decision back (meta, x, webhook) or serves it
to polls (youtube, tiktok). Replaying an Idempotency-Key returns the first ticket. With
SANDBOX_STATE_FILE set, all of that outlives a restart (statefile.py).
"""

import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from services.sandbox import admin, content, domain
from services.sandbox.callbacks import Decider
from services.sandbox.config import SandboxSettings
from services.sandbox.dialects import meta, tiktok, webhook, x, youtube
from services.sandbox.mailbox import Mailbox
from services.sandbox.personas import Personas, load_personas, with_overrides
from services.sandbox.posting import callback_session
from services.sandbox.runtime import Sandbox
from services.sandbox.state import Store, Tokens
from services.sandbox.statefile import open_state_file
from services.sandbox.traffic import Traffic
from shared.serving import limit_body

log = logging.getLogger(__name__)


# The stand-in for the platforms traces nothing: FastAPI's native telemetry, on, asks OpenTelemetry for
# its providers on every request (6% of the sandbox's CPU in the e2e profile) only to find none.
NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}


def effective_personas(settings: SandboxSettings) -> Personas:
    """The persona file's personas, with SANDBOX_POLICY and SANDBOX_DECISION_DELAY_S imposed when set."""
    policy = domain.parse_policy(settings.sandbox_policy) if settings.sandbox_policy is not None else None
    return with_overrides(load_personas(settings.sandbox_personas), policy, settings.sandbox_decision_delay_s)


@contextlib.contextmanager
def remembered(sandbox: Sandbox, path: Path | None):
    """The sandbox's memory taken back from the state file at path and written to it while the block
    runs, its tickets' courses taken up again; memory only without a path."""
    if path is None:
        yield
        return
    state, saved = open_state_file(path)
    try:
        resumed = sandbox.restore(state, saved)
        log.info("sandbox state file %s: %s tickets restored, %s of them under way again",
                 path, len(saved.tickets), resumed)
        yield
    finally:
        sandbox.memory_only()
        state.close()


class WrittenBeforeAnswered:
    """ASGI middleware: an answer starts to go out once what the sandbox changed before it is written
    to its state file (at the end of the event loop's tick, with the tick's other changes), so that
    a 201 is never given for a ticket a SIGKILL could still lose."""

    def __init__(self, app, sandbox: Sandbox):
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def written_then_sent(message) -> None:
            if message["type"] == "http.response.start":
                await self.sandbox.journal.written()
            await send(message)

        await self.app(scope, receive, written_then_sent)


def create_app(settings: SandboxSettings) -> FastAPI:
    """Build the sandbox; its HTTP client for callbacks exists only while the app runs."""
    personas = effective_personas(settings)
    notifiers = {meta.DIALECT: meta.notifier(settings), x.DIALECT: x.notifier(settings),
                 webhook.DIALECT: webhook.notifier(settings)}
    store = Store()
    sandbox = Sandbox(settings=settings, personas=personas, store=store, tokens=Tokens(settings.sandbox_token_ttl_s),
                      traffic=Traffic(personas),
                      decider=Decider(personas, settings.sandbox_seed, notifiers, store))

    mailbox = Mailbox()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.sandbox_smtp_port is not None:
            await mailbox.start(settings.sandbox_host, settings.sandbox_smtp_port)
            log.info("sandbox mailbox (SMTP) listening on %s:%s", settings.sandbox_host, settings.sandbox_smtp_port)
        try:
            async with callback_session() as client:
                sandbox.decider.poster.client = client
                with remembered(sandbox, settings.sandbox_state_file):
                    log.info("sandbox ready: personas %s, policy override %s, delay override %s, seed %r",
                             settings.sandbox_personas or "(shipped)", settings.sandbox_policy,
                             settings.sandbox_decision_delay_s, settings.sandbox_seed)
                    try:
                        yield
                    finally:  # before the state file closes: nothing under way writes to it any more
                        await sandbox.decider.cancel_pending()
                        sandbox.decider.poster.client = None
        finally:
            if mailbox.running:
                await mailbox.stop()

    app = FastAPI(title="takedown platform sandbox", version="2", lifespan=lifespan, telemetry=NO_TELEMETRY)
    app.state.sandbox, app.state.mailbox = sandbox, mailbox
    for dialect in (meta, youtube, x, tiktok, webhook):
        app.include_router(dialect.router)
    app.include_router(admin.router)
    app.include_router(content.router)
    limit_body(app, settings.max_body_bytes)
    app.add_middleware(WrittenBeforeAnswered, sandbox=sandbox)

    @app.get("/mailbox", tags=["operations"])
    async def mailbox_stats() -> dict:
        """What the e-mail channels received: messages, distinct reports, repeated Message-IDs."""
        return mailbox.stats()

    return app
