"""Raw records on referrals.inbound, as any agency system could publish them (signed: the fuzzing is
of what they sign): every bad one reaches referrals.inbound.dlq with its reason, every good one
becomes a referral, and intake keeps consuming after the barrage."""

import json
import uuid

from aiokafka import AIOKafkaProducer
from hypothesis import given
from hypothesis import strategies as st

from shared import topics
from shared.auth.records import signed_headers
from tests.fuzz.payloads import (FUZZ, broken_utf8_json, looking_like_attacks, nested, stored_verbatim, undecodable,
                                 wrong_types)
from tests.support import TopicReader, create_signing_secrets, headers_of

VALID = {"agency": "Border Force", "url": "https://t.me/fuzz_inbound", "category": "people_smuggling"}
FIELDS = ("agency", "url", "category", "case_reference", "idempotency_key", "notes", "priority")
ODD_HEADERS = [("trace", b"\xff\xfe"), ("", b""), ("nul", b"\x00"), ("\u00e9t\u00e9", "\u2603".encode())]
HUGE = 1_048_576 - 400  # within a few hundred bytes of a producer's default max_request_size, signed


def bad_records() -> dict[bytes, str]:
    """Values that can never be a submission, each with a word its dead-letter reason must contain."""
    bad: dict[bytes, str] = {}

    @FUZZ
    @given(kind=st.sampled_from(["bytes", "utf8", "type", "unknown", "nul", "deep"]), raw=st.binary(max_size=500),
           junk=undecodable(), field=st.sampled_from(FIELDS), value=wrong_types(), depth=st.integers(1, 5000),
           data=st.data())
    def collect(kind, raw, junk, field, value, depth, data):
        valid = {**VALID, "idempotency_key": str(uuid.uuid4())}  # every record distinct
        if kind == "bytes":
            bad[b"\x00" + raw] = "not valid JSON"  # a NUL byte first: never JSON
        elif kind == "utf8":
            bad[broken_utf8_json(valid, data.draw(st.sampled_from(["agency", "notes"])), junk)] = ""
        elif kind == "type":
            bad[json.dumps({**valid, field: value}).encode()] = field
        elif kind == "unknown":
            name = data.draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in FIELDS + ("evidence",)))
            bad[json.dumps({**valid, name: value}).encode()] = "Extra inputs are not permitted"
        elif kind == "nul":
            field = "notes" if field in ("category", "priority") else field
            bad[json.dumps({**valid, field: "\ue000"}).replace("\\ue000", "a\\u0000b").encode()] = "NUL"
        else:
            bad[nested(depth, data.draw(st.sampled_from(["list", "object"]))).encode()] = ""

    collect()
    bad[json.dumps({**VALID, "notes": "n" * 1_000_000}).encode()] = "notes"  # about 1 MB
    bad[b"[" * (HUGE - 1) + b"]"] = "not valid JSON"  # as big as a default producer sends
    bad[b'{"agency": "\\ud800", "url": "https://t.me/a", "category": "fraud"}'] = "agency"
    bad[b'{"\\udfff": 1, "agency": "A", "url": "https://t.me/a", "category": "fraud"}'] = "unicode"
    return bad


def good_records() -> list[bytes]:
    good: list[bytes] = []

    @FUZZ
    @given(agency=stored_verbatim(looking_like_attacks()).filter(lambda s: len(s) <= 200),
           notes=looking_like_attacks(200))
    def collect(agency, notes):
        good.append(json.dumps({**VALID, "agency": agency, "notes": notes,
                                "idempotency_key": str(uuid.uuid4())}).encode())

    collect()
    return good


def key_of(value: bytes) -> str:
    return json.loads(value)["idempotency_key"]


def signed(value: bytes | None, secrets: dict[str, str], agency: str = VALID["agency"]) -> list[tuple[str, bytes]]:
    """The record's signature headers, by agency, and the odd headers after them."""
    headers = signed_headers(agency, secrets[agency], value or b"")
    return [(k, v.encode()) for k, v in headers.items()] + ODD_HEADERS


async def test_every_bad_record_is_dead_lettered_with_its_reason_and_every_good_one_accepted(stack):
    bad, good = bad_records(), good_records()
    keys = {f"bad-{i}".encode(): value for i, value in enumerate(bad)} | {b"tombstone": None}
    # Every good record's agency (fuzzed: it is stored verbatim) signs it with a secret of its own.
    secrets = await create_signing_secrets(stack.database_url, (VALID["agency"], *{json.loads(v)["agency"] for v in good}))
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all", max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in keys.items():
            await producer.send(topics.REFERRALS_INBOUND, value, key=key, headers=signed(value, secrets))
        for value in good:
            await producer.send(topics.REFERRALS_INBOUND, value,
                                headers=signed(value, secrets, json.loads(value)["agency"]))
        await producer.flush()
    finally:
        await producer.stop()

    async with TopicReader(stack.kafka, topics.REFERRALS_INBOUND_DLQ) as dlq:
        dead = await dlq.wait_for(lambda rs: len(rs) >= len(keys), 120, f"{len(keys)} dead letters")
    assert sorted(r.key for r in dead) == sorted(keys)
    for record in dead:
        headers, sent = headers_of(record), keys[record.key]
        assert headers["dlq_original_topic"] == topics.REFERRALS_INBOUND
        if sent is None:
            assert record.value in (None, b"") and headers["dlq_reason"].startswith("not valid JSON")
            continue
        assert bad[sent] in headers["dlq_reason"], (sent[:100], headers["dlq_reason"])
        if len(sent) == HUGE:  # too big to copy with the dlq_* headers added: dead-lettered without it
            assert record.value == b"" and headers["dlq_value_omitted"].startswith(str(HUGE)), headers
        else:
            assert record.value == sent

    after = json.dumps({**VALID, "idempotency_key": "after the barrage"}).encode()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all")
    await producer.start()
    await producer.send_and_wait(topics.REFERRALS_INBOUND, after, headers=signed(after, secrets))
    await producer.stop()
    wanted = {key_of(v) for v in good} | {"after the barrage"}
    async with TopicReader(stack.kafka, topics.REFERRALS_SUBMITTED) as submitted:
        records = await submitted.wait_for(
            lambda rs: wanted <= {json.loads(r.value).get("idempotency_key") for r in rs}, 120, "the good records")
    by_key = {json.loads(r.value).get("idempotency_key"): json.loads(r.value) for r in records}
    for value in good:
        sent = json.loads(value)
        assert {k: by_key[sent["idempotency_key"]][k] for k in sent} == sent
