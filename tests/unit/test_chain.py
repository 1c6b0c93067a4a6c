"""The hash chain on rows in memory: its canonical form, and each kind of tampering it names."""

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.outcomes.chain import (GENESIS, Checkpoint, Finding, Verifier, canonical, canonical_with_data,
                                     data_json, extend, link, links,
                                     verify)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def event(n: int, **changes) -> dict:
    row = {"event_id": UUID(int=n), "referral_id": UUID(int=1000 + n % 3), "event_type": "referral.dispatched",
           "occurred_at": T0 + timedelta(minutes=n), "actor": "service:dispatcher", "source": "/takedown/dispatcher",
           "schema_version": 1, "data": {"referral_id": str(UUID(int=1000 + n % 3)), "ticket_id": f"T-{n}",
                                         "platform": "facebook", "attempts": 1}}
    return {**row, **changes}


def chain_of(n: int) -> list[dict]:
    return extend((0, GENESIS), (event(i) for i in range(1, n + 1)))


def rehashed(rows: list[dict], start: int = 0) -> list[dict]:
    """What an owner who recomputes every hash from rows[start] on would leave."""
    before = (rows[start - 1]["position"], rows[start - 1]["hash"]) if start else (0, GENESIS)
    tail = extend(before, ({k: v for k, v in r.items() if k not in ("position", "prev_hash", "hash")}
                           for r in rows[start:]))
    return rows[:start] + tail


def renumbered(rows: list[dict]) -> list[dict]:
    return [{**row, "position": i} for i, row in enumerate(rows, 1)]


def test_the_canonical_form_is_sorted_compact_json_of_the_chained_fields_only():
    row = {**event(7), "position": 7, "recorded_at": T0, "prev_hash": b"x", "hash": b"y"}

    text = canonical(row).decode()

    assert json.loads(text) == {
        "actor": "service:dispatcher", "event_id": "00000000-0000-0000-0000-000000000007",
        "event_type": "referral.dispatched", "occurred_at": "2025-03-01T09:07:00.000000Z",
        "referral_id": str(UUID(int=1001)), "schema_version": 1, "source": "/takedown/dispatcher",
        "data": {"attempts": 1, "platform": "facebook", "referral_id": str(UUID(int=1001)), "ticket_id": "T-7"}}
    assert text.startswith('{"actor":"service:dispatcher","data":{"attempts":1,') and " " not in text


def test_the_canonical_form_does_not_depend_on_key_order_or_the_offset_a_time_was_given_in():
    row = event(1)
    reordered = {k: row[k] for k in reversed(list(row))} | {"data": dict(reversed(list(row["data"].items())))}
    paris = row["occurred_at"].astimezone(timezone(timedelta(hours=1)))

    assert canonical(reordered) == canonical(row) == canonical({**row, "occurred_at": paris})


def test_the_canonical_form_keeps_microseconds_unicode_and_numbers_as_jsonb_returns_them():
    row = event(1, occurred_at=datetime(2025, 3, 1, 9, 0, 0, 1500, tzinfo=UTC), actor="agency:Ærø 🚩",
                data={"n": 1.0, "big": 1e16, "half": 0.5})

    text = canonical(row).decode("utf-8")

    assert '"occurred_at":"2025-03-01T09:00:00.001500Z"' in text and '"actor":"agency:Ærø 🚩"' in text
    assert canonical(row) == canonical({**row, "data": {"half": 0.5, "big": 10**16, "n": 1}})


