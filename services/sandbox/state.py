"""The sandbox's memory: tickets and the answers they got, idempotency keys, access tokens, webhook-ids
taken and per-platform counters. Every change is told to a journal (journal.py): by default it keeps
nothing; with SANDBOX_STATE_FILE set, it is written to a file the next start restores from."""

import secrets
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.sandbox.journal import MEMORY_ONLY, Journal
from shared.events import Platform

TicketStatus = Literal["open", "information_requested", "decided"]
COUNTED = ("requests", "throttled", "errors", "unavailable", "hung")
REPLAYS = ("duplicates", "answer_duplicates")
TAKES_DOWN = frozenset({"removed", "restricted", "account_suspended"})  # outcomes after which content is gone


class Answer(BaseModel):
    """An agency's answer to a ticket, as the platform received it (once per Idempotency-Key)."""

    answer_id: str
    idempotency_key: str
    text: str
    evidence: list[str] = Field(default_factory=list, description="SHA-256 hashes of the evidence supplied.")
    received_at: datetime


class Ticket(BaseModel):
    """One report as the platform keeps it, whichever dialect it came in."""

    ticket_id: str
    dialect: str
    platform: Platform
    reference: str = Field(description="The referral id the report carries.")
    url: str
    callback_url: str | None = None
    named_platform: Platform | None = Field(
        None, description="The platform the signed report named (generic webhook); its callbacks name it again.")
    status: TicketStatus = "open"
    outcome: str | None = Field(None, description="The persona's outcome, once drawn.")
    reason: str | None = Field(None, description="The decision's no_action_reason, if any.")
    decision: dict | None = None
    information_request: dict | None = None
    received_at: datetime
    decided_at: datetime | None = None
    answers: list[Answer] = Field(default_factory=list, description="Answers received, one per Idempotency-Key.")
    callbacks_dropped: bool = Field(False, description="The persona's drop_callbacks chose this ticket: its "
                                                       "callbacks are never sent; its status API still answers.")
    called_back: TicketStatus | None = Field(
        None, description="The latest step (information_requested, decided) whose callback is done with: "
                          "delivered, or abandoned after its retries. A restart calls back a step not done with.")


class PlatformStats(BaseModel):
    reports: int = Field(0, description="Distinct tickets.")
    duplicates: int = Field(0, description="Replayed Idempotency-Keys.")
    decided: int = 0
    requests: int = Field(0, description="Requests to the platform's dialect: reports, polls, refused tokens.")
    throttled: int = Field(0, description="429s served.")
    errors: int = Field(0, description="500s served (the error rate and `error` outages).")
    unavailable: int = Field(0, description="503s served during outages.")
    hung: int = Field(0, description="Requests held past the client's timeout by `timeout` outages, then served.")
    answers: int = Field(0, description="Distinct answers received (one per ticket and Idempotency-Key).")
    answer_duplicates: int = Field(0, description="Answers replayed with an Idempotency-Key already taken.")
    callbacks_dropped: int = Field(0, description="Tickets whose callbacks the persona's drop_callbacks withheld.")


class Stats(BaseModel):
    reports: int = Field(description="Distinct tickets.")
    duplicates: int = Field(description="Replayed Idempotency-Keys.")
    by_platform: dict[str, PlatformStats]


