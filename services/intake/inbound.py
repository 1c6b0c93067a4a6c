"""What a record on referrals.inbound must be: signed by an agency (shared.auth.records), a JSON
submission, and for that same agency. No I/O (docs/kafka-submissions.md)."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from services.intake.config import IntakeSettings
from services.intake.domain import Submission, record_key
from services.intake.service import WrongAgency, own_agency
from shared.auth.records import TOLERANCE_S, Signed, Unauthenticated, verify
from shared.events import describe_errors
from shared.reliability import Poison


@dataclass(frozen=True)
class InboundPolicy:
    """How intake authenticates records on referrals.inbound (IntakeSettings has each figure)."""

    tolerance_s: float = TOLERANCE_S
    replay_window_s: float = 86_400.0
    secrets_cache_s: float = 5.0
    forget_every_s: float = 600.0  # how often ids older than the window are deleted

    @classmethod
    def of(cls, settings: IntakeSettings) -> "InboundPolicy":
        return cls(settings.inbound_tolerance_s, settings.inbound_replay_window_s, settings.auth_cache_s)


@dataclass(frozen=True)
class Inbound:
    """A record that proved its agency and holds a submission for it."""

    submission: Submission
    signed: Signed


def parse_submission(raw: bytes) -> Submission:
    """A submission from a raw record; Poison naming the problem if it is not one."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Poison(f"not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Poison("a submission must be a JSON object")
    try:
        submission = Submission.model_validate(body)
    except ValidationError as exc:
        raise Poison(f"invalid submission: {describe_errors(exc)}") from exc
    if submission.idempotency_key is None:
        submission = submission.model_copy(update={"idempotency_key": record_key(raw)})
    return submission


def check(value: bytes, headers: Mapping[str, str], secrets: Mapping[str, Sequence[str]], appended_at: float,
          tolerance_s: float = TOLERANCE_S, oldest: float | None = None) -> Inbound:
    """The submission a record carries and who signed it; Poison whose message is the dead-letter
    reason if it has none: unauthenticated, not a submission, or forbidden (for another agency)."""
    try:
        signed = verify(value, headers, secrets, appended_at, tolerance_s, oldest)
    except Unauthenticated as exc:
        raise Poison(str(exc)) from exc
    submission = parse_submission(value)  # only once signed: an unsigned record's reason is its signature
    try:
        own_agency(submission, signed.principal)
    except WrongAgency as exc:
        raise Poison(f"forbidden: {exc} (it was signed by {signed.agency!r})") from exc
    return Inbound(submission, signed)


def appended_at(timestamp_ms: int | None, now: float) -> float:
    """When the broker appended a record, in unix seconds, from its Kafka timestamp; now if it has none."""
    return timestamp_ms / 1000 if timestamp_ms is not None and timestamp_ms >= 0 else now
