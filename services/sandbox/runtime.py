"""The running sandbox: its settings, effective personas and state, as the routes reach them."""

from dataclasses import dataclass, field

from fastapi import Request

from services.sandbox.callbacks import Decider
from services.sandbox.config import SandboxSettings
from services.sandbox.personas import Personas
from services.sandbox.state import SeenMessages, Stats, Store, Tokens
from services.sandbox.traffic import Traffic


@dataclass
class Sandbox:
    settings: SandboxSettings
    personas: Personas
    store: Store
    tokens: Tokens
    traffic: Traffic
    decider: Decider
    seen: SeenMessages = field(default_factory=SeenMessages)

    @property
    def tasks(self):
        """Decisions and deliveries under way."""
        return self.decider.tasks

    def stats(self) -> Stats:
        return self.store.stats()

    async def reset(self) -> None:
        """Forget every ticket, key, webhook-id and counter, cancel pending decisions, end admin outages."""
        await self.decider.cancel_pending()
        self.store.reset()
        self.seen.reset()
        self.traffic.reset()


def sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox
