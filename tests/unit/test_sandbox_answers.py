"""Answers on the sandbox's tickets: how they are kept once per key, and when an answered question
is decided."""

from datetime import UTC, datetime

from services.sandbox.callbacks import Decider
from services.sandbox.personas import Persona
from services.sandbox.state import Store, Ticket
from shared.events import Platform

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


# --- answers kept once per key --------------------------------------------------------------------------

def ticket(store: Store, key: str = "k-1", status: str = "open") -> Ticket:
    t, _ = store.receive(key, dialect="x", platform=Platform.x, reference="r-1", url="https://x.com/1",
                         callback_url="http://127.0.0.1:9/decisions", now=AT)
    t.status = status
    return t


def test_an_answer_is_recorded_once_per_idempotency_key_and_a_replay_returns_the_first():
    store = Store()
    t = ticket(store)
    first, replayed = store.answer(t, "a-1", text="s.2", evidence=["ab" * 32], now=AT)
    again, duplicate = store.answer(t, "a-1", text="something else", evidence=[], now=AT)
    other, _ = store.answer(t, "a-2", text="more", evidence=[], now=AT)

    assert (replayed, duplicate) == (False, True) and again == first
    assert [(a.idempotency_key, a.text) for a in t.answers] == [("a-1", "s.2"), ("a-2", "more")]
    stats = store.stats().by_platform["x"]
    assert (stats.answers, stats.answer_duplicates) == (2, 1) and other.answer_id != first.answer_id


def test_the_same_key_on_another_ticket_is_another_answer_and_reset_forgets_them():
    store = Store()
    one, two = ticket(store, "k-1"), ticket(store, "k-2")
    assert not store.answer(one, "a-1", text="s.2", evidence=[], now=AT)[1]
    assert not store.answer(two, "a-1", text="s.2", evidence=[], now=AT)[1]
    store.reset()
    assert store.stats().by_platform["x"].answers == 0 and store.answer_keys == {}


# --- when an answered question is decided ------------------------------------------------------------------

def decider(delay: float = 0, notifiers=None) -> Decider:
    persona = Persona(decision_delay_s=delay, decisions={"information_request": 1})
    return Decider({p: persona for p in Platform}, "takedown", notifiers or {})


async def test_an_answer_to_a_question_decides_the_ticket_and_later_answers_change_nothing():
    d, store = decider(), Store()
    t = ticket(store)
    d.open(t)
    assert t.status == "information_requested"
    d.answered(t)
    assert (t.status, t.outcome) == ("decided", "removed")
    decided_at = t.decided_at
    d.answered(t)
    assert t.decided_at == decided_at
    await d.cancel_pending()


async def test_an_answer_to_a_ticket_that_asked_nothing_decides_nothing():
    d, store = decider(), Store()
    t = ticket(store)
    d.answered(t)
    assert (t.status, d.tasks) == ("open", set())


async def test_answers_while_the_decision_is_pending_start_one_decision():
    d, store = decider(delay=30), Store()
    t = ticket(store, status="information_requested")
    d.answered(t)
    d.answered(t)
    assert len(d.tasks) == 1 and t.status == "information_requested"
    await d.cancel_pending()
    assert d.deciding == set()
