"""The running sandbox: its settings, effective personas and state, as the routes reach them."""

from dataclasses import dataclass, field

from fastapi import Request

from services.sandbox.callbacks import Decider
from services.sandbox.config import SandboxSettings
from services.sandbox.journal import MEMORY_ONLY, Journal
from services.sandbox.personas import Personas
from services.sandbox.state import SeenMessages, Stats, Store, Tokens
from services.sandbox.statefile import Saved
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
    journal: Journal = MEMORY_ONLY

    @property
    def tasks(self):
        """Decisions and deliveries under way."""
        return self.decider.tasks

    def stats(self) -> Stats:
        return self.store.stats()

    def restore(self, journal: Journal, saved: Saved) -> int:
        """Take back what journal saved, write every change to it from now on, and take up each ticket's
        course where it was left (the event loop must run); how many tickets are under way again."""
        self.store.restore(saved.tickets, saved.counts, saved.removed_urls)
        self.tokens.restore(saved.tokens)
        self.seen.restore(saved.seen)
        self._journal(journal)
        return sum(self.decider.resume(ticket) for ticket in list(self.store.tickets.values()))

    def memory_only(self) -> None:
        """Write changes nowhere from now on (before the journal is closed)."""
        self._journal(MEMORY_ONLY)

    def _journal(self, journal: Journal) -> None:
        self.journal = self.store.journal = self.tokens.journal = self.seen.journal = journal

    async def reset(self) -> None:
        """Forget every ticket, key, webhook-id and counter, cancel pending decisions, end admin outages."""
        await self.decider.cancel_pending()
        self.store.reset()
        self.seen.reset()
        self.traffic.reset()
        self.journal.cleared()


def sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox
