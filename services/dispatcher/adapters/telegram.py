"""Telegram takes reports by e-mail: the e-mail adapter, addressed to Telegram's abuse desk.

In real life the address is abuse@telegram.org; the default points at the sandbox mailbox so
that nothing reaches Telegram unless the deployment says so (ADAPTERS__TELEGRAM__TO_ADDRESS).
"""

from pydantic import Field

from services.dispatcher.adapters.email import ADDRESS, EmailAdapter, EmailConfig
from shared.events import Platform

PRODUCTION_ADDRESS = "abuse@telegram.org"


class TelegramConfig(EmailConfig):
    """E-mail settings for Telegram; the sandbox mailbox unless configured otherwise."""

    to_address: str = Field("abuse@telegram.sandbox", pattern=ADDRESS,
                            description=f"Telegram's abuse address; {PRODUCTION_ADDRESS} in production.")


class TelegramAdapter(EmailAdapter):
    """Reports t.me links to Telegram by e-mail, with an XARF v4 attachment."""

    slug = "telegram"
    title = "Telegram (e-mail, XARF v4)"
    hosts = ("t.me", "telegram.me")
    Config = TelegramConfig
    default_platforms = (Platform.telegram,)