def test_the_hashes_are_those_the_chain_has_always_had():
    """Rows already recorded must still verify: these hashes were computed before the canonical
    form was written in two parts (data apart), and must never change."""
    paris = timezone(timedelta(hours=2))
    row = event(7, occurred_at=datetime(2025, 3, 1, 9, 7, 0, 250, tzinfo=paris), actor='agency:Gendarmerie é"\\',
                credential="key:0123456789ab",
                data={**event(7)["data"], "note": "café ☃", "n": 2.0, "nested": [{"b": 1, "a": None}]})
    without = {k: v for k, v in row.items() if k != "credential"}

    first, second = extend((0, GENESIS), [row, without])

    assert first["hash"].hex() == "3da6371221796812ec5a2417c3cbfd2d802c42a1a1d8a7d1002b4636ef58e6f4"
    assert second["hash"].hex() == "05d8241e8fdcd108c5dd4273399ef8fde54a66b7523f239b126cbcdeae013ac9"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(actor=st.text(min_size=1), source=st.text(min_size=1), credential=st.none() | st.text(),
       event_id=st.uuids() | st.text(), version=st.integers() | st.booleans(),
       data=st.dictionaries(st.text(), JSON, max_size=5), offset_minutes=st.integers(-23 * 60, 23 * 60))
def test_the_canonical_form_written_around_the_datas_own_json_is_the_canonical_form(actor, source, credential, event_id,
                                                                                   version, data, offset_minutes):
    moment = datetime(2025, 3, 1, 9, 0, 0, 17, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    row = event(3, actor=actor, source=source, credential=credential, event_id=event_id, schema_version=version,
                data=data, occurred_at=moment)

    assert canonical_with_data(row, data_json(row["data"])) == canonical(row)


def test_links_number_and_chain_bodies_as_extend_does():
    rows = [event(n) for n in range(1, 5)]

    linked = list(links((9, b"h" * 32), [canonical(row) for row in rows]))

    assert linked == [(r["position"], r["prev_hash"], r["hash"]) for r in extend((9, b"h" * 32), rows)]
    assert linked[0][:2] == (10, b"h" * 32)


def test_a_naive_time_has_no_canonical_form():
    with pytest.raises(ValueError, match="naive"):
        canonical(event(1, occurred_at=datetime(2025, 3, 1, 9, 0)))


def test_a_link_is_the_sha256_of_the_previous_hash_the_position_and_the_canonical_bytes():
    assert link(GENESIS, 1, b"{}") == hashlib.sha256(bytes(32) + b"\x00" * 7 + b"\x01" + b"{}").digest()
    assert link(GENESIS, 2, b"{}") != link(GENESIS, 1, b"{}")


def test_an_intact_chain_verifies_and_so_does_an_empty_one():
    rows = chain_of(6)

    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6] and rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:]))
    assert verify(rows, checkpoint=(4, rows[3]["hash"]), head=(6, rows[5]["hash"])) is None
    assert verify([]) is None and verify([], head=(0, GENESIS)) is None


def content(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("position", "prev_hash", "hash")}


def changed(rows: list[dict], position: int, recompute: bool = False, **changes) -> list[dict]:
    """Row `position` changed in place; with recompute, its own hash is made to match again."""
    row = {**rows[position - 1], **changes}
    if recompute:
        [row] = extend((position - 1, row["prev_hash"]), [content(row)])
    return [*rows[:position - 1], row, *rows[position:]]


def swapped(rows: list[dict], a: int, b: int) -> list[dict]:
    """Two rows exchange positions; rows are then read in position order."""
    rows = [{**r, "position": {a: b, b: a}.get(r["position"], r["position"])} for r in rows]
    return sorted(rows, key=lambda r: r["position"])


def inserted(rows: list[dict], at: int, forged: dict | None = None) -> list[dict]:
    """A row put in at `at` (by default correctly linked after row at-1); later rows moved one down."""
    [made] = extend((at - 1, rows[at - 2]["hash"]), [event(99, actor="agency:forged")])
    return rows[:at - 1] + [forged or made] + [{**r, "position": r["position"] + 1} for r in rows[at - 1:]]


