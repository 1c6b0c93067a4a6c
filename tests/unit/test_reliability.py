"""How consumers treat failures: poison is dead-lettered, outages are waited out."""

from sqlalchemy.exc import OperationalError

from shared.reliability import (Poison, backoff, dead_letter_attempts, is_transient, process_or_dead_letter,
                                spaced_backoff)



class Script:
    """Work that fails with the given exceptions in turn, then succeeds."""

    def __init__(self, *failures: BaseException):
        self.failures, self.calls = list(failures), 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


class DeadLetters:
    def __init__(self):
        self.records: list[tuple[str, int]] = []

    async def __call__(self, reason: str, attempts: int) -> None:
        self.records.append((reason, attempts))


async def no_wait(seconds: float) -> None:
    assert 0 <= seconds <= 10


async def test_poison_is_dead_lettered_at_once_with_its_reason():
    work, dlq = Script(Poison("not valid JSON")), DeadLetters()

    await process_or_dead_letter(work, dlq, sleep=no_wait)

    assert work.calls == 1 and dlq.records == [("not valid JSON", 1)]


async def test_a_failing_handler_is_retried_a_bounded_number_of_times_then_dead_lettered():
    work, dlq = Script(*[ValueError("boom")] * 10), DeadLetters()

    await process_or_dead_letter(work, dlq, max_attempts=4, sleep=no_wait)

    assert work.calls == 4 and dlq.records == [("ValueError: boom", 4)]


async def test_a_handler_that_recovers_is_not_dead_lettered():
    work, dlq = Script(ValueError("once")), DeadLetters()

    await process_or_dead_letter(work, dlq, sleep=no_wait)

    assert work.calls == 2 and dlq.records == []


async def test_an_outage_is_waited_out_however_long_it_lasts():
    outage = [OperationalError("SELECT 1", {}, ConnectionRefusedError())] * 25
    work, dlq = Script(*outage), DeadLetters()

    await process_or_dead_letter(work, dlq, max_attempts=4, sleep=no_wait)

    assert work.calls == 26 and dlq.records == []


def test_connection_failures_are_transient_and_bugs_are_not():
    assert is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert not is_transient(ValueError()) and not is_transient(KeyError())


def test_backoff_grows_exponentially_and_is_capped():
    assert all(0 <= backoff(1, base=1) <= 1 for _ in range(100))
    assert max(backoff(3, base=1) for _ in range(500)) > 2
    assert all(backoff(30, base=1, cap=5) <= 5 for _ in range(100))


def test_spaced_backoff_waits_at_least_half_the_exponential_delay():
    assert all(0.5 <= spaced_backoff(1, base=1) <= 1 for _ in range(200))
    assert all(2 <= spaced_backoff(3, base=1) <= 4 for _ in range(200))
    assert all(2.5 <= spaced_backoff(30, base=1, cap=5) <= 5 for _ in range(200))


async def test_a_failing_handler_is_retried_with_spaced_attempts():
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    await process_or_dead_letter(Script(*[ValueError("boom")] * 4), DeadLetters(), max_attempts=4, sleep=record_wait)

    assert len(waits) == 3 and all(w >= 0.2 * 2 ** i / 2 for i, w in enumerate(waits))


async def test_a_dead_letter_knows_when_the_first_and_last_attempts_were_made():
    seen: list = []

    async def dlq(reason: str, attempts: int) -> None:
        seen.append(dead_letter_attempts.get())

    await process_or_dead_letter(Script(*[ValueError("boom")] * 3), dlq, max_attempts=3, sleep=no_wait)

    [times] = seen
    assert times.first <= times.last and dead_letter_attempts.get() is None


async def test_an_outage_before_a_failure_does_not_use_up_the_failures_attempts():
    outage = [OperationalError("SELECT 1", {}, ConnectionRefusedError())] * 6
    work, dlq = Script(*outage, ValueError("once"), ValueError("twice")), DeadLetters()

    await process_or_dead_letter(work, dlq, max_attempts=4, sleep=no_wait)

    assert work.calls == 9 and dlq.records == []
