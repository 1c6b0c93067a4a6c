"""The XARF v4 document and the e-mail that carries it, built from a referral (no SMTP)."""

import json
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from uuid import UUID

from services.dispatcher.adapters import xarf
from services.dispatcher.adapters.email import EmailAdapter, EmailConfig
from services.dispatcher.adapters.telegram import TelegramAdapter
from shared.events import Category, Evidence, InformationSupplied, Platform
from tests.fakes import referral

RID = UUID("0b9f3c5e-8a1d-4c2b-9e7f-1a2b3c4d5e6f")
SUBMITTED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
HASH = "ab" * 32


def telegram_referral(**overrides):
    values = {"referral_id": RID, "url": "https://t.me/crossings/42?utm_source=x",
              "canonical_url": "https://t.me/crossings/42", "submitted_at": SUBMITTED, "case_reference": "OP-7"}
    return referral(Platform.telegram, **{**values, **overrides})


def build(ref=None):
    return xarf.build_message(ref or telegram_referral(), sender="referrals@takedown.sandbox",
                              recipient="abuse@telegram.sandbox", reporter_org="takedown",
                              reporter_email="le-desk@takedown.sandbox")


def sent_and_received(msg):
    """The message as a receiving mail system parses it from the bytes on the wire."""
    return message_from_bytes(msg.as_bytes(), policy=default_policy)


def test_the_document_has_the_xarf_v4_layout_of_the_platform_contract():
    doc = xarf.xarf_report(telegram_referral(), reporter_org="takedown", reporter_email="le@takedown.sandbox")
    assert doc == {
        "Version": "4",
        "ReporterInfo": {"ReporterOrg": "takedown", "ReporterOrgEmail": "le@takedown.sandbox"},
        "Report": {"ReportClass": "Content", "ReportType": "people_smuggling", "Date": "2026-03-04T05:06:07+00:00",
                   "SourceType": "uri", "Source": "https://t.me/crossings/42", "ReportedFrom": "NCA",
                   "ReferralId": str(RID), "CaseReference": "OP-7"},
    }


def test_the_report_type_is_the_referral_category():
    doc = xarf.xarf_report(telegram_referral(category=Category.terrorism), reporter_org="o", reporter_email="o@o.o")
    assert doc["Report"]["ReportType"] == "terrorism"


def test_a_referral_without_case_reference_reports_it_as_null():
    doc = xarf.xarf_report(telegram_referral(case_reference=None), reporter_org="o", reporter_email="o@o.o")
    assert doc["Report"]["CaseReference"] is None
    assert "Evidence" not in doc["Report"] and "Notes" not in doc["Report"]


def test_evidence_hashes_are_listed_with_capture_time_and_archive():
    evidence = [Evidence(sha256=HASH, captured_at=SUBMITTED, archive_url="https://archive.example/1"),
                Evidence(sha256="cd" * 32, captured_at=SUBMITTED)]
    doc = xarf.xarf_report(telegram_referral(evidence=evidence), reporter_org="o", reporter_email="o@o.o")
    assert doc["Report"]["Evidence"] == [
        {"Sha256": HASH, "CapturedAt": "2026-03-04T05:06:07+00:00", "ArchiveUrl": "https://archive.example/1"},
        {"Sha256": "cd" * 32, "CapturedAt": "2026-03-04T05:06:07+00:00", "ArchiveUrl": None},
    ]


def test_the_message_id_is_derived_from_the_referral_id():
    assert xarf.message_id(telegram_referral()) == f"<{RID}@takedown>"
    assert xarf.ticket_id(telegram_referral()) == f"{RID}@takedown"
    assert build()["Message-ID"] == build()["Message-ID"] == f"<{RID}@takedown>"


def test_building_the_same_referral_twice_gives_the_same_bytes_apart_from_the_mime_boundary():
    first, second = build(), build()
    first_parts = [p.get_content() for p in first.iter_parts()]
    assert first_parts == [p.get_content() for p in second.iter_parts()]
    assert [(k, v) for k, v in first.items() if k != "Content-Type"] == \
           [(k, v) for k, v in second.items() if k != "Content-Type"]


def test_the_message_headers_name_sender_recipient_subject_and_date():
    received = sent_and_received(build())
    assert received["From"] == "referrals@takedown.sandbox"
    assert received["To"] == "abuse@telegram.sandbox"
    assert received["Subject"] == f"[takedown] people_smuggling referral {RID}"
    assert received["Date"].datetime == SUBMITTED
    assert received["X-Takedown-Referral-Id"] == str(RID)
    assert received["MIME-Version"] == "1.0"
    assert [part["MIME-Version"] for part in received.iter_parts()] == [None, None]


def test_the_message_is_a_text_summary_followed_by_the_xarf_attachment():
    received = sent_and_received(build())
    assert received.get_content_type() == "multipart/mixed"
    text, attachment = list(received.iter_parts())
    assert text.get_content_type() == "text/plain" and not text.is_attachment()
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_filename() == "report.xarf.json" and attachment.is_attachment()


def test_the_text_part_says_what_is_referred_and_under_which_references():
    body = sent_and_received(build()).get_body(("plain",)).get_content()
    for expected in ("https://t.me/crossings/42", "people_smuggling", "NCA", "OP-7", str(RID), "report.xarf.json"):
        assert expected in body


