"""The sandbox's memory in a file (SANDBOX_STATE_FILE), so a restarted sandbox still knows its tickets.

SQLite (the standard library's sqlite3), written as it changes rather than as a JSON snapshot
now and then: a platform that answered 201 must know the ticket after any restart, SIGKILL
included, because the dispatcher polls it by id (a 404 is final for it) and re-drives a report
with the same Idempotency-Key expecting the first ticket back. A snapshot would lose whatever
changed since its last write. With an event loop running, the changes of one tick (of every
request served in it, and whatever else ran) are written together at its end, in one
transaction, and an answer starts to go out only once what was changed before it is written
(written(), which the app awaits as a response starts): a ticket, its counters and its decision
cost one commit among many, not one each, and nothing is answered before it is on file. Each transaction is all-or-nothing however the process dies, so the file
is never torn. synchronous=NORMAL: what a killed process wrote is kept; only a power cut may
lose the last few.

A file that cannot be read (not SQLite, damaged, another schema) is moved aside, named in an
error, and the sandbox starts empty: a stand-in that refuses to start would stop `takedown run`
altogether, and the moved file is there to look at.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from services.sandbox.journal import Journal
from services.sandbox.state import Ticket
from shared.events import Platform

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # PRAGMA user_version; a file of another version is not read
SCHEMA = (
    "CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, platform TEXT NOT NULL, idempotency_key TEXT NOT NULL,"
    " body TEXT NOT NULL, UNIQUE (platform, idempotency_key))",
    "CREATE TABLE counters (name TEXT NOT NULL, platform TEXT NOT NULL, value INTEGER NOT NULL,"
    " PRIMARY KEY (name, platform))",
    "CREATE TABLE removed_urls (url TEXT PRIMARY KEY)",
    "CREATE TABLE tokens (token TEXT PRIMARY KEY, dialect TEXT NOT NULL, expires_at REAL NOT NULL)",
    "CREATE TABLE seen (message_id TEXT PRIMARY KEY, until REAL NOT NULL)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class Unreadable(Exception):
    """The file is not a sandbox state file this version can read."""


@dataclass
class Saved:
    """What a state file held when it was opened."""

    tickets: list[tuple[str, Ticket]] = field(default_factory=list)  # (Idempotency-Key, ticket), oldest first
    counts: list[tuple[str, Platform, int]] = field(default_factory=list)
    removed_urls: list[str] = field(default_factory=list)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)


class StateFile(Journal):
    """A Journal writing every change to a SQLite file, those of one tick together."""

    def __init__(self, path: Path):
        self.path = path
        self.tick: asyncio.Future | None = None  # the end of this tick, when changes are pending: its problem
        self._forget_pending()
        self.db = sqlite3.connect(path, isolation_level=None)  # autocommit: each statement is a transaction
        try:
            self._prepare()
        except BaseException:
            self.db.close()
            raise

    def _prepare(self) -> None:
        try:  # read before anything is written: a file that is not ours is left as it was
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = self.db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        except sqlite3.OperationalError:
            raise  # locked, unwritable, I/O: the file may be fine, say so rather than move it
        except sqlite3.DatabaseError as exc:
            raise Unreadable(str(exc)) from exc
        if version != SCHEMA_VERSION and (version, tables) != (0, 0):
            raise Unreadable(f"schema version {version}, this sandbox reads {SCHEMA_VERSION}")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if version == 0:
            with self._transaction():
                for statement in SCHEMA:
                    self.db.execute(statement)

    def load(self) -> Saved:
        """Everything the file holds but expired tokens and webhook-ids (which it then forgets)."""
        now = time.time()
        try:
            saved = Saved(
                tickets=[(key, Ticket.model_validate_json(body)) for key, body in self.db.execute(
                    "SELECT idempotency_key, body FROM tickets ORDER BY rowid")],
                counts=[(name, Platform(platform), value) for name, platform, value in self.db.execute(
                    "SELECT name, platform, value FROM counters")],
                removed_urls=[url for (url,) in self.db.execute("SELECT url FROM removed_urls")],
                tokens={token: (dialect, expires_at) for token, dialect, expires_at in self.db.execute(
                    "SELECT token, dialect, expires_at FROM tokens WHERE expires_at > ?", (now,))},
                seen=dict(self.db.execute("SELECT message_id, until FROM seen WHERE until >= ?", (now,)).fetchall()),
            )
        except sqlite3.OperationalError:
            raise
        except (sqlite3.DatabaseError, ValidationError, ValueError) as exc:
            raise Unreadable(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        self.expire(now)
        return saved

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()

    @contextlib.contextmanager
    def _transaction(self):
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def opened(self, ticket: Ticket, key: str) -> None:
        self.new_tickets[ticket.ticket_id] = (ticket, key)
        self._due()

    def changed(self, ticket: Ticket) -> None:
        if ticket.ticket_id not in self.new_tickets:
            self.changed_tickets[ticket.ticket_id] = ticket
        self._due()

    def counted(self, what: str, platform: Platform) -> None:
        self.counts[(what, platform.value)] += 1
        self._due()

    def taken_down(self, url: str, gone: bool) -> None:
        self.urls[url] = gone
        self._due()

    def token(self, token: str, dialect: str, expires_at: float) -> None:
        self.tokens.append((token, dialect, expires_at))
        self._due()

    def seen(self, message_id: str, until: float) -> None:
        self.seen_ids.append((message_id, until))
        self._due()

    def _due(self) -> None:
        """Write what is pending at the end of this tick; at once when no event loop runs."""
        if self.tick is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.tick = loop.create_future()
        loop.call_soon(self._flush_at_end_of_tick)

    def _flush_at_end_of_tick(self) -> None:
        tick, self.tick = self.tick, None
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - kept pending (see flush); the answers waiting for it fail
            log.exception("sandbox state file %s: writing the last changes failed", self.path)
            tick.set_result(exc)
        else:
            tick.set_result(None)

    async def written(self) -> None:
        """Return once every change made so far is written: at the end of this tick, with every other
        change of the tick, in one transaction. Raises what kept them from being written."""
        if self.tick is not None:
            problem = await asyncio.shield(self.tick)  # shared by every answer of the tick
            if problem is not None:
                raise problem
        else:
            self.flush()  # nothing pending, unless the end of a tick failed to write it: now, or raise

    def flush(self) -> None:
        """Write every change not written yet, in one transaction. On failure they stay pending (the
        file may be locked or full for a while), but for a constraint broken: that can never be written."""
        if not (self.new_tickets or self.changed_tickets or self.counts or self.urls or self.tokens
                or self.seen_ids):
            return
        try:
            self._write_pending()
        except sqlite3.IntegrityError:
            self._forget_pending()
            raise
        self._forget_pending()

    def _write_pending(self) -> None:
        writes = (
            ("INSERT INTO tickets (ticket_id, platform, idempotency_key, body) VALUES (?, ?, ?, ?)",
             [(t.ticket_id, t.platform.value, key, t.model_dump_json()) for t, key in self.new_tickets.values()]),
            ("UPDATE tickets SET body = ? WHERE ticket_id = ?",
             [(t.model_dump_json(), t.ticket_id) for t in self.changed_tickets.values()]),
            ("INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET value = value + excluded.value",
             [(*key, n) for key, n in self.counts.items()]),
            ("INSERT OR IGNORE INTO removed_urls VALUES (?)", [(u,) for u, gone in self.urls.items() if gone]),
            ("DELETE FROM removed_urls WHERE url = ?", [(u,) for u, gone in self.urls.items() if not gone]),
            ("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?)", self.tokens),
            ("INSERT OR REPLACE INTO seen VALUES (?, ?)", self.seen_ids),
        )
        with self._transaction():
            for statement, rows in writes:
                if rows:
                    self.db.executemany(statement, rows)

    def _forget_pending(self) -> None:
        self.new_tickets: dict[str, tuple[Ticket, str]] = {}  # by id, in the order opened: (ticket, its key)
        self.changed_tickets: dict[str, Ticket] = {}
        self.counts: Counter[tuple[str, str]] = Counter()  # (counter, platform) -> increments
        self.urls: dict[str, bool] = {}  # url -> taken down (True) or back up (False), the latest
        self.tokens: list[tuple[str, str, float]] = []
        self.seen_ids: list[tuple[str, float]] = []

    def expire(self, now: float) -> None:
        self.flush()
        with self._transaction():
            self.db.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
            self.db.execute("DELETE FROM seen WHERE until < ?", (now,))

    def cleared(self) -> None:
        self.flush()
        with self._transaction():
            for table in ("tickets", "counters", "removed_urls", "seen"):
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - names from the line above


def open_state_file(path: Path) -> tuple[StateFile, Saved]:
    """The state file at path (created if missing) and what it holds. One that cannot be read is
    moved aside, with an error saying where, and a new one is started in its place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        state = StateFile(path)
    except Unreadable as exc:
        return _start_afresh(path, exc)
    try:
        return state, state.load()
    except Unreadable as exc:
        state.close()
        return _start_afresh(path, exc)


def _start_afresh(path: Path, problem: Unreadable) -> tuple[StateFile, Saved]:
    aside = _unused(path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"))
    for suffix in ("", "-wal", "-shm"):  # a write-ahead log left over belongs to the old file, not a new one
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.replace(aside.with_name(aside.name + suffix))
    log.error("sandbox state file %s cannot be read (%s): moved to %s; the sandbox starts with no tickets, "
              "keys or counters", path, problem, aside)
    state = StateFile(path)
    return state, Saved()


def _unused(path: Path) -> Path:
    """path, or path-2, path-3, ... whichever does not exist yet."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
