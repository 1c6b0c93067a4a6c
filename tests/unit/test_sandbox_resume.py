"""A restarted sandbox takes up each ticket where it was left: open ones are decided when their delay
(from the report) is over, answered questions after their delay from the answer, and steps whose
callback was not done with are called back; what waits for an answer, or was done with, is left."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.sandbox.callbacks import Decider, decide
from services.sandbox.personas import Persona
from services.sandbox.posting import Callback, callback_session
from services.sandbox.state import Store, Ticket
from shared.events import Platform

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DELAY = 30.0


def decider(decisions: dict[str, float] | None = None, notifiers=None, drop: float = 0) -> Decider:
    persona = Persona(decision_delay_s=DELAY, decisions=decisions or {"removed": 1}, drop_callbacks=drop)
    return Decider({p: persona for p in Platform}, "takedown", notifiers or {}, Store())


def ticket(d: Decider, received_s_ago: float = 0, status_after: str | None = None, key: str = "k-1") -> Ticket:
    t, _ = d.store.receive(key, dialect="x", platform=Platform.x, reference="r-1", url="https://x.com/1",
                           callback_url="http://receiver.test/decisions", now=NOW - timedelta(seconds=received_s_ago))
    if status_after:
        decide(t, status_after, NOW)
    return t


async def test_a_ticket_left_open_is_decided_once_its_delay_from_the_report_is_over():
    d = decider()
    overdue, recent = ticket(d, received_s_ago=DELAY + 1), ticket(d, received_s_ago=1, key="k-2")

    assert d.resume(overdue, NOW)
    await asyncio.wait_for(asyncio.gather(*d.tasks), 5)  # not DELAY more: its delay ran out before the restart
    assert d.resume(recent, NOW)

    assert (overdue.status, recent.status, len(d.tasks)) == ("decided", "open", 1)
    await d.cancel_pending()


async def test_a_question_answered_before_the_restart_is_decided_after_its_delay_from_the_answer():
    d = decider({"information_request": 1})
    t = ticket(d, received_s_ago=100, status_after="information_request")
    d.store.answer(t, "a-1", text="s.2", evidence=[], now=NOW - timedelta(seconds=DELAY + 1))

    assert d.resume(t, NOW)
    await asyncio.gather(*d.tasks)

    assert (t.status, t.outcome) == ("decided", "removed")
    assert d.deciding == set()


@pytest.mark.parametrize("step, called_back, dropped", [
    ("none", None, False),  # a platform that never answers
    ("information_request", "information_requested", False),  # asked, called back, waits for an answer
    ("removed", "decided", False),  # decided and called back
    ("removed", None, True),  # decided, its callbacks withheld for good
])
async def test_what_waits_for_an_answer_or_was_done_with_is_left_as_it_is(step, called_back, dropped):
    d = decider(notifiers={"x": lambda t: Callback("http://receiver.test/decisions", b"{}", lambda body: {})})
    t = ticket(d, received_s_ago=100, status_after=step)
    t.called_back, t.callbacks_dropped = called_back, dropped
    assert not d.resume(t, NOW) and d.tasks == set()


@pytest.mark.parametrize("step", ["information_request", "removed"])
async def test_a_step_not_yet_called_back_is_called_back_once_and_then_left(step, receiver):
    def notify(t: Ticket) -> Callback:
        return Callback(receiver.url, t.status.encode(), lambda body: {})

    d = decider(notifiers={"x": notify})
    t = ticket(d, received_s_ago=100, status_after=step)
    async with callback_session() as client:
        d.poster.client = client
        assert d.resume(t, NOW)
        await asyncio.gather(*d.tasks)

    assert [body for _, body in receiver.calls] == [t.status.encode()] and t.called_back == t.status
    assert not d.resume(t, NOW)


async def test_a_decision_of_a_dialect_that_calls_nothing_back_is_left_as_it_is():
    d = decider()  # no notifier: x's decisions are only polled here
    t = ticket(d, received_s_ago=100, status_after="removed")
    assert not d.resume(t, NOW) and d.tasks == set()