def test_the_attachment_round_trips_to_the_xarf_document():
    ref = telegram_referral(evidence=[Evidence(sha256=HASH, captured_at=SUBMITTED)])
    received = sent_and_received(build(ref))
    assert xarf.attached_report(received) == xarf.xarf_report(ref, reporter_org="takedown",
                                                               reporter_email="le-desk@takedown.sandbox")


def test_non_ascii_agency_and_notes_survive_the_trip_in_both_parts():
    ref = telegram_referral(agency="Policía Nacional — UCRIF", notes="Überfahrt nach Lampedusa: 3 000 € ✓")
    wire = build(ref).as_bytes()
    assert wire.isascii(), "the message must be 7-bit clean for any relay"
    received = message_from_bytes(wire, policy=default_policy)
    body = received.get_body(("plain",)).get_content()
    assert "Policía Nacional — UCRIF" in body and "Überfahrt nach Lampedusa: 3 000 € ✓" in body
    report = xarf.attached_report(received)["Report"]
    assert report["ReportedFrom"] == "Policía Nacional — UCRIF"
    assert report["Notes"] == "Überfahrt nach Lampedusa: 3 000 € ✓"


def test_a_message_without_the_attachment_has_no_report():
    received = sent_and_received(build())
    received.set_payload([next(received.iter_parts())])
    assert xarf.attached_report(received) is None


def test_the_attachment_is_plain_json_without_ascii_escapes():
    ref = telegram_referral(agency="Garda Síochána")
    attachment = list(build(ref).iter_attachments())[0]
    raw = attachment.get_content()
    assert "Garda Síochána".encode() in raw and json.loads(raw)["Report"]["ReportedFrom"] == "Garda Síochána"


def test_the_reporter_email_defaults_to_the_sender_address():
    adapter = EmailAdapter(EmailConfig(from_address="desk@agency.example", to_address="abuse@p.example"))
    doc = xarf.attached_report(adapter.message_for(telegram_referral()))
    assert doc["ReporterInfo"] == {"ReporterOrg": "takedown", "ReporterOrgEmail": "desk@agency.example"}


def test_the_telegram_adapter_addresses_the_sandbox_mailbox_by_default():
    adapter = TelegramAdapter(TelegramAdapter.Config())
    config = adapter.config
    assert (config.smtp_host, config.smtp_port, config.to_address) == ("127.0.0.1", 8025, "abuse@telegram.sandbox")
    assert adapter.platforms == (Platform.telegram,)
    assert set(TelegramAdapter.hosts) == {"t.me", "telegram.me"}
    assert adapter.message_for(telegram_referral())["To"] == "abuse@telegram.sandbox"


def test_each_dispatch_of_a_referral_has_a_message_id_of_its_own():
    from services.dispatcher.adapters.xarf import ticket_id
    from tests.fakes import referral

    first = referral()
    again = first.model_copy(update={"dispatch": 2})

    assert ticket_id(first) == f"{first.referral_id}@takedown"
    assert ticket_id(again) == f"{first.referral_id}.2@takedown"


# -- replies: an agency's answer on the report's thread ------------------------------------------------

def supplied(answer="Terrorism Act 2006, s.2 — Beschluss Nr. 7", evidence=()):
    return InformationSupplied(referral_id=RID, answer=answer, evidence=list(evidence))


def reply(ticket=f"{RID}@takedown", key="answer-1", answer=None):
    return xarf.build_reply(ticket, answer or supplied(), key, sender="referrals@takedown.sandbox",
                            recipient="abuse@telegram.sandbox", sent_at=SUBMITTED)


def test_a_reply_answers_on_the_thread_of_the_report_it_answers():
    received = sent_and_received(reply())
    assert received["In-Reply-To"] == received["References"] == f"<{RID}@takedown>"
    assert (received["From"], received["To"]) == ("referrals@takedown.sandbox", "abuse@telegram.sandbox")
    assert received["Subject"].startswith("Re: [takedown] referral ") and str(RID) in received["Subject"]
    assert received["X-Takedown-Referral-Id"] == str(RID)


def test_a_replys_message_id_is_the_same_for_its_key_and_differs_for_another_key_or_ticket():
    assert reply()["Message-ID"] == reply()["Message-ID"]
    assert reply()["Message-ID"] != reply(key="answer-2")["Message-ID"]
    assert reply()["Message-ID"] != reply(ticket=f"{RID}.2@takedown")["Message-ID"]
    assert reply()["Message-ID"].startswith("<answer.") and reply()["Message-ID"].endswith("@takedown>")


def test_a_reply_carries_the_answer_and_its_evidence_7_bit_clean():
    evidence = [Evidence(sha256=HASH, captured_at=SUBMITTED, archive_url="https://archive.example/1")]
    wire = reply(answer=supplied(evidence=evidence)).as_bytes()
    assert wire.isascii()
    body = message_from_bytes(wire, policy=default_policy).get_body(("plain",)).get_content()
    assert "Terrorism Act 2006, s.2 — Beschluss Nr. 7" in body
    assert HASH in body and "https://archive.example/1" in body and str(RID) in body
