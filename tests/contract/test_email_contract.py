"""The e-mail adapters under the adapter contract, with the sandbox Mailbox as the platform.

Each test gets a Mailbox of its own that requires SMTP AUTH, so credentials are exercised.
E-mail cannot tell the sender of a replay, so replays are not flagged; the Mailbox counts a
referral's messages by Message-ID, so a replay is a duplicate, not a second report. An answer is a
reply on the report's thread; one sent again has the same Message-ID, so it is not a second reply.
E-mail has no status to poll.
"""

from typing import ClassVar

import pytest

from services.dispatcher.adapters import xarf
from services.dispatcher.adapters.base import DecisionMode, Receipt
from services.dispatcher.adapters.email import EmailAdapter
from services.dispatcher.adapters.telegram import TelegramAdapter
from services.sandbox.mailbox import Mailbox
from shared.embedded import free_port
from shared.events import Platform, ReferralSubmitted
from tests.contract.contract import AdapterContract

USER, PASSWORD = "takedown", "sandbox-smtp-password"

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


class MailboxContract(AdapterContract):
    """The contract against an authenticating Mailbox; the adapter class varies."""

    adapter_class: ClassVar[type[EmailAdapter]]
    replays_are_flagged = False

    @pytest.fixture
    async def peer(self):
        box = Mailbox(credentials={USER: PASSWORD})
        await box.start("127.0.0.1", free_port())
        yield box
        await box.stop()

    def configured(self, host: str, port: int, **overrides) -> EmailAdapter:
        config = self.adapter_class.Config(smtp_host=host, smtp_port=port, timeout_s=5, **overrides)
        return self.adapter_class(config, (self.platform,))

    async def make_adapter(self, peer: Mailbox) -> EmailAdapter:
        return self.configured(peer.host, peer.port, username=USER, password=PASSWORD)

    async def make_adapter_with_bad_credentials(self, peer: Mailbox) -> EmailAdapter:
        return self.configured(peer.host, peer.port, username=USER, password="not-" + PASSWORD)

    async def make_unreachable_adapter(self, peer: Mailbox, port: int) -> EmailAdapter:
        return self.configured("127.0.0.1", port, username=USER, password=PASSWORD)

    async def reports_at_peer(self, peer: Mailbox, referral: ReferralSubmitted) -> int:
        """Distinct Message-IDs among the messages whose XARF report names this referral."""
        about = [m for m in peer.messages
                 if (xarf.attached_report(m.message) or {}).get("Report", {}).get("ReferralId")
                 == str(referral.referral_id)]
        return len({m.message_id for m in about})

    async def answers_at_peer(self, peer: Mailbox, receipt: Receipt, referral: ReferralSubmitted) -> int:
        """Distinct replies on the thread of the report's e-mail."""
        return len(peer.replies_to(receipt.ticket_id))

    async def test_decisions_are_recorded_by_an_operator_not_called_back_or_polled(self, peer):
        adapter, referral = await self.adapter(peer), self.make_referral()
        receipt = await adapter.submit(referral)

        assert adapter.decisions is DecisionMode.manual and receipt.answer is None
        assert await self.answer_for(peer, adapter, receipt, referral) is None
        assert not adapter.has_status_api
        with pytest.raises(NotImplementedError):
            await adapter.poll(receipt.ticket_id, referral.referral_id)


class TestTheEmailAdapter(MailboxContract):
    adapter_class = EmailAdapter
    platform = Platform.other


class TestTheTelegramAdapter(MailboxContract):
    adapter_class = TelegramAdapter
    platform = Platform.telegram
