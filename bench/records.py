"""A referral.submitted record as intake publishes it, built with intake's own functions from the
load generator's items: the size the broker-limit and naive-pipeline runs use for their records."""

from datetime import UTC, datetime
from uuid import uuid4

from services.intake.domain import Submission, to_referral
from services.intake.service import SOURCE
from shared.events import Event, to_kafka

PLATFORM_URLS = {  # one per way a decision comes back, as the fault suite's agency refers them
    "facebook": "https://www.facebook.com/groups/crossings-{key}",
    "x": "https://x.com/smuggler/status/{n}",
    "tiktok": "https://www.tiktok.com/@crossings/video/{n}",
    "youtube": "https://www.youtube.com/watch?v={key}",
}


def submitted_record(n: int, run: str = "bench") -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the n-th referral's referral.submitted record."""
    key = f"{run}-h{n}"
    url = tuple(PLATFORM_URLS.values())[n % len(PLATFORM_URLS)].format(key=key, n=10**9 + n)
    submission = Submission(url=url, category="people_smuggling", idempotency_key=key,
                            case_reference=f"BENCH-{run}")
    now = datetime.now(UTC)
    event = Event(source=SOURCE, actor="agency:NCA", credential=f"key:{uuid4()}", time=now,
                  data=to_referral(submission, "NCA", now, "http"))
    record_key, value, headers = to_kafka(event)
    return record_key, value, [(k, v.encode()) for k, v in headers.items()]


def size(record: tuple[bytes, bytes, list[tuple[str, bytes]]]) -> int:
    """Bytes of a record's key, value and headers (names and values)."""
    key, value, headers = record
    return len(key) + len(value) + sum(len(k) + len(v) for k, v in headers)
