"""Intake's domain: what a valid submission is, canonical URLs and platform detection. No I/O."""

import functools
import hashlib
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import netpolicy
from shared.events import Category, Evidence, Platform, Priority, ReferralSubmitted, storable

PLATFORM_HOSTS: dict[str, Platform] = {
    "facebook.com": Platform.facebook,
    "fb.com": Platform.facebook,
    "fb.me": Platform.facebook,
    "fb.watch": Platform.facebook,
    "instagram.com": Platform.instagram,
    "instagr.am": Platform.instagram,
    "youtube.com": Platform.youtube,
    "youtu.be": Platform.youtube,
    "x.com": Platform.x,
    "twitter.com": Platform.x,
    "tiktok.com": Platform.tiktok,
    "t.me": Platform.telegram,
    "telegram.me": Platform.telegram,
}
# Sub-domains that name the same content as the bare host.
ALIAS_PREFIXES = ("www.", "m.", "mobile.", "web.")
TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "msclkid", "igshid", "igsh", "si", "mibextid",
                   "ref_src", "ref_url", "_rdr", "__tn__", "__cft__[0]", "feature"}


class Submission(BaseModel):
    """One referral as an agency submits it, over HTTP or on referrals.inbound."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agency: str | None = Field(None, min_length=1, max_length=200, examples=["NCA"],
                               description="Optional: the caller's own agency (another one is refused, 403).")
    url: str = Field(min_length=1, max_length=4096, examples=["https://www.facebook.com/groups/123"])
    category: Category
    case_reference: str | None = Field(None, max_length=200)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    priority: Priority = Priority.normal
    notes: str | None = Field(None, max_length=10_000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)

    _storable = field_validator("*")(storable)

    @field_validator("url")
    @classmethod
    def _url_is_canonicalisable(cls, value: str) -> str:
        canonicalise(value)
        return value


def _split(url: str):
    """url's parts and its host as compared; ValueError if it is not a public http(s) URL."""
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("URL scheme must be http or https")
    if not parts.hostname:
        raise ValueError("URL must have a host name")
    if any(c.isspace() for c in url):
        raise ValueError("URL must not contain white space")
    return parts, _public_host(parts.hostname)


# Pure, and the same few platforms' hosts come again and again: each host name is checked once
# (an error is not remembered: a refused host is checked again each time).
@functools.lru_cache(maxsize=1024)
def _public_host(hostname: str) -> str:
    # Refused here, not only when fetched, so an agency learns at once; see shared/netpolicy.py.
    netpolicy.check_host(hostname)
    if "." not in hostname and netpolicy.parse_address(hostname) is None:
        raise ValueError("URL must have a host name")
    return _host(hostname)


def _host(hostname: str) -> str:
    address = netpolicy.parse_address(hostname)
    if address is not None:  # one spelling per address: 134744072 and 8.8.2056 are 8.8.8.8
        return f"[{address}]" if address.version == 6 else str(address)
    host = hostname.lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("URL host is not a valid domain name") from exc


def _platform_of(host: str) -> Platform:
    for domain, platform in PLATFORM_HOSTS.items():
        if host == domain or host.endswith("." + domain):
            return platform
    return Platform.other


def detect_platform(url: str) -> Platform:
    """The platform that hosts url, by its host name; anything unknown is 'other'."""
    return _platform_of(_split(url)[1])


def canonicalise(url: str) -> str:
    """A stable form of url: https for known platforms, lower-case host, no fragment or trackers."""
    return canonical(url)[0]


# Validating a submission canonicalises its URL and building its event needs the result again,
# with no await in between (a batch is at most 1,000): remembered, the URL is parsed once, not twice.
@functools.lru_cache(maxsize=4096)
def canonical(url: str) -> tuple[str, Platform]:
    """url's canonical form and the platform that hosts it, from one parse; ValueError if it has none."""
    parts, host = _split(url.strip())
    platform = _platform_of(host)
    scheme = parts.scheme.lower()
    if platform is not Platform.other:
        scheme = "https"
        for prefix in ALIAS_PREFIXES:
            if host.startswith(prefix) and host[len(prefix):] in PLATFORM_HOSTS:
                host = host[len(prefix):]
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("URL port is not a number") from exc
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _tracking(k)]
    path = parts.path or "/"
    if host == "youtu.be" and path.strip("/"):
        host, query, path = "youtube.com", [("v", path.strip("/")), *query], "/watch"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit((scheme, host, path, urlencode(sorted(query)), "")), platform


def _tracking(param: str) -> bool:
    name = param.lower()
    return name.startswith("utm_") or name in TRACKING_PARAMS


def to_referral(
    submission: Submission, agency: str, now: datetime, via: str, referral_id: UUID | None = None
) -> ReferralSubmitted:
    """The referral.submitted data for a valid submission made by agency (the authenticated one)."""
    canonical_url, platform = canonical(submission.url)
    return ReferralSubmitted(
        referral_id=referral_id or uuid4(),
        agency=agency,
        url=submission.url,
        canonical_url=canonical_url,
        platform=platform,
        category=submission.category,
        priority=submission.priority,
        case_reference=submission.case_reference,
        idempotency_key=submission.idempotency_key,
        notes=submission.notes,
        evidence=submission.evidence,
        received_via=via,
        submitted_at=now,
    )


def record_key(raw: bytes) -> str:
    """Default idempotency key of a Kafka submission: the same bytes are the same submission."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()
