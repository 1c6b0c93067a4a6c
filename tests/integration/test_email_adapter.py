"""The e-mail adapters against real SMTP servers: the sandbox Mailbox and a few misbehaving ones."""

import asyncio
import logging
import smtplib
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from services.dispatcher.adapters import xarf
from services.dispatcher.adapters.base import DeliveryError
from services.dispatcher.adapters.email import EmailAdapter, EmailConfig
from services.dispatcher.adapters.telegram import TelegramAdapter
from services.sandbox.mailbox import Mailbox
from shared.embedded import free_port
from shared.events import Evidence, InformationSupplied, Platform
from tests.fakes import referral

PASSWORD = "correct horse battery staple"

# The sandbox takes AUTH over plain SMTP on purpose; aiosmtpd warns about it on every connection.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
async def mailbox():
    box = Mailbox(refuse_recipients={"gone@platform.sandbox"})
    await box.start("127.0.0.1", free_port())
    yield box
    await box.stop()


@pytest.fixture
async def guarded_mailbox():
    """A mailbox that takes mail only after SMTP AUTH as takedown."""
    box = Mailbox(credentials={"takedown": PASSWORD})
    await box.start("127.0.0.1", free_port())
    yield box
    await box.stop()


def email_adapter(box: Mailbox, to_address: str = "abuse@platform.sandbox", **settings) -> EmailAdapter:
    """An adapter e-mailing box; the server has answered 250 to DATA, so kept it, when submit returns."""
    config = EmailConfig(smtp_host=box.host, smtp_port=box.port, to_address=to_address, timeout_s=5, **settings)
    return EmailAdapter(config, platforms=(Platform.other,))


