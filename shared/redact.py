"""Redaction: credentials and configured secrets blanked out of text that leaves a process.

Error excerpts reach logs, dead-letter headers and referral.dispatch_failed events, and a platform
may echo what we sent it (our Authorization header, the form with our client secret). Such text
goes through redact(): credentials known by their shape (bearer tokens, Authorization values, our
td_ API keys, whsec_ webhook secrets) and every registered secret in its plain, URL-encoded,
JSON-escaped and base64 forms become ***.

One process-wide Redactor rather than an object passed around: its exits are every log record
(logging's handlers are process-wide already) and plain functions of shared/ called from every
service (dead letters), which a constructor argument would reach only by threading it through
each of them. Each service's composition root registers the secrets of its settings at start.
"""

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

log = logging.getLogger(__name__)

MASK = "***"
MIN_SECRET_CHARS = 6  # a shorter secret, or form of one, would blank out ordinary words
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

# Credentials known by their shape, as (first characters, the rest). The first character is kept a
# literal so that the compiled pattern tries, at each position, only the branch of the character
# found there; the lookbehind after it stops a match starting inside a word ("std_dev_x").
_NOT_IN_WORD = r"(?<![A-Za-z0-9].)"
_TOKEN = r"[A-Za-z0-9\-._~+/]+=*"  # RFC 6750 b64token
_VALUE = r"""[^\s"',;&}]+(?:[ \t]+[^\s"',;&}]+)?"""  # a scheme and its credentials, or a bare credential
_SHAPES = (
    ("Bb", rf"{_NOT_IN_WORD}(?i:earer)\s+{_TOKEN}"),
    ("Aa", rf"""{_NOT_IN_WORD}(?i:uthorization)["']?\s*[:=]\s*["']?(?!\*\*\*){_VALUE}"""),
    ("t", rf"{_NOT_IN_WORD}d_[A-Za-z0-9]+_[A-Za-z0-9_-]+"),  # td_<kid>_<secret>
    ("w", rf"{_NOT_IN_WORD}hsec_[A-Za-z0-9+/=_-]+"),  # Standard Webhooks secret
)
# The part of a match left readable: the scheme or field name, our key's id.
_KEEP = re.compile(r"""(?i)(?:bearer\s+|authorization["']?\s*[:=]\s*["']?|td_[A-Za-z0-9]+_|whsec_)""")
_URLSAFE = str.maketrans("+/", "-_")
_END, _TAILS = 0, 1  # trie keys that are not characters


def forms(secret: str) -> set[str]:
    """The ways secret may be written in text: as it is, URL-encoded, JSON-escaped and in base64."""
    quoted = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    found = {secret, *quoted, *(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), q) for q in quoted),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             *base64_forms(secret.encode())}
    return {f for f in found if len(f) >= MIN_SECRET_CHARS}


def base64_forms(raw: bytes) -> set[str]:
    """raw in base64, standard and URL-safe, padded or not, and what of it shows inside a longer
    encoded string (Basic auth's "client:secret"): the characters made of raw's bits alone, at
    each of the three offsets raw may start at."""
    full = base64.b64encode(raw).decode()
    found = {full, full.rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        found.add(encoded[-(-8 * offset // 6):8 * (offset + len(raw)) // 6])
    return found | {f.translate(_URLSAFE) for f in found}


def _pattern(literals: Iterable[str]) -> re.Pattern:
    """One pattern of every shape and literal, as a prefix tree: an alternation of a few hundred
    secret forms tries each at every position, ten times slower than following one branch."""
    root: dict = {}
    for literal in literals:
        node = root
        for char in literal:
            node = node.setdefault(char, {})
        node[_END] = True
    for firsts, tail in _SHAPES:
        for first in firsts:
            root.setdefault(first, {}).setdefault(_TAILS, []).append(tail)
    return re.compile(_render(root))


def _render(node: dict) -> str:
    branches = []
    for char, child in node.items():
        if isinstance(char, str):
            run = char
            while len(child) == 1 and isinstance(next(iter(child)), str):  # a chain: no group, no recursion
                char, child = next(iter(child.items()))
                run += char
            branches.append(re.escape(run) + _render(child))
    branches += node.get(_TAILS, [])
    if node.get(_END):
        branches.append("")  # a literal may end here; longer ones are tried first
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _mask(match: re.Match) -> str:
    keep = _KEEP.match(match.group())
    return (keep.group() if keep else "") + MASK


class Redactor:
    """Blanks credentials and registered secrets out of text."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._seen: frozenset[str] = frozenset()  # registered, or skipped as too short
        self._compiled = _pattern(())
        self._lock = threading.Lock()
        self.register(*secrets)

    def register(self, *secrets: str) -> None:
        """Blank these secrets out too, in every form; those too short to redact safely are skipped."""
        if not (new := {s for s in secrets if s} - self._seen):  # the common case: excerpt() calls it each time
            return
        with self._lock:
            self._seen |= new
            for short in (s for s in new if len(s) < MIN_SECRET_CHARS):
                log.warning("a configured secret of %s characters is too short to redact from logs", len(short))
            if any(len(s) >= MIN_SECRET_CHARS for s in new):
                usable = (s for s in self._seen if len(s) >= MIN_SECRET_CHARS)
                self._compiled = _pattern(sorted({f for s in usable for f in forms(s)}))

    def redact(self, text: str) -> str:
        """text with every credential and registered secret in it replaced by ***."""
        compiled = self._compiled
        if compiled.search(text) is None:  # the common case: one scan, nothing built
            return text
        return compiled.sub(_mask, text)


REDACTOR = Redactor()  # the process's: see the module's docstring


def register_secrets(*secrets: str) -> None:
    """Have the process's redactor blank these secrets out (composition roots, from their settings)."""
    REDACTOR.register(*secrets)


def redact(text: str, also: Iterable[str] = ()) -> str:
    """text scrubbed by the process's redactor; `also`: secrets to register first, for good."""
    if also:
        REDACTOR.register(*also)
    return REDACTOR.redact(text)


def redact_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Text headers fit to copy elsewhere: credential headers dropped, every value scrubbed."""
    return {k: REDACTOR.redact(v) for k, v in headers.items()
            if isinstance(v, str) and k.lower() not in DROPPED_HEADERS}


def configured_secrets(settings: Any) -> list[str]:
    """Every SecretStr and SecretBytes value in settings (nested models, dicts and lists included),
    and the password in its database_url."""
    found: list[str] = []
    _collect(settings, found)
    url = getattr(settings, "database_url", None)
    if isinstance(url, str) and (password := urlsplit(url).password):
        found.append(unquote(password))
    return found


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, SecretStr | SecretBytes):
        secret = value.get_secret_value()
        found.append(secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret)
    elif isinstance(value, BaseModel):
        for _, field in value:
            _collect(field, found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, found)


_EXCEPTIONS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Scrubs a record's rendered message, exception and stack text before a handler writes it."""

    def __init__(self, redactor: Redactor = REDACTOR):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted", False):  # one record passes every handler's filter
            return True
        record.redacted = True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: the handler reports it, as without us
            return True
        if (clean := self.redactor.redact(message)) is not message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text once set: the traceback is rendered once, here, and scrubbed.
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Put the process's RedactingFilter on every handler of logger (the root logger by default).

    On the handlers, not the logger: a logger's filters see only records logged on it, while
    the root's handlers see every record that propagates."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
