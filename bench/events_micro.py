"""Micro-benchmark of the CloudEvents codec: µs per event for to_kafka and from_kafka.

Events of the three kinds that carry most of the traffic (referral.submitted, referral.dispatched,
takedown.decided), encoded and decoded in a loop in this process; the best of BENCH_MICRO_REPEATS
(5) rounds of BENCH_MICRO_EVENTS (20,000) each, so another process's burst costs one round, not the
figure. Each round goes through them a consumer's batch (1,000) at a time, dropping each batch's
results before the next, as a service does; the inputs are frozen out of the garbage collector's
sight (gc.freeze), so its passes over the bench's own 20,000 events are not timed as the codec's. Run: python -m bench.events_micro.
"""

import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

from bench.common import env_int
from bench.records import submitted_record
from shared.events import (Event, Outcome, Platform, ReferralDispatched, TakedownDecided, Visibility, actor,
                           from_kafka, to_kafka)


def events(count: int) -> list[Event]:
    """count events, a third of each kind, with fresh ids."""
    made: list[Event] = []
    for n in range(count):
        kind = n % 3
        if kind == 0:
            _, value, headers = submitted_record(n)
            made.append(from_kafka({k: v.decode() for k, v in headers}, value))
            continue
        rid = uuid4()
        data = (ReferralDispatched(referral_id=rid, platform=Platform.x, adapter="x", ticket_id=f"x-{n}")
                if kind == 1 else
                TakedownDecided(referral_id=rid, platform=Platform.x, ticket_id=f"x-{n}", outcome=Outcome.removed,
                                decision_visibility=[Visibility.content_removed]))
        made.append(Event(source="/takedown/dispatcher", actor=actor("platform", "x"), time=datetime.now(UTC),
                          data=data))
    return made


BATCH = 1000


def best_us(work: Callable[[list], object], items: list, repeats: int) -> float:
    """The fastest round's µs per item, work done on a batch of items at a time."""
    best = float("inf")
    batches = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        for batch in batches:
            work(batch)
        best = min(best, time.perf_counter() - started)
    return round(best / len(items) * 1e6, 2)


def main() -> None:
    count, repeats = env_int("BENCH_MICRO_EVENTS", 20_000), env_int("BENCH_MICRO_REPEATS", 5)
    made = events(count)
    records = [to_kafka(e) for e in made]
    assert all(from_kafka(h, v) == e for e, (_, v, h) in zip(made, records, strict=True))
    gc.freeze()
    encode = best_us(lambda batch: [to_kafka(e) for e in batch], made, repeats)
    decode = best_us(lambda batch: [from_kafka(h, v) for _, v, h in batch], records, repeats)
    print(f"to_kafka:   {encode:7.2f} µs per event")
    print(f"from_kafka: {decode:7.2f} µs per event  ({count:,} events, best of {repeats} rounds)")


if __name__ == "__main__":
    main()
