"""Answers on the sandbox's tickets and callbacks dropped for good: which tickets lose their
callbacks, how answers are kept once per key, and when an answered question is decided."""

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest

from services.sandbox.callbacks import Decider
from services.sandbox.domain import choose_outcome, drops_callbacks
from services.sandbox.personas import Persona, PersonaError, parse_personas
from services.sandbox.posting import Callback, callback_session
from services.sandbox.state import Store, Ticket
from shared.events import Platform

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
REFERENCES = [f"referral-{i}" for i in range(10_000)]


# --- which tickets lose their callbacks ----------------------------------------------------------------

def test_no_share_drops_no_callback_and_the_whole_share_drops_every_one():
    assert not any(drops_callbacks(0, "takedown", r) for r in REFERENCES[:1000])
    assert all(drops_callbacks(1, "takedown", r) for r in REFERENCES[:1000])


def test_a_share_of_0_3_drops_about_three_tickets_in_ten_the_same_ones_every_time():
    dropped = [r for r in REFERENCES if drops_callbacks(0.3, "takedown", r)]
    assert len(dropped) / len(REFERENCES) == pytest.approx(0.3, abs=0.02)
    assert dropped == [r for r in REFERENCES if drops_callbacks(0.3, "takedown", r)]
    assert dropped != [r for r in REFERENCES if drops_callbacks(0.3, "another seed", r)]


def test_which_tickets_lose_their_callbacks_does_not_depend_on_how_they_are_decided():
    policy = {"removed": 0.5, "rejected": 0.5}
    fates = Counter(choose_outcome(policy, "takedown", r) for r in REFERENCES if drops_callbacks(0.3, "takedown", r))
    assert fates["removed"] / sum(fates.values()) == pytest.approx(0.5, abs=0.03)


def test_a_persona_drops_no_callback_unless_told_and_a_share_outside_0_to_1_is_refused():
    assert parse_personas({})[Platform.x].drop_callbacks == 0
    assert parse_personas({"x": {"drop_callbacks": 0.3}})[Platform.x].drop_callbacks == 0.3
    for share in (-0.1, 1.5, "often"):
        with pytest.raises(PersonaError, match="x: drop_callbacks"):
            parse_personas({"x": {"drop_callbacks": share}})


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

def decider(delay: float = 0, drop: float = 0, notifiers=None) -> Decider:
    persona = Persona(decision_delay_s=delay, decisions={"information_request": 1}, drop_callbacks=drop)
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


@pytest.mark.parametrize("share, dropped", [(1, True), (0, False)])
async def test_a_ticket_drawn_to_lose_its_callbacks_is_not_called_back(share, dropped, receiver):
    def notify(t: Ticket) -> Callback:
        return Callback(receiver.url, t.status.encode(), lambda body: {})

    d, store = decider(drop=share, notifiers={"x": notify}), Store()
    async with callback_session() as client:
        d.poster.client = client
        t = ticket(store)
        d.open(t)
        await asyncio.gather(*d.tasks)
    assert t.callbacks_dropped is dropped
    assert [body for _, body in receiver.calls] == ([] if dropped else [b"information_requested"])