@pytest.fixture
async def silent_port():
    """A port whose server accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader, writer):
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_an_emailed_referral_arrives_with_a_correct_xarf_attachment(mailbox):
    ref = referral(Platform.other, agency="Policía Nacional", notes="Überfahrt: 3 000 €",
                   evidence=[Evidence(sha256="ab" * 32, captured_at=referral().submitted_at)])
    receipt = await email_adapter(mailbox, reporter_email="le@takedown.sandbox").submit(ref)

    assert receipt.ticket_id == f"{ref.referral_id}@takedown" and receipt.answer is None
    [received] = mailbox.messages
    assert (received.mail_from, received.rcpt_tos) == ("referrals@takedown.sandbox", ("abuse@platform.sandbox",))
    assert received.message_id == receipt.ticket_id
    assert received.message["Subject"] == f"[takedown] people_smuggling referral {ref.referral_id}"
    assert xarf.attached_report(received.message) == xarf.xarf_report(
        ref, reporter_org="takedown", reporter_email="le@takedown.sandbox")
    assert "Überfahrt: 3 000 €" in received.message.get_body(("plain",)).get_content()


async def test_the_same_referral_sent_twice_is_two_messages_but_one_report(mailbox):
    adapter, ref = email_adapter(mailbox), referral(Platform.other)
    first, again = await adapter.submit(ref), await adapter.submit(ref)

    assert first.ticket_id == again.ticket_id
    assert [m.message_id for m in mailbox.messages] == [first.ticket_id, first.ticket_id]
    assert [m.duplicate for m in mailbox.by_message_id[first.ticket_id]] == [False, True]
    assert (mailbox.reports, mailbox.duplicates) == (1, 1)
    assert mailbox.stats() == {"messages": 2, "reports": 1, "replies": 0, "duplicates": 1, "refused_recipients": 0,
                               "auth_failures": 0}


async def test_an_answer_is_a_reply_on_the_reports_thread_and_a_retry_is_the_same_reply(mailbox):
    adapter, ref = email_adapter(mailbox), referral(Platform.other)
    receipt = await adapter.submit(ref)
    supplied = InformationSupplied(referral_id=ref.referral_id, answer="Terrorism Act 2006, s.2")
    for key in ("answer-1", "answer-1", "answer-2"):
        await adapter.answer(receipt.ticket_id, supplied, key)

    report, *replies = mailbox.thread(receipt.ticket_id)
    assert report.message_id == receipt.ticket_id and report.in_reply_to is None
    assert [m.in_reply_to for m in replies] == [receipt.ticket_id] * 3
    assert [m.duplicate for m in replies] == [False, True, False], "a retry has the answer's Message-ID again"
    assert len(mailbox.replies_to(f"<{receipt.ticket_id}>")) == 2
    assert replies[0].message["References"] == f"<{receipt.ticket_id}>"
    assert "Terrorism Act 2006, s.2" in replies[0].message.get_body(("plain",)).get_content()
    assert mailbox.stats() == {"messages": 4, "reports": 1, "replies": 2, "duplicates": 1, "refused_recipients": 0,
                               "auth_failures": 0}


async def test_referrals_sent_concurrently_each_arrive_once(mailbox):
    adapter = email_adapter(mailbox)
    refs = [referral(Platform.other) for _ in range(12)]
    receipts = await asyncio.gather(*(adapter.submit(r) for r in refs))

    assert sorted(mailbox.by_message_id) == sorted(r.ticket_id for r in receipts)
    assert mailbox.stats()["reports"] == 12 and mailbox.stats()["duplicates"] == 0


async def test_a_refused_recipient_is_a_permanent_delivery_error(mailbox):
    adapter = email_adapter(mailbox, to_address="gone@platform.sandbox")
    with pytest.raises(DeliveryError) as refused:
        await adapter.submit(referral(Platform.other))

    assert refused.value.permanent
    assert "550" in refused.value.reason and "gone@platform.sandbox" in refused.value.reason
    assert mailbox.messages == [] and mailbox.stats()["refused_recipients"] == 1


async def test_nothing_listening_on_the_port_is_a_transient_delivery_error():
    adapter = EmailAdapter(EmailConfig(smtp_port=free_port(), timeout_s=5))
    with pytest.raises(DeliveryError) as failed:
        await adapter.submit(referral(Platform.other))
    assert not failed.value.permanent and "cannot reach" in failed.value.reason


async def test_a_server_that_never_greets_is_a_transient_timeout(silent_port):
    adapter = EmailAdapter(EmailConfig(smtp_port=silent_port, timeout_s=0.3))
    with pytest.raises(DeliveryError) as failed:
        await adapter.submit(referral(Platform.other))
    assert not failed.value.permanent and "timed out" in failed.value.reason


async def test_a_server_that_hangs_up_at_once_is_a_transient_delivery_error():
    async def hang_up(reader, writer):
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DeliveryError) as failed:
            await EmailAdapter(EmailConfig(smtp_port=port, timeout_s=5)).submit(referral(Platform.other))
    finally:
        server.close()
        await server.wait_closed()
    assert not failed.value.permanent and "SMTPServerDisconnected" in failed.value.reason


class BusyHandler:
    """A mail server that is temporarily unable to take messages."""

    async def handle_DATA(self, server, session, envelope):
        return "451 4.3.0 Mail queue full, try again later"


async def test_a_temporary_smtp_refusal_is_a_transient_delivery_error():
    controller = Controller(BusyHandler(), hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(controller.start)
    try:
        with pytest.raises(DeliveryError) as failed:
            await EmailAdapter(EmailConfig(smtp_port=controller.port, timeout_s=5)).submit(referral(Platform.other))
    finally:
        await asyncio.to_thread(controller.stop)
    assert not failed.value.permanent and "451" in failed.value.reason


class CurtHandler:
    """A mail server that takes messages but answers QUIT with an error."""

    def __init__(self):
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope.content)
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        return "554 5.0.0 goodbye yourself"


async def test_a_message_accepted_before_a_fumbled_goodbye_counts_as_delivered():
    handler = CurtHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(controller.start)
    try:
        receipt = await EmailAdapter(EmailConfig(smtp_port=controller.port, timeout_s=5)).submit(
            referral(Platform.other))
    finally:
        await asyncio.to_thread(controller.stop)
    assert len(handler.received) == 1 and receipt.ticket_id.encode() in handler.received[0]


async def test_correct_credentials_deliver_through_an_authenticating_server(guarded_mailbox):
    adapter = email_adapter(guarded_mailbox, username="takedown", password=PASSWORD)
    receipt = await adapter.submit(referral(Platform.other))
    assert [m.message_id for m in guarded_mailbox.messages] == [receipt.ticket_id]


async def test_a_wrong_password_is_permanent_and_never_logged_nor_reported(guarded_mailbox, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "hunter2-wrong-password"
    adapter = email_adapter(guarded_mailbox, username="takedown", password=wrong)
    with pytest.raises(DeliveryError) as refused:
        await adapter.submit(referral(Platform.other))

    assert refused.value.permanent and "535" in refused.value.reason
    assert wrong not in refused.value.reason and wrong not in repr(adapter.config)
    assert wrong not in caplog.text and "535" in caplog.text
    assert guarded_mailbox.messages == [] and guarded_mailbox.stats()["auth_failures"] >= 1


async def test_sending_without_credentials_to_an_authenticating_server_is_permanent(guarded_mailbox):
    with pytest.raises(DeliveryError) as refused:
        await email_adapter(guarded_mailbox).submit(referral(Platform.other))
    assert refused.value.permanent and "530" in refused.value.reason


async def test_credentials_for_a_server_without_auth_are_a_permanent_set_up_error(mailbox):
    adapter = email_adapter(mailbox, username="takedown", password=PASSWORD)
    with pytest.raises(DeliveryError) as refused:
        await adapter.submit(referral(Platform.other))
    assert refused.value.permanent and "AUTH" in refused.value.reason
    assert PASSWORD not in refused.value.reason


async def test_starttls_against_a_server_without_it_is_a_permanent_set_up_error(mailbox):
    with pytest.raises(DeliveryError) as refused:
        await email_adapter(mailbox, starttls=True).submit(referral(Platform.other))
    assert refused.value.permanent and "STARTTLS" in refused.value.reason


async def test_the_telegram_adapter_mails_telegram_referrals_to_the_sandbox_address(mailbox):
    adapter = TelegramAdapter(TelegramAdapter.Config(smtp_host=mailbox.host, smtp_port=mailbox.port))
    ref = referral(Platform.telegram, url="https://t.me/crossings/9", canonical_url="https://t.me/crossings/9")
    receipt = await adapter.submit(ref)

    assert adapter.platforms == (Platform.telegram,) and adapter.slug == "telegram"
    [received] = mailbox.messages
    assert received.rcpt_tos == ("abuse@telegram.sandbox",) and received.message_id == receipt.ticket_id
    assert xarf.attached_report(received.message)["Report"]["Source"] == "https://t.me/crossings/9"


async def test_the_mailbox_counts_each_message_without_a_message_id_as_a_report(mailbox):
    def send_plain() -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@b.example", "abuse@platform.sandbox", "no id"
        msg.set_content("hello")
        with smtplib.SMTP(mailbox.host, mailbox.port, timeout=5) as smtp:
            smtp.send_message(msg)

    await asyncio.to_thread(send_plain)
    await asyncio.to_thread(send_plain)
    assert [m.message_id for m in mailbox.messages] == [None, None]
    assert (mailbox.reports, mailbox.duplicates, mailbox.by_message_id) == (2, 0, {})


async def test_a_stopped_mailbox_keeps_its_messages_and_refuses_connections(mailbox):
    await email_adapter(mailbox).submit(referral(Platform.other))
    await mailbox.stop()
    assert not mailbox.running and len(mailbox.messages) == 1
    with pytest.raises(DeliveryError) as failed:
        await email_adapter(mailbox).submit(referral(Platform.other))
    assert not failed.value.permanent
    mailbox.clear()
    assert mailbox.stats()["messages"] == 0