MADE_UP = {**event(99), "position": 3, "prev_hash": GENESIS, "hash": GENESIS}
TAMPERING = {
    "changed data": (lambda rows: changed(rows, 3, data={"ticket_id": "X"}), 3, "changed"),
    "changed actor": (lambda rows: changed(rows, 4, actor="agency:other"), 4, "changed"),
    "changed time of the first row": (lambda rows: changed(rows, 1, occurred_at=T0 - timedelta(days=1)), 1,
                                      "changed"),
    "changed with its own hash recomputed": (lambda rows: changed(rows, 3, True, actor="x:y"), 3, "changed"),
    "changed hash": (lambda rows: changed(rows, 5, hash=hashlib.sha256(b"other").digest()), 5, "changed"),
    "deleted row": (lambda rows: rows[:2] + rows[3:], 3, "deleted"),
    "deleted first row": (lambda rows: rows[1:], 1, "deleted"),
    "deleted row, the rest renumbered": (lambda rows: renumbered(rows[:2] + rows[3:]), 3, "deleted"),
    "inserted row": (lambda rows: inserted(rows, 3), 3, "inserted"),
    "inserted row with made-up hashes": (lambda rows: inserted(rows, 3, MADE_UP), 3, "inserted"),
    "swapped rows": (lambda rows: swapped(rows, 3, 4), 3, "reordered"),
    "swapped last two rows": (lambda rows: swapped(rows, 5, 6), 5, "reordered"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_each_kind_of_tampering_is_named_at_the_first_broken_link(case):
    tamper, position, kind = TAMPERING[case]

    finding = verify(tamper(chain_of(6)))

    assert (finding.position, finding.kind) == (position, kind), finding
    assert str(position) in finding.message


def test_a_rewrite_with_every_hash_recomputed_passes_alone_but_not_against_a_checkpoint_or_the_head():
    rows = chain_of(6)
    forged = rehashed([*rows[:2], {**rows[2], "data": {"ticket_id": "FORGED"}}, *rows[3:]], 2)

    assert verify(forged) is None
    by_checkpoint = verify(forged, checkpoint=Checkpoint(4, rows[3]["hash"]))
    assert (by_checkpoint.position, by_checkpoint.kind) == (4, "rewritten")
    assert "the checkpoint" in by_checkpoint.message
    assert verify(forged, head=(6, rows[5]["hash"])).kind == "rewritten"


def test_a_truncated_tail_is_named_against_a_checkpoint_or_the_head():
    rows = chain_of(6)

    assert verify(rows[:4]) is None
    assert verify(rows[:4], checkpoint=(5, rows[4]["hash"])) == Finding(
        5, "truncated", "the chain ends at position 4 but the checkpoint records position 5: "
                        "rows after 4 were deleted")
    assert verify(rows[:4], head=(6, rows[5]["hash"])).kind == "truncated"
    assert verify([], checkpoint=(2, rows[1]["hash"])).position == 1


def test_the_earliest_of_two_broken_links_is_the_one_named():
    rows = chain_of(6)
    rows[4] = {**rows[4], "actor": "agency:late"}

    assert verify(rows[:1] + rows[2:]).position == 2


def test_rows_fed_one_at_a_time_are_judged_as_in_one_pass_and_counted():
    rows = chain_of(5)
    verifier = Verifier(("the head", (5, rows[4]["hash"])))

    assert [verifier.feed(row) for row in rows] == [None] * 5
    assert verifier.finish() is None and verifier.count == 5


@pytest.mark.parametrize("text", ["5:" + "ab" * 32, " 12:" + "AB" * 32 + "\n"])
def test_a_checkpoint_reads_back_from_the_line_it_prints(text):
    checkpoint = Checkpoint.parse(text)

    assert Checkpoint.parse(str(checkpoint)) == checkpoint and len(checkpoint.hash) == 32


@pytest.mark.parametrize("text", ["", "5", "5:abc", "-1:" + "ab" * 32, "x:" + "ab" * 32, "5:" + "zz" * 32])
def test_a_malformed_checkpoint_is_refused(text):
    with pytest.raises(ValueError, match="not a checkpoint"):
        Checkpoint.parse(text)


def test_rows_past_the_head_are_still_checked_link_by_link():
    rows = chain_of(6)

    assert verify(rows, head=(4, rows[3]["hash"])) is None
    assert verify(changed(rows, 6, actor="a:b"), head=(4, rows[3]["hash"])).position == 6
