"""The audit trail's hash chain, as pure functions: canonical bytes, links, and verification.

Row n of outcomes.audit_events stores prev_hash (row n-1's hash; GENESIS for row 1) and
hash = sha256(prev_hash || n as 8 bytes big-endian || canonical(row)). Changing, deleting,
inserting or reordering a row breaks a link that `verify` names. An owner who recomputes every
hash after a change leaves a consistent chain: only an anchor kept elsewhere (a checkpoint, or
the head row while the owner leaves it alone) shows that history was rewritten.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple
from uuid import UUID

GENESIS = bytes(32)
FIELDS = ("event_id", "referral_id", "event_type", "occurred_at", "actor", "source", "schema_version", "data")
OPTIONAL = ("credential",)  # hashed when present: rows recorded before it existed keep their hashes
Kind = Literal["changed", "deleted", "inserted", "reordered", "truncated", "rewritten"]


class Checkpoint(NamedTuple):
    """A (position, hash) the chain must still contain: the head row, or one an auditor kept."""

    position: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.position}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        """From 'POSITION:HEX', as `takedown audit checkpoint` prints it."""
        match = re.fullmatch(r"\s*(\d+):([0-9a-fA-F]{64})\s*", text)
        if not match:
            raise ValueError(f"not a checkpoint (POSITION:64 hex digits): {text!r}")
        return cls(int(match[1]), bytes.fromhex(match[2]))


@dataclass(frozen=True)
class Finding:
    """The first broken link: the position it is at, what it looks like, and a sentence saying so."""

    position: int
    kind: Kind
    message: str

    def __str__(self) -> str:
        return f"position {self.position}: {self.kind}: {self.message}"


def _utc(moment: datetime) -> str:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {moment!r} in an audit row")
    if offset:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"  # YYYY-MM-DDTHH:MM:SS.ffffff, then Z for UTC


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_string = json.encoder.encode_basestring  # a str as _ENCODER writes it (ensure_ascii=False)
_AS_IS = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> Any:
    """JSON-ready value; numbers as JSONB gives them back (1.0 and 1 are the same number there)."""
    kind = type(value)
    if kind in _AS_IS:  # the common cases first, by exact type: isinstance on the ABCs below is slow
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): v if type(v) in _AS_IS else _plain(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _AS_IS else _plain(v) for v in value]
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        exact = Decimal(repr(value))  # the digits json.dumps writes, which JSONB keeps as a numeric
        return int(exact) if exact == exact.to_integral_value() else value
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"{type(value).__name__} has no canonical form in an audit row")


def canonical(event_row: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: JSON of FIELDS (and OPTIONAL ones that are set) only, keys sorted, no whitespace, UTF-8,
    datetimes in UTC as 2025-03-01T09:00:00.000000Z, UUIDs as lower-case strings."""
    document = {field: _plain(event_row[field]) for field in FIELDS}
    document.update({field: event_row[field] for field in OPTIONAL if event_row.get(field) is not None})
    return _ENCODER.encode(document).encode("utf-8")


def data_json(data: Mapping[str, Any]) -> str:
    """The canonical JSON of a row's data, as canonical() writes it inside the row's."""
    return _ENCODER.encode(_plain(data))


# canonical() of a row, written key by key in sorted order (its data's JSON given): what the
# encoder would write for each value, without building the document and encoding it again.
_KEYS = [(field, _string(field) + ":") for field in sorted((*FIELDS, *OPTIONAL))]


