"""The sandbox's state file: what is written comes back on the next start, and a file that cannot be
read is moved aside, named in an error, and the sandbox starts empty instead of crashing."""

import contextlib
import logging
import sqlite3
from datetime import UTC, datetime

import pytest

from services.sandbox.callbacks import decide
from services.sandbox.state import SeenMessages, Store, Tokens
from services.sandbox.statefile import SCHEMA_VERSION, open_state_file
from shared.events import Platform
from tests.support import eventually

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def receive(store: Store, key: str, platform: Platform = Platform.youtube):
    ticket, _ = store.receive(key, dialect="youtube", platform=platform, reference=f"ref-{key}",
                              url=f"https://www.youtube.com/watch?v={key}", callback_url=None, now=AT)
    return ticket


def written(path, tickets: int = 1) -> None:
    """A state file at path holding that many tickets."""
    state, _ = open_state_file(path)
    store = Store(state)
    for i in range(tickets):
        receive(store, f"k-{i}")
    state.close()


def test_what_was_written_comes_back_when_the_file_is_opened_again(tmp_path):
    path = tmp_path / "sandbox" / "state.db"
    state, saved = open_state_file(path)
    assert saved.tickets == [] and path.exists()
    store, tokens, seen = Store(state), Tokens(3600, journal=state), SeenMessages(journal=state)
    first, second = receive(store, "k-1"), receive(store, "k-2", Platform.x)
    store.answer(first, "a-1", text="s.2", evidence=["ab" * 32], now=AT)
    decide(second, "removed", AT)
    second.called_back = "decided"
    store.changed(second)
    store.take_down(second.url)
    store.count(Platform.x, "requests")
    store.count(Platform.x, "requests")
    token = tokens.issue("meta")
    seen.remember("msg_1", until=4_000_000_000)
    state.close()

    state, saved = open_state_file(path)
    again, tokens_again, seen_again = Store(), Tokens(3600), SeenMessages()
    again.restore(saved.tickets, saved.counts, saved.removed_urls)
    tokens_again.restore(saved.tokens)
    seen_again.restore(saved.seen)
    state.close()

    assert list(again.tickets.values()) == [first, second]
    assert again.by_key == {(Platform.youtube, "k-1"): first.ticket_id, (Platform.x, "k-2"): second.ticket_id}
    assert again.answer_keys == {(first.ticket_id, "a-1"): first.answers[0]}
    assert again.removed_urls == {second.url}
    assert again.stats() == store.stats()
    assert tokens_again.valid("meta", token) and seen_again.seen("msg_1")


def test_expired_tokens_and_webhook_ids_are_not_brought_back(tmp_path):
    now = [1_000_000_000.0]  # 2001: long expired
    state, _ = open_state_file(tmp_path / "state.db")
    tokens, seen = Tokens(60, clock=lambda: now[0], journal=state), SeenMessages(journal=state)
    tokens.issue("x")
    seen.remember("msg_old", until=1.0)
    state.close()

    state, saved = open_state_file(tmp_path / "state.db")
    state.close()
    assert saved.tokens == {} and saved.seen == {}


def test_a_reset_empties_the_file_but_keeps_the_access_tokens(tmp_path):
    state, _ = open_state_file(tmp_path / "state.db")
    store, tokens = Store(state), Tokens(3600, journal=state)
    receive(store, "k-1")
    store.count(Platform.youtube, "requests")
    tokens.issue("meta")
    state.cleared()
    state.close()

    state, saved = open_state_file(tmp_path / "state.db")
    state.close()
    assert (saved.tickets, saved.counts, len(saved.tokens)) == ([], [], 1)


def test_one_key_on_one_platform_cannot_be_written_for_two_tickets(tmp_path):
    state, _ = open_state_file(tmp_path / "state.db")
    ticket = receive(Store(state), "k-1")
    with pytest.raises(sqlite3.IntegrityError):
        state.opened(ticket.model_copy(update={"ticket_id": "youtube-other"}), "k-1")
    state.close()


def garbage(path) -> None:
    path.write_bytes(b"this is not a sandbox state file\n" * 200)


def torn(path) -> None:
    written(path, tickets=500)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def another_version(path) -> None:
    written(path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def another_application(path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")


def a_ticket_that_does_not_validate(path) -> None:
    written(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE tickets SET body = '{\"ticket_id\": 1}'")


@pytest.mark.parametrize("spoil", [garbage, torn, another_version, another_application,
                                   a_ticket_that_does_not_validate])
def test_a_file_that_cannot_be_read_is_moved_aside_with_an_error_and_the_sandbox_starts_empty(tmp_path, caplog,
                                                                                              spoil):
    path = tmp_path / "state.db"
    spoil(path)
    before = path.read_bytes()

    with caplog.at_level(logging.ERROR, logger="services.sandbox.statefile"):
        state, saved = open_state_file(path)
    receive(Store(state), "k-new")
    state.close()

    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("state.db.unreadable-") and "-wal" not in p.name
               and "-shm" not in p.name]
    assert aside.read_bytes() == before, "the unreadable file is kept as it was"
    assert saved.tickets == []
    [record] = caplog.records
    assert "cannot be read" in record.getMessage() and str(aside) in record.getMessage()
    state, saved = open_state_file(path)
    state.close()
    assert [key for key, _ in saved.tickets] == ["k-new"], "the new file is written and read again"


def test_a_second_unreadable_file_does_not_overwrite_the_first_one_moved_aside(tmp_path):
    path = tmp_path / "state.db"
    for _ in range(2):
        garbage(path)
        state, _ = open_state_file(path)
        state.close()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("state.db.unreadable-")]) == 2


async def test_changes_made_while_the_event_loop_runs_are_written_by_the_end_of_the_tick_without_an_answer(tmp_path):
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    store = Store(state)
    first, second = receive(store, "k-1"), receive(store, "k-2")
    decide(second, "removed", AT)
    store.changed(second)
    store.count(Platform.youtube, "requests")
    store.count(Platform.youtube, "requests")

    async def on_file() -> bool:
        with contextlib.closing(sqlite3.connect(path)) as db:
            tickets = db.execute("SELECT ticket_id, json_extract(body, '$.status') FROM tickets ORDER BY rowid")
            counters = db.execute("SELECT name, platform, value FROM counters")
            return (tickets.fetchall(), counters.fetchall()) == (
                [(first.ticket_id, "open"), (second.ticket_id, "decided")], [("requests", "youtube", 2)])

    await eventually(on_file, 5, "the tick's changes on file")
    state.close()
