"""Reports referrals by e-mail: a text summary plus an XARF v4 attachment, over SMTP.

The stdlib smtplib does the talking, in a worker thread. E-mail gives no decision back on the
wire: an operator records what the platform answered (DecisionMode.manual), and there is no
status to poll. Sending the same referral twice sends two e-mails with one Message-ID, which the
receiver can recognise; an answer to the platform is a reply on the report's thread, its
Message-ID derived from the answer's idempotency key, so a retry is the same message again.
"""

import asyncio
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage

from pydantic import Field, SecretStr

from services.dispatcher.adapters import xarf
from services.dispatcher.adapters.base import (AdapterConfig, AuthKind, DecisionMode, DeliveryError,
                                               PlatformAdapter, Receipt)
from shared.events import InformationSupplied, Platform, ReferralSubmitted

log = logging.getLogger(__name__)

ADDRESS = r"^[^@\s]+@[^@\s]+$"


class EmailConfig(AdapterConfig):
    """Where and how referrals are e-mailed; base_url and the polling settings are unused."""

    smtp_host: str = Field("127.0.0.1", description="The SMTP relay (default: the sandbox mailbox).")
    smtp_port: int = Field(8025, ge=1, le=65535)
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS before sending.")
    username: str | None = Field(None, description="SMTP AUTH user; no AUTH when unset.")
    password: SecretStr | None = Field(None, description="SMTP AUTH password; never logged.")
    from_address: str = Field("referrals@takedown.sandbox", pattern=ADDRESS)
    to_address: str = Field("abuse@platform.sandbox", pattern=ADDRESS,
                            description="The platform's abuse or law-enforcement address.")
    reporter_org: str = Field("takedown", min_length=1, description="XARF ReporterInfo.ReporterOrg.")
    reporter_email: str | None = Field(None, pattern=ADDRESS,
                                       description="XARF ReporterInfo.ReporterOrgEmail; from_address when unset.")


class EmailAdapter(PlatformAdapter):
    """E-mails each referral to the abuse address of the platforms configured for it."""

    slug = "email"
    title = "E-mail (XARF v4)"
    version = "1"
    auth = AuthKind.smtp
    decisions = DecisionMode.manual
    Config = EmailConfig
    default_platforms = ()

    def __init__(self, config: AdapterConfig, platforms: tuple[Platform, ...] | None = None):
        if not isinstance(config, self.Config):
            config = self.Config.model_validate(config.model_dump())
        super().__init__(config, platforms)
        self.config: EmailConfig = config

    def message_for(self, referral: ReferralSubmitted) -> EmailMessage:
        """The e-mail this adapter sends for a referral."""
        c = self.config
        return xarf.build_message(referral, sender=c.from_address, recipient=c.to_address,
                                  reporter_org=c.reporter_org, reporter_email=c.reporter_email or c.from_address)

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """E-mail the referral; the receipt's ticket id is the Message-ID without brackets."""
        msg = self.message_for(referral)
        try:
            await asyncio.to_thread(self._send, msg)
        except DeliveryError as exc:
            log.warning("%s: referral %s not e-mailed to %s: %s", self.slug, referral.referral_id,
                        self.config.to_address, exc.reason)
            raise
        log.info("%s: e-mailed referral %s to %s as %s", self.slug, referral.referral_id,
                 self.config.to_address, msg["Message-ID"])
        return Receipt(ticket_id=xarf.ticket_id(referral))

    async def answer(self, ticket_id: str, supplied: InformationSupplied, idempotency_key: str) -> None:
        """E-mail the agency's answer as a reply to the report's e-mail (ticket_id is its Message-ID)."""
        msg = xarf.build_reply(ticket_id, supplied, idempotency_key, sender=self.config.from_address,
                               recipient=self.config.to_address, sent_at=datetime.now(UTC))
        try:
            await asyncio.to_thread(self._send, msg)
        except DeliveryError as exc:
            log.warning("%s: answer on %s not e-mailed to %s: %s", self.slug, ticket_id, self.config.to_address,
                        exc.reason)
            raise
        log.info("%s: e-mailed the answer on %s to %s as %s", self.slug, ticket_id, self.config.to_address,
                 msg["Message-ID"])

    def _send(self, msg: EmailMessage) -> None:
        """Deliver one message over a fresh SMTP connection (runs in a worker thread)."""
        c = self.config
        try:
            smtp = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.timeout_s)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._delivery_error(exc) from None
        try:
            if c.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if c.username is not None:
                smtp.login(c.username, c.password.get_secret_value() if c.password else "")
            smtp.send_message(msg, from_addr=c.from_address, to_addrs=[c.to_address])
        except (smtplib.SMTPException, OSError) as exc:
            raise self._delivery_error(exc) from None
        finally:
            _hang_up(smtp)

    def _delivery_error(self, exc: BaseException) -> DeliveryError:
        """Classify an SMTP or network failure: 5xx and bad set-up are permanent, the rest transient."""
        where = f"{self.config.smtp_host}:{self.config.smtp_port}"
        permanent = False
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            details = "; ".join(f"{rcpt}: {code} {_text(text)}" for rcpt, (code, text) in exc.recipients.items())
            reason = f"recipient refused by {where}: {details}"
        elif isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPServerDisconnected):
            reason = f"SMTP connection to {where} failed: {type(exc).__name__} {_describe(exc)}"
        elif isinstance(exc, smtplib.SMTPResponseException):
            permanent = exc.smtp_code >= 500
            reason = f"SMTP {exc.smtp_code} from {where}: {_text(exc.smtp_error)} ({type(exc).__name__})"
        elif isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
            permanent = True  # the server cannot do what the configuration asks: retrying will not help
            reason = f"SMTP server {where} refused the set-up: {exc}"
        elif isinstance(exc, TimeoutError):
            reason = f"SMTP server {where} timed out after {self.config.timeout_s}s"
        elif isinstance(exc, OSError):
            reason = f"cannot reach SMTP server {where}: {exc.strerror or exc}"
        else:
            reason = f"SMTP error from {where}: {type(exc).__name__} {exc}"
        return DeliveryError(self._redact(reason), permanent=permanent)

    def _redact(self, text: str) -> str:
        """The text with the password blanked out, should a server ever echo it."""
        secret = self.config.password.get_secret_value() if self.config.password else ""
        return text.replace(secret, "***") if secret else text


def _hang_up(smtp: smtplib.SMTP) -> None:
    """QUIT and close; once the message is accepted, a failing goodbye changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc)
