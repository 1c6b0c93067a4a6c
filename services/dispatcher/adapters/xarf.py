"""Referrals as XARF v4 reports, the e-mail that carries one, and replies on its thread (pure: no I/O).

The e-mail is multipart: a short human-readable text part and the report as the JSON attachment
`report.xarf.json`. Its Message-ID is derived from the referral id, so the same referral
e-mailed twice carries the same id and the receiving system can recognise the second copy.
An agency's answer to the platform is a plain-text reply to that e-mail (In-Reply-To and
References name it), whose Message-ID is derived from the answer's idempotency key likewise.
"""

import hashlib
import json
from email.message import EmailMessage
from email.policy import default as default_policy
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from shared.events import InformationSupplied, ReferralSubmitted

XARF_VERSION = "4"
ATTACHMENT_NAME = "report.xarf.json"
MESSAGE_ID_DOMAIN = "takedown"
# Headers are short and ASCII: left unfolded (up to RFC 5322's 998), because Python folds a
# 70-77 character Subject onto a line of its own, which receivers then read with a leading space.
HEADER_POLICY = default_policy.clone(max_line_length=998)


def ticket_id(referral: ReferralSubmitted) -> str:
    """The referral's Message-ID without angle brackets: what a Receipt carries."""
    return f"{referral.delivery_key.replace('/', '.')}@{MESSAGE_ID_DOMAIN}"  # one per dispatch


def message_id(referral: ReferralSubmitted) -> str:
    """The deterministic Message-ID header of the referral's e-mail."""
    return f"<{ticket_id(referral)}>"


def subject(referral: ReferralSubmitted) -> str:
    """The e-mail's subject line, e.g. '[takedown] people_smuggling referral <id>'."""
    return f"[takedown] {referral.category} referral {referral.referral_id}"


def xarf_report(referral: ReferralSubmitted, *, reporter_org: str, reporter_email: str) -> dict[str, Any]:
    """The referral as an XARF v4 document (a JSON-ready dict)."""
    report: dict[str, Any] = {
        "ReportClass": "Content",
        "ReportType": str(referral.category),
        "Date": referral.submitted_at.isoformat(),
        "SourceType": "uri",
        "Source": referral.canonical_url,
        "ReportedFrom": referral.agency,
        "ReferralId": str(referral.referral_id),
        "CaseReference": referral.case_reference,
    }
    if referral.notes:
        report["Notes"] = referral.notes
    if referral.evidence:
        report["Evidence"] = [
            {"Sha256": e.sha256, "CapturedAt": e.captured_at.isoformat(), "ArchiveUrl": e.archive_url}
            for e in referral.evidence
        ]
    return {
        "Version": XARF_VERSION,
        "ReporterInfo": {"ReporterOrg": reporter_org, "ReporterOrgEmail": reporter_email},
        "Report": report,
    }


def summary(referral: ReferralSubmitted) -> str:
    """The human-readable text part: what is referred, by whom, and under which references."""
    lines = [
        f"{referral.agency} refers the following content to you for review under your terms of",
        "service and applicable law.",
        "",
        f"URL:            {referral.canonical_url}",
        f"Category:       {referral.category}",
        f"Priority:       {referral.priority}",
        f"Agency:         {referral.agency}",
        f"Case reference: {referral.case_reference or '-'}",
        f"Referral id:    {referral.referral_id}",
        f"Submitted at:   {referral.submitted_at.isoformat()}",
    ]
    if referral.evidence:
        lines.append(f"Evidence:       {len(referral.evidence)} item(s), SHA-256 hashes in the attachment")
    if referral.notes:
        lines += ["", "Notes:", referral.notes]
    lines += ["", f"The machine-readable report is attached as {ATTACHMENT_NAME} (XARF v4).",
              "Please quote the referral id in your reply."]
    return "\n".join(lines) + "\n"


def build_message(referral: ReferralSubmitted, *, sender: str, recipient: str, reporter_org: str,
                  reporter_email: str) -> EmailMessage:
    """The multipart e-mail reporting one referral, with its XARF attachment."""
    text = EmailMessage()  # parts keep the default policy: 76-column quoted-printable and base64
    # Quoted-printable and base64 keep the message 7-bit clean for any relay, whatever the notes say.
    text.set_content(summary(referral), charset="utf-8", cte="quoted-printable")
    attachment = EmailMessage()
    document = xarf_report(referral, reporter_org=reporter_org, reporter_email=reporter_email)
    attachment.set_content(json.dumps(document, ensure_ascii=False, indent=2).encode(), maintype="application",
                           subtype="json", disposition="attachment", filename=ATTACHMENT_NAME)
    for part in (text, attachment):
        del part["MIME-Version"]  # set_content adds it; it belongs on the message alone
    msg = EmailMessage(policy=HEADER_POLICY)
    msg["MIME-Version"] = "1.0"
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject(referral)
    msg["Date"] = format_datetime(referral.submitted_at)
    msg["Message-ID"] = message_id(referral)
    msg["X-Takedown-Referral-Id"] = str(referral.referral_id)
    msg.make_mixed()
    msg.attach(text)
    msg.attach(attachment)
    return msg


def reply_message_id(ticket_id: str, idempotency_key: str) -> str:
    """The Message-ID of the reply answering ticket_id under idempotency_key: the same for every retry."""
    digest = hashlib.sha256(f"{ticket_id}\x00{idempotency_key}".encode()).hexdigest()[:32]
    return f"<answer.{digest}@{MESSAGE_ID_DOMAIN}>"


def reply_text(supplied: InformationSupplied) -> str:
    """The reply's text: the answer, then the evidence supplied with it."""
    lines = [f"In reply to your request for information on referral {supplied.referral_id}:", "",
             supplied.answer, ""]
    if supplied.evidence:
        lines.append("Evidence (SHA-256, captured at, archive):")
        lines += [f"- {e.sha256} {e.captured_at.isoformat()} {e.archive_url or '-'}" for e in supplied.evidence]
        lines.append("")
    lines.append("Please quote the referral id in your reply.")
    return "\n".join(lines) + "\n"


def build_reply(ticket_id: str, supplied: InformationSupplied, idempotency_key: str, *, sender: str,
                recipient: str, sent_at: datetime) -> EmailMessage:
    """The e-mail answering the platform on the thread of the report whose Message-ID is <ticket_id>."""
    msg = EmailMessage(policy=HEADER_POLICY)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"Re: [takedown] referral {supplied.referral_id}: the information you asked for"
    msg["Date"] = format_datetime(sent_at)
    msg["Message-ID"] = reply_message_id(ticket_id, idempotency_key)
    msg["In-Reply-To"] = f"<{ticket_id}>"
    msg["References"] = f"<{ticket_id}>"
    msg["X-Takedown-Referral-Id"] = str(supplied.referral_id)
    msg.set_content(reply_text(supplied), charset="utf-8", cte="quoted-printable")
    return msg


def attached_report(msg: EmailMessage) -> dict[str, Any] | None:
    """The XARF document attached to a received e-mail, or None if it has none."""
    for part in msg.iter_attachments():
        if part.get_filename() == ATTACHMENT_NAME:
            return json.loads(part.get_content())
    return None
