"""Calls that arrive together, handled together: a small group commit.

Each call hands in one item and waits; items are handed on as one list when `size` of them are in
or `wait_s` after the first, to `handle`, which answers each item with its own result or exception.
At most `concurrency` lists are handled at once; items arriving meanwhile wait for the next one,
which is what makes groups grow under load (and a transaction per group, not per item).
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Accumulator(Generic[T, R]):
    def __init__(self, handle: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], size: int = 64,
                 wait_s: float = 0.002, concurrency: int = 2):
        self.handle, self.size, self.wait_s, self.concurrency = handle, size, wait_s, concurrency
        self._waiting: list[tuple[T, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running = 0
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, item: T) -> R:
        """Hand item in with the others arriving now; its own result, or its own exception raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) >= self.size:
            self._hand_on()
        elif self._timer is None:
            self._timer = loop.call_later(self.wait_s, self._hand_on)
        return await future

    def _hand_on(self) -> None:
        """Hand the waiting items on, a list of at most `size` at a time, unless `concurrency` lists are
        being handled (then the first of them to end hands them on)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting and self._running < self.concurrency:
            group, self._waiting = self._waiting[:self.size], self._waiting[self.size:]
            self._running += 1
            task = asyncio.create_task(self._handle(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, group: list[tuple[T, asyncio.Future]]) -> None:
        try:
            results: Sequence[R | Exception] = await self.handle([item for item, _ in group])
            if len(results) != len(group):  # a bug in handle: fail every caller rather than leave one waiting
                raise RuntimeError(f"{len(results)} results for {len(group)} items")
        except Exception as exc:  # noqa: BLE001 - each caller gets it: none is left waiting
            results = [exc] * len(group)
        except BaseException:  # cancelled (the service stops): so are the callers
            for _, future in group:
                future.cancel()
            raise
        finally:
            self._running -= 1
        for (_, future), result in zip(group, results, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self._waiting:
            self._hand_on()
