"""Standard Webhooks (standardwebhooks.com), as the generic webhook speaks it both ways.

A message carries `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`:
space-separated `v1,<base64 HMAC-SHA256(secret, id + "." + timestamp + "." + body)>`, one per
secret it is signed with (several during a rotation). Secrets are `whsec_<base64>`.

The webhook adapter, the sandbox's webhook dialect and the tests share this one copy. No I/O:
callers pass the time, and remember the ids they accepted (a replay is theirs to refuse).
"""

import base64
import binascii
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
TOLERANCE_S = 300  # a message signed longer ago, or further ahead, than this is refused
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII: stored as is, and echoed safely
_TIMESTAMP = re.compile(r"\d{1,12}")


class Refused(ValueError):
    """A message that does not verify; the reason names what failed and never carries a secret."""


@dataclass(frozen=True)
class Signed:
    """A verified message: its id and when it was signed (unix seconds)."""

    message_id: str
    timestamp: int

    def fresh_until(self, tolerance_s: int = TOLERANCE_S) -> int:
        """When the message turns stale: a replay after it is refused without remembering the id."""
        return self.timestamp + tolerance_s


def check_secret(value: str) -> str:
    """value if it is a usable `whsec_` secret; ValueError (naming no part of it) otherwise."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a webhook secret is {SECRET_PREFIX!r} and base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret holds at least {MIN_SECRET_BYTES} bytes")
    return value


def new_message_id() -> str:
    """A fresh webhook-id."""
    return f"msg_{uuid.uuid4().hex}"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of message_id.timestamp.body under secret."""
    return Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), body)


def sign(secrets: Sequence[str], body: bytes, message_id: str, timestamp: int) -> dict[str, str]:
    """The three headers of body signed with each of secrets (current first)."""
    return {ID: message_id, TIMESTAMP: str(timestamp),
            SIGNATURE: " ".join(signature(s, message_id, timestamp, body) for s in secrets)}


def verify(secrets: Iterable[str], headers: Mapping[str, str], body: bytes, now: float,
           tolerance_s: int = TOLERANCE_S) -> Signed:
    """The verified message: signed by any of secrets, within tolerance_s of now; Refused otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id, timestamp, given = (lowered.get(name, "").strip() for name in (ID, TIMESTAMP, SIGNATURE))
    if not (message_id and timestamp and given):
        raise Refused(f"missing {ID}, {TIMESTAMP} or {SIGNATURE}")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise Refused(f"malformed {ID}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Refused(f"malformed {TIMESTAMP}")
    signed = Signed(message_id, int(timestamp))
    # The time first, in whole seconds: a timestamp past any datetime's range is refused, not an error.
    age = now - signed.timestamp
    if age > tolerance_s:
        raise Refused(f"stale: signed {age:.0f} s ago, at most {tolerance_s} s allowed")
    if age < -tolerance_s:
        raise Refused(f"signed {-age:.0f} s in the future, at most {tolerance_s} s allowed")
    offered = [s.encode() for s in given.split()]
    expected = [signature(s, message_id, signed.timestamp, body).encode() for s in secrets]
    # Every pair is compared, so how long it takes says nothing about which one matched.
    if not [True for e in expected for o in offered if hmac.compare_digest(e, o)]:
        raise Refused("wrong signature")
    return signed
