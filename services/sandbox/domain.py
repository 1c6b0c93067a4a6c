"""The sandbox's domain: outcome weights, each report's deterministic fate, the decision objects
platforms send back and the signatures they carry. No I/O."""

import base64
import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events import Category

# Canonical order: the cumulative weights follow it, so reordering a policy does not change any
# report's fate. The four original outcomes keep their relative order, so a policy over them
# gives every reference the fate it had before the others were added.
OUTCOMES = ("removed", "restricted", "account_suspended", "rejected", "insufficient_information",
            "content_not_found", "information_request", "none")
NEVER_ANSWERS = "none"
ASKS_FOR_INFORMATION = "information_request"
AFTER_INFORMATION = "removed"  # how a ticket that asked a question is decided in the end
DEFAULT_SCOPE = ("GB",)
QUESTION = ("Please send the legal basis for this request (statute and section) and, where one "
            "exists, the court order or case reference it relies on.")

VIOLATION_TYPES = ("human_exploitation", "dangerous_organizations", "fraud_and_scams", "restricted_goods",
                   "other")
REASON_CODES = tuple(c.value.upper() for c in Category)


class InvalidPolicy(ValueError):
    """Outcome weights that cannot be used: unknown outcomes, bad numbers, nothing above 0."""


@dataclass(frozen=True)
class Verdict:
    """What a platform's decision says for one outcome (the DSA statement-of-reasons fields)."""

    visibility: tuple[str, ...]
    account: str | None
    ground: str | None
    no_action_reason: str | None
    explanation: str


VERDICTS = {
    "removed": Verdict(("content_removed",), None, "illegal_content", None,
                       "The content is illegal in the reporting jurisdiction and has been removed."),
    "restricted": Verdict(("content_age_restricted",), None, "incompatible_with_terms", None,
                          "The content has been restricted in the reporting jurisdiction."),
    "account_suspended": Verdict((), "account_suspended", "incompatible_with_terms", None,
                                 "The account breached our terms and has been suspended."),
    "rejected": Verdict((), None, None, "no_violation",
                        "We reviewed the content and found it not breaching our terms."),
    "insufficient_information": Verdict((), None, None, "insufficient_information",
                                        "The report does not give us enough information to act on."),
    "content_not_found": Verdict((), None, None, "content_not_found",
                                 "We could not find the reported content."),
}


def parse_policy(text: str) -> dict[str, float]:
    """Weights from 'removed=0.48,rejected=0.40,none=0.12', normalised to sum to 1."""
    raw: dict[str, Any] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise InvalidPolicy(f"policy entry {part.strip()!r} is not outcome=weight")
        if name in raw:
            raise InvalidPolicy(f"outcome {name!r} appears twice")
        raw[name] = value.strip()
    return parse_weights(raw)


def parse_weights(raw: Any) -> dict[str, float]:
    """Weights from a mapping of outcome names to numbers (or numeric strings), normalised."""
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidPolicy("weights must be a non-empty mapping of outcome names to numbers")
    weights: dict[str, float] = {}
    for name, value in raw.items():
        if name not in OUTCOMES:
            raise InvalidPolicy(f"unknown outcome {name!r}; allowed: {', '.join(OUTCOMES)}")
        weights[name] = _weight(name, value)
    total = sum(weights.values())
    if total <= 0:
        raise InvalidPolicy("at least one outcome needs a weight above 0")
    return {name: weights[name] / total for name in OUTCOMES if name in weights}


def _weight(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidPolicy(f"weight of {name!r} is not a number: {value!r}")
    try:
        weight = float(value)
    except ValueError:
        raise InvalidPolicy(f"weight of {name!r} is not a number: {value!r}") from None
    if not math.isfinite(weight) or weight < 0:
        raise InvalidPolicy(f"weight of {name!r} must be a finite number >= 0, got {value!r}")
    return weight


def fraction(seed: str, reference: str) -> float:
    """A stable number in [0, 1) for (seed, reference): the same report always draws the same."""
    digest = hashlib.sha256(f"{seed}\x00{reference}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_outcome(policy: Mapping[str, float], seed: str, reference: str) -> str:
    """The outcome a report gets under policy; deterministic per (seed, reference)."""
    draw = fraction(seed, reference)
    cumulative = 0.0
    chosen = None
    for name in OUTCOMES:
        weight = policy.get(name, 0.0)
        if weight <= 0:
            continue
        cumulative += weight
        chosen = name
        if draw < cumulative:
            return name
    if chosen is None:
        raise InvalidPolicy("policy has no outcome with a weight above 0")
    # Rounding can leave the last cumulative weight a hair under 1.
    return chosen


def drops_callbacks(share: float, seed: str, reference: str) -> bool:
    """Whether a report's callbacks are never sent, for a persona dropping that share of them.

    Deterministic per (seed, reference) like its fate, but drawn apart from it: which tickets lose
    their callbacks does not depend on how they are decided."""
    return share > 0 and fraction(f"{seed}\x00drop_callbacks", reference) < share


def iso(at: datetime) -> str:
    """ISO 8601 in UTC to the microsecond: 2026-11-22T10:00:00.123456Z.

    To the second would be as some platforms write it, but a decision within the second of its
    submission would then seem to precede it; the sandbox keeps full precision.
    """
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decision_object(outcome: str, decided_at: datetime,
                    territorial_scope: tuple[str, ...] = DEFAULT_SCOPE) -> dict:
    """The decision object every dialect carries, for an outcome that decides."""
    verdict = VERDICTS.get(outcome)
    if verdict is None:
        raise ValueError(f"outcome {outcome!r} is not a decision")
    return {
        "visibility": list(verdict.visibility),
        "account": verdict.account,
        "ground": verdict.ground,
        "territorial_scope": list(territorial_scope),
        "no_action_reason": verdict.no_action_reason,
        "explanation": verdict.explanation,
        "decided_at": iso(decided_at),
    }


def information_request(requested_at: datetime, question: str = QUESTION) -> dict:
    """The object a platform sends in place of a decision when it needs to know more."""
    return {"question": question, "requested_at": iso(requested_at)}


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def hex_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>`: meta's callbacks."""
    return "sha256=" + _mac(secret, body).hex()


def timestamped_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<base64 HMAC-SHA256(secret, timestamp + "." + body)>`: x's callbacks."""
    return "sha256=" + base64.b64encode(_mac(secret, timestamp.encode() + b"." + body)).decode()

