"""Calls arriving together are handled together, each caller getting its own answer."""

import asyncio

import pytest

from services.dispatcher.accumulator import Accumulator


class Handler:
    """Doubles each number; refuses negative ones; fails the whole group on a 13. Records the groups."""

    def __init__(self):
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.groups.append(items)
        await self.release.wait()
        if 13 in items:
            raise RuntimeError("the database is down")
        return [ValueError(f"negative: {i}") if i < 0 else 2 * i for i in items]


async def test_calls_arriving_together_are_one_group_and_each_caller_gets_its_own_answer():
    handler = Handler()
    batch = Accumulator(handler, size=10, wait_s=0.01)
    answers = await asyncio.gather(*(batch.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert handler.groups == [[1, -2, 3]]
    assert answers[0] == 2 and answers[2] == 6
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "negative: -2"


async def test_a_full_group_goes_at_once_without_waiting_for_the_timer():
    handler = Handler()
    batch = Accumulator(handler, size=2, wait_s=60)
    assert await asyncio.wait_for(asyncio.gather(batch.submit(1), batch.submit(2)), 5) == [2, 4]
    assert handler.groups == [[1, 2]]


async def test_a_group_that_fails_as_a_whole_fails_every_caller_in_it():
    batch = Accumulator(Handler(), size=10, wait_s=0.001)
    answers = await asyncio.gather(batch.submit(13), batch.submit(1), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) for a in answers)
    assert await batch.submit(5) == 10, "the next group is handled as usual"


async def test_calls_arriving_while_groups_are_handled_wait_and_go_together():
    handler = Handler()
    handler.release.clear()
    batch = Accumulator(handler, size=10, wait_s=0, concurrency=1)
    first = asyncio.ensure_future(batch.submit(1))
    while not handler.groups:
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(batch.submit(i)) for i in (2, 3, 4)]
    for _ in range(10):  # the later calls' timer (0 s) fires meanwhile: they still wait for the first group
        await asyncio.sleep(0)
    assert handler.groups == [[1]]
    handler.release.set()
    assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
    assert handler.groups == [[1], [2, 3, 4]]


async def test_a_caller_that_goes_away_does_not_hold_up_the_others():
    handler = Handler()
    handler.release.clear()
    batch = Accumulator(handler, size=10, wait_s=0.001)
    gone, staying = asyncio.ensure_future(batch.submit(1)), asyncio.ensure_future(batch.submit(2))
    while not handler.groups:
        await asyncio.sleep(0)
    gone.cancel()
    handler.release.set()
    assert await staying == 4
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_handler_answering_the_wrong_number_of_items_fails_every_caller_instead_of_leaving_one_waiting():
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batch = Accumulator(short, size=10, wait_s=0.001)
    outcomes = await asyncio.wait_for(asyncio.gather(batch.submit(1), batch.submit(2), return_exceptions=True), 5)
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
