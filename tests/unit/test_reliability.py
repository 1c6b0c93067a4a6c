"""How consumers treat failures: poison is dead-lettered, outages are waited out."""

from sqlalchemy.exc import OperationalError

from shared.reliability import Poison, backoff, is_transient, process_or_dead_letter



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
