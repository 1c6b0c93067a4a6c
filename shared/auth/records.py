"""Signed Kafka records: the Standard Webhooks scheme over a record's value, under the secret of
the agency its `takedown-agency` header names. No I/O (docs/kafka-submissions.md).

    webhook-id         unique per submission; a second record with it is a replay
    webhook-timestamp  unix seconds when it was signed
    webhook-signature  "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<value>'>", space-separated if several
    takedown-agency    whose secrets to check it with

The agency header is not itself signed, and need not be: a signature only verifies under the
secrets of the agency that holds them, so naming another agency gets the record refused.
"""

import hmac
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

from shared.auth.principal import Principal, Role

ID, TIMESTAMP, SIGNATURE, AGENCY = "webhook-id", "webhook-timestamp", "webhook-signature", "takedown-agency"
REQUIRED = (SIGNATURE, ID, TIMESTAMP, AGENCY)  # the first one missing names an unsigned record's reason
TOLERANCE_S = 300.0
MAX_ID = MAX_AGENCY = 200  # the columns that remember accepted ids and hold agencies
UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


class Unauthenticated(ValueError):
    """A record that does not prove which agency sent it; str() is its dead-letter reason."""

    def __init__(self, why: str):
        super().__init__(f"unauthenticated: {why}")


@dataclass(frozen=True)
class Signed:
    """What a verified record proves: the agency that signed it, under which id and when."""

    agency: str
    msg_id: str
    signed_at: datetime

    @property
    def principal(self) -> Principal:
        """The agency principal its submission is recorded under."""
        return Principal(name=self.agency, roles=frozenset({Role.agency}), credential=f"signed:{self.agency}",
                         agency=self.agency)


def signed_headers(agency: str, secret: str, value: bytes | str, msg_id: str | None = None,
                   now: datetime | float | None = None) -> dict[str, str]:
    """The headers that sign value as agency's, under one of its secrets (the producer's side)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    if now is None or isinstance(now, int | float):
        now = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, value)
    return {ID: msg_id, TIMESTAMP: str(int(now.timestamp())), SIGNATURE: signature, AGENCY: agency}


def claimed_agency(headers: Mapping[str, str]) -> str | None:
    """The agency a record says it comes from (not yet proved): whose secrets to load. A name with
    a NUL is not looked up: the lookup itself would fail (Postgres text holds none)."""
    agency = headers.get(AGENCY)
    return agency if agency and len(agency) <= MAX_AGENCY and "\x00" not in agency else None


def verify(value: bytes, headers: Mapping[str, str], secrets: Mapping[str, Sequence[str]], appended_at: float,
           tolerance_s: float = TOLERANCE_S, oldest: float | None = None) -> Signed:
    """Who signed a record, given each agency's active secrets and when the broker appended it
    (unix seconds); Unauthenticated saying why if it proves nothing. oldest: no record signed
    before it is accepted, whatever its Kafka timestamp says (the replay window's start)."""
    for name in REQUIRED:
        if not headers.get(name):
            raise Unauthenticated(f"no {name} header")
    agency, msg_id, stamp = headers[AGENCY], headers[ID], headers[TIMESTAMP]
    if len(msg_id) > MAX_ID:
        raise Unauthenticated(f"{ID} longer than {MAX_ID} characters")
    if not UNIX_SECONDS.fullmatch(stamp):
        raise Unauthenticated(f"{TIMESTAMP} is not unix seconds")
    # In whole seconds first: a timestamp past any datetime's range is refused, not an error.
    _check_time(int(stamp), appended_at, tolerance_s)
    if oldest is not None and int(stamp) < oldest:
        raise Unauthenticated("stale timestamp: signed before the replay window, whatever the record's time says")
    signed_at = datetime.fromtimestamp(int(stamp), UTC)
    if not secrets.get(agency):
        raise Unauthenticated(f"unknown agency {agency[:MAX_AGENCY]!r}: it has no active signing secret")
    if not _matches(secrets[agency], msg_id, signed_at, value, headers[SIGNATURE]):
        raise Unauthenticated(f"signature matches no active secret of agency {agency!r}")
    return Signed(agency, msg_id, signed_at)


def _matches(secrets: Sequence[str], msg_id: str, signed_at: datetime, value: bytes, header: str) -> bool:
    given = [s.encode() for s in header.split(" ") if s]
    for secret in secrets:  # any active secret: while one rotates, the newest two are both valid
        expected = Webhook(secret).sign(msg_id, signed_at, value).encode()
        if any(hmac.compare_digest(expected, one) for one in given):
            return True
    return False


def _check_time(signed: int, appended_at: float, tolerance_s: float) -> None:
    # Against when the broker appended the record, not the consumer's clock: a record signed and
    # published in time is accepted however long it then waits in a backlog.
    drift = signed - appended_at
    if drift < -tolerance_s:
        raise Unauthenticated(f"stale timestamp: signed {-drift:.0f} s before the record was appended "
                              f"(at most {tolerance_s:.0f} s)")
    if drift > tolerance_s:
        raise Unauthenticated(f"timestamp in the future: signed {drift:.0f} s after the record was appended "
                              f"(at most {tolerance_s:.0f} s)")
