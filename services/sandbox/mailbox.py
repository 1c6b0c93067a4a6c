"""An SMTP sink standing in for platforms' abuse mailboxes: it keeps every e-mail it is sent.

aiosmtpd's Controller serves SMTP from a thread of its own; start() and stop() wait for it
without blocking the caller's event loop. Each message is kept with its envelope and parsed
form; messages are grouped by Message-ID, so a report e-mailed twice counts once, plus one
duplicate. A message with In-Reply-To is a reply (an agency's answer on a report's thread):
thread() gives a report and its replies, replies_to() the distinct replies. Recipients can be
refused (550) and SMTP AUTH required, to rehearse failures.
"""

import asyncio
import hmac
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedMessage:
    """One e-mail as the mailbox received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    message_id: str | None  # without the angle brackets
    duplicate: bool  # an earlier message carried the same Message-ID
    in_reply_to: str | None  # the Message-ID it answers, without the angle brackets; None: not a reply
    peer: str | None
    received_at: datetime


class MailboxHandler:
    """aiosmtpd handler: refuses listed recipients and records every message to its mailbox."""

    def __init__(self, mailbox: "Mailbox"):
        self.mailbox = mailbox

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        """Accept a recipient unless the mailbox is set to refuse it."""
        if address.lower() in self.mailbox.refuse_recipients:
            self.mailbox._count_refusal()
            return f"550 5.1.1 <{address}>: recipient refused"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        """Parse and keep the message."""
        raw = envelope.original_content or envelope.content or b""
        message = BytesParser(policy=default_policy).parsebytes(raw if isinstance(raw, bytes) else raw.encode())
        peer = f"{session.peer[0]}:{session.peer[1]}" if session.peer else None
        kept = self.mailbox._record(envelope.mail_from or "", envelope.rcpt_tos, message, peer)
        log.info("mailbox: message %s from %s to %s%s", kept.message_id, kept.mail_from,
                 ", ".join(kept.rcpt_tos), " (duplicate)" if kept.duplicate else "")
        return "250 2.0.0 Message accepted for delivery"


class Mailbox:
    """An SMTP server that keeps what it receives, for the sandbox and the tests."""

    def __init__(self, refuse_recipients: Iterable[str] = (), credentials: Mapping[str, str] | None = None):
        self.refuse_recipients = frozenset(a.lower() for a in refuse_recipients)
        self.credentials = dict(credentials) if credentials is not None else None
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._by_id: dict[str, list[ReceivedMessage]] = {}
        self._refused = 0
        self._auth_failures = 0
        self._controller: Controller | None = None
        self.host: str | None = None
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 8025) -> None:
        """Listen on host:port; returns once the server answers."""
        if self._controller is not None:
            raise RuntimeError(f"mailbox already listening on {self.host}:{self.port}")
        auth: dict[str, Any] = {}
        if self.credentials is not None:
            auth = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        controller = Controller(MailboxHandler(self), hostname=host, port=port,
                                server_hostname="mailbox.sandbox", **auth)
        await asyncio.to_thread(controller.start)
        self._controller, self.host, self.port = controller, host, port
        log.info("mailbox listening on %s:%s", host, port)

    async def stop(self) -> None:
        """Stop listening; what was received stays readable."""
        controller, self._controller = self._controller, None
        if controller is not None:
            await asyncio.to_thread(controller.stop)
            log.info("mailbox on %s:%s stopped", self.host, self.port)

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message received, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def by_message_id(self) -> dict[str, list[ReceivedMessage]]:
        """Messages grouped by Message-ID (without angle brackets)."""
        with self._lock:
            return {mid: list(found) for mid, found in self._by_id.items()}

    @property
    def reports(self) -> int:
        """Distinct reports: one per Message-ID, and each message without one; replies are not reports."""
        with self._lock:
            return sum(1 for m in self._messages if not m.duplicate and not m.in_reply_to)

    @property
    def duplicates(self) -> int:
        """Messages whose Message-ID an earlier message already carried."""
        with self._lock:
            return sum(1 for m in self._messages if m.duplicate)

    def thread(self, message_id: str) -> list[ReceivedMessage]:
        """The messages with message_id (brackets or not) and every reply naming it, oldest first."""
        wanted = message_id.strip().strip("<>")
        with self._lock:
            return [m for m in self._messages if wanted in (m.message_id, m.in_reply_to)]

    def replies_to(self, message_id: str) -> list[ReceivedMessage]:
        """The distinct replies to message_id: one per Message-ID (a reply sent again is not a second)."""
        wanted = message_id.strip().strip("<>")
        return [m for m in self.thread(wanted) if m.in_reply_to == wanted and not m.duplicate]

    def stats(self) -> dict[str, int]:
        """Counts for dashboards and the sandbox API: reports and replies are distinct Message-IDs."""
        with self._lock:
            duplicates = sum(1 for m in self._messages if m.duplicate)
            replies = sum(1 for m in self._messages if m.in_reply_to and not m.duplicate)
            return {"messages": len(self._messages), "reports": len(self._messages) - duplicates - replies,
                    "replies": replies, "duplicates": duplicates, "refused_recipients": self._refused,
                    "auth_failures": self._auth_failures}

    def clear(self) -> None:
        """Forget every message and count."""
        with self._lock:
            self._messages.clear()
            self._by_id.clear()
            self._refused = self._auth_failures = 0

    def _record(self, mail_from: str, rcpt_tos: list[str], message: EmailMessage,
                peer: str | None) -> ReceivedMessage:
        message_id = str(message.get("Message-ID") or "").strip().strip("<>") or None
        in_reply_to = str(message.get("In-Reply-To") or "").strip().strip("<>") or None
        with self._lock:
            kept = ReceivedMessage(mail_from=mail_from, rcpt_tos=tuple(rcpt_tos), message=message,
                                   message_id=message_id, duplicate=message_id in self._by_id,
                                   in_reply_to=in_reply_to, peer=peer, received_at=datetime.now(UTC))
            self._messages.append(kept)
            if message_id is not None:
                self._by_id.setdefault(message_id, []).append(kept)
            return kept

    def _count_refusal(self) -> None:
        with self._lock:
            self._refused += 1

    def _authenticate(self, server, session, envelope, mechanism: str, auth_data: Any) -> AuthResult:
        """aiosmtpd authenticator: LOGIN/PLAIN against the configured credentials."""
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            login, password = auth_data.login.decode(errors="replace"), auth_data.password
            expected = self.credentials.get(login)
            if expected is not None and hmac.compare_digest(expected.encode(), password):
                return AuthResult(success=True)
        with self._lock:
            self._auth_failures += 1
        return AuthResult(success=False, handled=False)
