"""Where the sandbox's memory is written down as it changes: the port its state writes through.

This base writes nothing: the sandbox keeps its memory in the process only (tests, and whenever
SANDBOX_STATE_FILE is unset). statefile.StateFile writes the same calls to a file that outlives
the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.sandbox.state import Ticket
    from shared.events import Platform


class Journal:
    """Told of every change to tickets, counters, taken-down URLs, tokens and webhook-ids; keeps none."""

    def opened(self, ticket: Ticket, key: str) -> None:
        """A new ticket, opened by a report with Idempotency-Key key."""

    def changed(self, ticket: Ticket) -> None:
        """ticket changed: decided, asked a question, got an answer, was called back."""

    def counted(self, what: str, platform: Platform) -> None:
        """One more of the counter `what` on platform."""

    def taken_down(self, url: str, gone: bool) -> None:
        """The content at url was taken down by a decision (gone) or uploaded again (not gone)."""

    def token(self, token: str, dialect: str, expires_at: float) -> None:
        """An access token issued for dialect, valid until expires_at (unix seconds)."""

    def seen(self, message_id: str, until: float) -> None:
        """A signed report's webhook-id, to refuse replays of until `until` (unix seconds)."""

    def expire(self, now: float) -> None:
        """Tokens and webhook-ids expired by now (unix seconds) are of no more use."""

    async def written(self) -> None:
        """Return once every change made so far is written down: awaited before each answer goes out."""

    def cleared(self) -> None:
        """POST /reset: every ticket, key, counter, taken-down URL and webhook-id forgotten (not tokens)."""


MEMORY_ONLY = Journal()
