"""The sandbox's domain: decision policies and each report's deterministic fate. No I/O."""

import hashlib
import math
from collections.abc import Mapping

# Canonical order: the cumulative weights follow it, so reordering a policy string
# does not change any report's fate.
OUTCOMES = ("removed", "restricted", "rejected", "none")
NEVER_ANSWERS = "none"
NOTES = {
    "removed": "The content breached our terms and has been removed.",
    "restricted": "The content has been restricted in the reporting jurisdiction.",
    "rejected": "We reviewed the content and found no breach of our terms.",
}


class InvalidPolicy(ValueError):
    """A policy string that cannot be parsed into outcome weights."""


def parse_policy(text: str) -> dict[str, float]:
    """Weights from 'removed=0.48,rejected=0.40,none=0.12', normalised to sum to 1."""
    raw: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise InvalidPolicy(f"policy entry {part.strip()!r} is not outcome=weight")
        if name not in OUTCOMES:
            raise InvalidPolicy(f"unknown outcome {name!r}; allowed: {', '.join(OUTCOMES)}")
        if name in raw:
            raise InvalidPolicy(f"outcome {name!r} appears twice")
        raw[name] = _weight(name, value)
    total = sum(raw.values())
    if total <= 0:
        raise InvalidPolicy("at least one outcome needs a weight above 0")
    return {name: raw[name] / total for name in OUTCOMES if name in raw}


def _weight(name: str, value: str) -> float:
    try:
        weight = float(value)
    except ValueError:
        raise InvalidPolicy(f"weight of {name!r} is not a number: {value.strip()!r}") from None
    if not math.isfinite(weight) or weight < 0:
        raise InvalidPolicy(f"weight of {name!r} must be a finite number >= 0, got {value.strip()!r}")
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


def reason_for(outcome: str) -> str | None:
    """Why the platform decided so: only a rejection carries a reason."""
    return "no_violation" if outcome == "rejected" else None


def note_for(outcome: str) -> str | None:
    """The free-text note a platform would send with its decision."""
    return NOTES.get(outcome)