class Store:
    """Every platform's tickets by id and by (platform, Idempotency-Key), and the counters."""

    def __init__(self, journal: Journal = MEMORY_ONLY):
        self.journal = journal
        self.tickets: dict[str, Ticket] = {}
        self.by_key: dict[tuple[Platform, str], str] = {}
        self.answer_keys: dict[tuple[str, str], Answer] = {}  # (ticket id, Idempotency-Key) -> the answer
        self.counters: dict[str, Counter[Platform]] = {name: Counter() for name in (*REPLAYS, *COUNTED)}
        self.removed_urls: set[str] = set()  # reported URLs a decision took down (GET /content answers 410)

    def receive(self, key: str, *, dialect: str, platform: Platform, reference: str, url: str,
                callback_url: str | None, now: datetime, named_platform: Platform | None = None
                ) -> tuple[Ticket, bool]:
        """The ticket for key on platform and whether it already existed (a replay, counted)."""
        # No await between check and insert: no other request can run in between, so one
        # key can never make two tickets.
        existing = self.by_key.get((platform, key))
        if existing is not None:
            self.count(platform, "duplicates")
            return self.tickets[existing], True
        ticket = Ticket(ticket_id=self._new_ticket_id(platform), dialect=dialect, platform=platform,
                        reference=reference, url=url, callback_url=callback_url, named_platform=named_platform,
                        received_at=now)
        self.journal.opened(ticket, key)  # first: if it cannot be written, the ticket does not exist
        self.tickets[ticket.ticket_id] = ticket
        self.by_key[(platform, key)] = ticket.ticket_id
        return ticket, False

    def answer(self, ticket: Ticket, key: str, *, text: str, evidence: list[str], now: datetime
               ) -> tuple[Answer, bool]:
        """Record an answer on ticket, once per key: a replay returns the first answer (and is counted)."""
        existing = self.answer_keys.get((ticket.ticket_id, key))
        if existing is not None:
            self.count(ticket.platform, "answer_duplicates")
            return existing, True
        answer = Answer(answer_id=f"answer-{uuid.uuid4().hex[:12]}", idempotency_key=key, text=text,
                        evidence=evidence, received_at=now)
        ticket.answers.append(answer)
        self.answer_keys[(ticket.ticket_id, key)] = answer
        self.journal.changed(ticket)
        return answer, False

    def changed(self, ticket: Ticket) -> None:
        """ticket changed outside the store (decided, called back): write it down."""
        self.journal.changed(ticket)

    def take_down(self, url: str) -> None:
        """A decision took the content at url down: GET /content answers 410."""
        self.removed_urls.add(url)
        self.journal.taken_down(url, True)

    def reappear(self, url: str) -> None:
        """The content at url was uploaded again: GET /content answers 200."""
        self.removed_urls.discard(url)
        self.journal.taken_down(url, False)

    def _new_ticket_id(self, platform: Platform) -> str:
        while True:
            ticket_id = f"{platform.value}-{uuid.uuid4().hex[:12]}"
            if ticket_id not in self.tickets:
                return ticket_id

    def find(self, ticket_id: str, *, platform: Platform | None = None, dialect: str | None = None
             ) -> Ticket | None:
        """The ticket, if it exists and belongs to platform and dialect (when given)."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None or (platform is not None and ticket.platform is not platform) or (
                dialect is not None and ticket.dialect != dialect):
            return None
        return ticket

    def count(self, platform: Platform, what: str) -> None:
        self.counters[what][platform] += 1
        self.journal.counted(what, platform)

    def stats(self) -> Stats:
        """Totals and per-platform counts of tickets, replays, decisions and refused requests."""
        rows = {p.value: PlatformStats(**{name: counter[p] for name, counter in self.counters.items()})
                for p in Platform}
        for ticket in self.tickets.values():
            row = rows[ticket.platform.value]
            row.reports += 1
            row.decided += ticket.status == "decided"
            row.answers += len(ticket.answers)
            row.callbacks_dropped += ticket.callbacks_dropped
        return Stats(reports=len(self.tickets), duplicates=sum(self.counters["duplicates"].values()),
                     by_platform=rows)

    def restore(self, tickets: Iterable[tuple[str, Ticket]], counts: Iterable[tuple[str, Platform, int]],
                removed_urls: Iterable[str]) -> None:
        """Take back what a journal kept: (Idempotency-Key, ticket) pairs, (counter, platform, n), URLs taken down."""
        self.reset()
        for key, ticket in tickets:
            self.tickets[ticket.ticket_id] = ticket
            self.by_key[(ticket.platform, key)] = ticket.ticket_id
            self.answer_keys.update(((ticket.ticket_id, a.idempotency_key), a) for a in ticket.answers)
        for what, platform, n in counts:
            if what in self.counters:  # a counter since removed is dropped
                self.counters[what][platform] = n
        self.removed_urls.update(removed_urls)

    def reset(self) -> None:
        """Forget everything in memory (the journal is cleared by Sandbox.reset)."""
        self.tickets.clear()
        self.by_key.clear()
        self.answer_keys.clear()
        self.removed_urls.clear()
        for counter in self.counters.values():
            counter.clear()


class Tokens:
    """OAuth2 access tokens, each valid for one dialect until it expires."""

    # Wall-clock time, not monotonic: an expiry written down must mean the same after a restart.
    def __init__(self, ttl_s: int, clock=time.time, journal: Journal = MEMORY_ONLY):
        self.ttl_s, self.clock, self.journal = ttl_s, clock, journal
        self.issued: dict[str, tuple[str, float]] = {}

    def issue(self, dialect: str) -> str:
        now = self.clock()
        # Drop the expired ones now and then, so a long-running sandbox does not grow.
        live = {t: v for t, v in self.issued.items() if v[1] > now}
        if len(live) < len(self.issued):
            self.journal.expire(now)
        self.issued = live
        token = secrets.token_urlsafe(32)
        self.issued[token] = (dialect, now + self.ttl_s)
        self.journal.token(token, dialect, now + self.ttl_s)
        return token

    def restore(self, issued: dict[str, tuple[str, float]]) -> None:
        """Take back the tokens a journal kept: token -> (dialect, expiry in unix seconds)."""
        self.issued = dict(issued)

    def valid(self, dialect: str, token: str | None) -> bool:
        entry = self.issued.get(token or "")
        return entry is not None and entry[0] == dialect and entry[1] > self.clock()


class SeenMessages:
    """webhook-ids of the signed reports taken, each until a replay of it would be stale anyway."""

    def __init__(self, clock=time.time, journal: Journal = MEMORY_ONLY):
        self.clock, self.journal = clock, journal
        # In the order taken, which is near enough the order they expire in to forget from the front.
        self.until: OrderedDict[str, float] = OrderedDict()

    def seen(self, message_id: str) -> bool:
        """Whether a report with this id was taken and is still remembered."""
        return self.until.get(message_id, 0.0) >= self.clock()

    def remember(self, message_id: str, until: float) -> None:
        """Note message_id as taken until `until` (unix seconds); the expired ones are forgotten."""
        now = self.clock()
        expired = False
        while self.until and next(iter(self.until.values())) < now:
            self.until.popitem(last=False)
            expired = True
        if expired:
            self.journal.expire(now)
        self.until[message_id] = until
        self.until.move_to_end(message_id)
        self.journal.seen(message_id, until)

    def restore(self, until: dict[str, float]) -> None:
        """Take back the webhook-ids a journal kept, with the time each is remembered until."""
        self.until = OrderedDict(sorted(until.items(), key=lambda item: item[1]))

    def reset(self) -> None:
        self.until.clear()