def canonical_with_data(event_row: Mapping[str, Any], data: str) -> bytes:
    """canonical(event_row), given data_json(event_row["data"]): the data is not encoded a second time."""
    parts = []
    for field, key in _KEYS:
        if field == "data":
            parts.append(key + data)
        elif field in OPTIONAL:
            if (value := event_row.get(field)) is not None:  # hashed as given, as canonical() does
                parts.append(key + (_string(value) if type(value) is str else _ENCODER.encode(value)))
        else:
            parts.append(key + _json(event_row[field]))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def _json(value: Any) -> str:
    """_ENCODER.encode(_plain(value)), the common types first, by exact type."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is UUID:
        return f'"{value}"'  # hex digits and hyphens: nothing to escape
    if kind is datetime:
        return f'"{_utc(value)}"'
    if kind is int:
        return int.__repr__(value)
    return _ENCODER.encode(_plain(value))


def link(prev_hash: bytes, position: int, canonical: bytes) -> bytes:
    """sha256(prev_hash || position as 8-byte big-endian || canonical)."""
    return hashlib.sha256(prev_hash + position.to_bytes(8, "big") + canonical).digest()


def links(head: tuple[int, bytes], bodies: Iterable[bytes]) -> Iterator[tuple[int, bytes, bytes]]:
    """(position, prev_hash, hash) of each canonical body, numbered and linked after head (position, hash)."""
    position, prev_hash = head
    for body in bodies:
        position += 1
        row_hash = link(prev_hash, position, body)
        yield position, prev_hash, row_hash
        prev_hash = row_hash


def extend(head: tuple[int, bytes], rows: Iterable[Mapping[str, Any]], with_canonical: bool = False) -> list[dict]:
    """Rows numbered and linked after head (position, hash): each gets position, prev_hash and hash
    (and with_canonical, "canonical": the bytes that were hashed)."""
    rows = list(rows)
    bodies = [canonical(row) for row in rows]
    return [{**row, "position": position, "prev_hash": prev_hash, "hash": row_hash,
             **({"canonical": body} if with_canonical else {})}
            for row, body, (position, prev_hash, row_hash) in zip(rows, bodies, links(head, bodies), strict=True)]


class Verifier:
    """Checks rows fed in position order, holding one hash and one row, never the whole chain.

    A row is judged when the row after it arrives (or at finish): a swap or an insertion shows
    in how the next row links. Anchors are (position, hash) pairs the chain must contain.
    """

    def __init__(self, *anchors: tuple[str, tuple[int, bytes] | None]):
        self.anchors: dict[int, list[tuple[str, bytes]]] = {}
        for label, anchor in anchors:
            if anchor is not None:
                self.anchors.setdefault(anchor[0], []).append((label, bytes(anchor[1])))
        self.count = 0  # rows judged intact
        self._position, self._previous = 0, GENESIS
        self._pending: Mapping | None = None
        self.finding = self._check_anchors(0, GENESIS)

    def feed(self, row: Mapping[str, Any]) -> Finding | None:
        if self.finding is None and self._pending is not None:
            self.finding = self._judge(self._pending, row)
        self._pending = row
        return self.finding

    def finish(self) -> Finding | None:
        if self.finding is None and self._pending is not None:
            self.finding = self._judge(self._pending, None)
        self._pending = None
        if self.finding is None and (beyond := [p for p in self.anchors if p > self._position]):
            label, _ = self.anchors[min(beyond)][0]
            self.finding = Finding(self._position + 1, "truncated",
                                   f"the chain ends at position {self._position} but {label} records position "
                                   f"{min(beyond)}: rows after {self._position} were deleted")
        return self.finding

    def _judge(self, row: Mapping[str, Any], after: Mapping[str, Any] | None) -> Finding | None:
        position, expected = row["position"], self._position + 1
        if position < expected:
            return Finding(position, "reordered", f"row {position} comes after row {self._position}: "
                                                  "the rows are not in position order")
        if position > expected:
            missing = f"row {expected} is" if position == expected + 1 else f"rows {expected}-{position - 1} are"
            return Finding(expected, "deleted", f"{missing} missing: the chain jumps from {expected - 1} to {position}")
        prev_hash, row_hash, body = bytes(row["prev_hash"]), bytes(row["hash"]), canonical(row)
        linked, whole = prev_hash == self._previous, link(prev_hash, position, body) == row_hash
        if after is not None and prev_hash == bytes(after["hash"]):
            return Finding(position, "reordered", f"rows {position} and {after['position']} are out of order: "
                                                  f"row {position} links to the row after it")
        if after is not None and bytes(after["prev_hash"]) == self._previous != row_hash:
            return Finding(position, "inserted", f"row {position} was inserted: the row after it links to "
                                                 f"row {position - 1}, past it")
        if linked and whole:
            return self._accept(position, row_hash)
        if linked:
            return Finding(position, "changed", f"row {position} was changed after it was recorded: "
                                                "its content no longer matches its hash")
        if whole and position > 1:
            return Finding(position - 1, "changed", f"row {position - 1} was rewritten and its hash recomputed: "
                                                    f"row {position} still links to the hash it had before")
        if link(prev_hash, position + 1, body) == row_hash:
            return Finding(position, "deleted", f"row {position} was deleted and the rows after it renumbered: "
                                                f"the row now at {position} was recorded at {position + 1}")
        return Finding(position, "changed", f"row {position} matches neither the hash of row {position - 1} "
                                            "nor its own content: it was changed or moved here")

    def _accept(self, position: int, row_hash: bytes) -> Finding | None:
        if finding := self._check_anchors(position, row_hash):
            return finding
        self._position, self._previous = position, row_hash
        self.count += 1
        return None

    def _check_anchors(self, position: int, found: bytes) -> Finding | None:
        for label, anchored in self.anchors.get(position, ()):
            if anchored != found:
                return Finding(position, "rewritten", f"row {position} has hash {found.hex()[:16]}... but {label} "
                                                      f"records {anchored.hex()[:16]}...: the chain was rewritten at "
                                                      f"or before position {position}")
        return None


def verify(rows: Iterable[Mapping[str, Any]], checkpoint: tuple[int, bytes] | None = None,
           head: tuple[int, bytes] | None = None) -> Finding | None:
    """The first broken link of rows given in position order (each with position, FIELDS,
    prev_hash and hash), or None when the chain is intact and contains the checkpoint and head."""
    verifier = Verifier(("the checkpoint", checkpoint), ("the head", head))
    for row in rows:
        if verifier.feed(row):
            break
    return verifier.finish()
