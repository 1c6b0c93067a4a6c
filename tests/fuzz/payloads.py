"""Bad input for the fuzzers: Hypothesis strategies and the checks every answer must pass."""

import json
import os
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Few examples each, the same ones every run: CI reproduces what a developer saw. FUZZ_EXAMPLES=500
# fuzzes harder (still derandomized: the same 500 every time).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

SQL = ["' OR '1'='1", "'; DROP TABLE intake.referrals; --", "\" OR 1=1 --", "1; SELECT pg_sleep(30)--",
       "') UNION SELECT * FROM outcomes.audit_events --", "$$; TRUNCATE outcomes.audit_events; $$", "\\'; --"]
SCRIPT = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)", "{{7*7}}",
          "${jndi:ldap://127.0.0.1/a}", "%s%s%n", "../../etc/passwd", "]]><!--", "\u202e\u0000\ufeff"]
# What Postgres can store: no NUL, no lone surrogate. Those two are bad input of their own.
STORABLE = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def looking_like_attacks(max_size: int = 40) -> st.SearchStrategy[str]:
    """SQL- and script-looking text, alone, mixed with any text, or any text at all."""
    known = st.sampled_from([s for s in SQL + SCRIPT if "\x00" not in s])
    return st.one_of(known, st.tuples(st.text(STORABLE, max_size=8), known, st.text(STORABLE, max_size=8)).map(
        "".join), st.text(STORABLE, min_size=1, max_size=max_size))


def stored_verbatim(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Text an agency could mean: not blank, and not padded (intake strips the ends of strings)."""
    return text.filter(lambda s: s.strip() == s and s != "")


def wrong_types() -> st.SearchStrategy[Any]:
    """JSON values that are not strings (null apart: optional fields take it)."""
    leaf = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    return st.one_of(leaf, st.lists(leaf, max_size=3), st.dictionaries(st.text(max_size=5), leaf, max_size=3))


def nested(depth: int, kind: str = "list") -> str:
    """JSON nested depth levels deep, built as text (json.dumps itself cannot go that deep)."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def depths() -> st.SearchStrategy[int]:
    """Nesting depths around every limit that matters: Python's recursion and pydantic's."""
    return st.one_of(st.integers(1, 300), st.integers(300, 3000), st.sampled_from([999, 1000, 1001, 10_000]))


def undecodable() -> st.SearchStrategy[bytes]:
    """Bytes that are not UTF-8: a lone continuation byte, an overlong form, a bare surrogate."""
    return st.sampled_from([b"\x80", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xfe\xff"])


def broken_utf8_json(valid: dict[str, Any], field: str, junk: bytes) -> bytes:
    """valid as JSON, with junk bytes inside the string value of field."""
    marker = "JUNK-GOES-HERE"
    return json.dumps({**valid, field: marker}).encode().replace(marker.encode(), b"x" + junk + b"y")


def json_headers(**extra: str) -> dict[str, str]:
    return {"content-type": "application/json", **extra}


def assert_clear_refusal(response: httpx.Response, *statuses: int) -> Any:
    """A 4xx (one of statuses, if given) with a JSON body whose detail says what was wrong."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert 400 <= response.status_code < 500, f"accepted bad input: {response.status_code} {response.text[:300]}"
    if statuses:
        assert response.status_code in statuses, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    detail = response.json()["detail"]
    assert detail, response.text
    return detail


def named_fields(detail: Any) -> set[tuple]:
    """The fields a 422 names, as tuples of the location below the body ('evidence', 0, 'sha256')."""
    return {tuple(e["loc"][1:]) for e in detail} if isinstance(detail, list) else set()
