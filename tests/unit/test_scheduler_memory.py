"""What the scheduler remembers of the events it published: enough to not repeat itself every tick,
never so much that a lost event is not made again."""

from uuid import uuid4

from services.outcomes.config import OutcomesSettings
from services.outcomes.scheduler import Published


def test_by_default_an_event_not_recorded_is_published_again_after_five_minutes():
    assert OutcomesSettings().scheduler_republish_s == 300


def test_an_event_just_published_is_held_back_and_published_again_once_the_hold_has_passed():
    published, event = Published(hold_s=300), uuid4()
    assert not published.recently(event, 1000)

    published.add(event, 1000)

    assert published.recently(event, 1000) and published.recently(event, 1299.9)
    assert not published.recently(event, 1300)
    assert not published.recently(uuid4(), 1000)


def test_publishing_an_event_again_starts_its_hold_again():
    published, event = Published(hold_s=300), uuid4()
    published.add(event, 1000)

    published.add(event, 1300)

    assert published.recently(event, 1599) and not published.recently(event, 1600)


def test_past_its_limit_the_memory_forgets_the_event_published_longest_ago_which_is_merely_published_sooner():
    published, first, second, third = Published(hold_s=300, remembered=2), uuid4(), uuid4(), uuid4()
    published.add(first, 0)
    published.add(second, 1)
    published.add(first, 2)  # published again: now the most recent

    published.add(third, 3)

    assert published.recently(first, 4) and published.recently(third, 4)
    assert not published.recently(second, 4)
