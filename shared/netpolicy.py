"""Which hosts an outbound fetch may reach: public addresses and public names only. No I/O.

Intake refuses a referral whose URL names a host that is plainly not public (an internal name,
or an IP literal in a loopback, private, link-local, ... range, however it is spelled), and the
guarded fetcher (shared/fetch.py) applies the same rules to the host and to every address the
host resolves to. Only the fetcher can see what a name resolves to: a public-looking name that
resolves to 127.0.0.1 passes intake and is refused when fetched.
"""

import ipaddress
import string
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Address = IPv4Address | IPv6Address

# Names that resolve to this machine or inside a private network, never to public content.
INTERNAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
INTERNAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".intranet", ".lan", ".home.arpa",
                     ".svc", ".cluster.local")
SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): not global, yet not is_private
NAT64 = IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052): the last 32 bits are IPv4
HEX = frozenset(string.hexdigits)


class NotPublic(ValueError):
    """A host or address that outbound fetches may not reach."""


def normalise(host: str) -> str:
    """host as compared: lower case, without IPv6 brackets or the root's trailing dot."""
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def parse_address(host: str) -> Address | None:
    """The IP address host spells, in any form a resolver accepts (127.1, 0x7f000001, 0177.0.0.1), or None."""
    host = normalise(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        value = _legacy_ipv4(host)
        return None if value is None else IPv4Address(value)


def _legacy_ipv4(host: str) -> int | None:
    # The BSD inet_aton forms that getaddrinfo and browsers accept too: one to four parts, each
    # decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes.
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_number(part) for part in parts]
    if any(n is None for n in numbers) or any(n > 255 for n in numbers[:-1]):
        return None
    if numbers[-1] >= 256 ** (5 - len(parts)):
        return None
    value = 0
    for n in numbers[:-1]:
        value = value * 256 + n
    return (value << 8 * (5 - len(parts))) + numbers[-1]


def _number(part: str) -> int | None:
    if part[:2] == "0x":
        digits = part[2:]
        return int(digits or "0", 16) if set(digits) <= HEX else None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if part.isascii() and set(part) <= set("01234567") else None
    return int(part) if part.isascii() and part.isdigit() else None


def address_refusal(address: Address) -> str | None:
    """What kind of non-public address this is (e.g. "loopback"), or None if it is public."""
    if isinstance(address, IPv6Address):
        if address.scope_id:  # fe80::1%eth0: only means something on this machine's own links
            return "scoped to a local interface"
        if address.teredo:
            return "a Teredo tunnel"
        inner = _embedded_ipv4(address)
        if inner is not None:  # judged by the IPv4 address it carries
            kind = address_refusal(inner)
            return f"{kind} (it carries IPv4 {inner})" if kind else None
    if address in SHARED:
        return "shared (carrier-grade NAT)"
    kinds = [("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
             ("link-local", address.is_link_local), ("multicast", address.is_multicast),
             ("private", address.is_private), ("reserved", address.is_reserved),
             ("site-local", isinstance(address, IPv6Address) and address.is_site_local)]
    for kind, applies in kinds:
        if applies:
            return kind
    return None if address.is_global else "not globally routable"


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1
        return address.ipv4_mapped
    if address in NAT64:  # 64:ff9b::7f00:1
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour  # 2002:7f00:1:: carries 127.0.0.1; None outside 2002::/16


def name_refusal(host: str) -> str | None:
    """Why host, as a name, can only be internal (e.g. "an internal name"), or None if it may be public."""
    name = normalise(host)
    if "%" in name:  # a resolver or browser may decode it into something else entirely
        return "percent-encoded"
    if name in INTERNAL_NAMES or name.endswith(INTERNAL_SUFFIXES):
        return "an internal name"
    if "." not in name:  # a single label is completed from the resolver's search list: inside
        return "not a fully qualified name"
    return None


def check_host(host: str) -> None:
    """Raise NotPublic unless host is a public IP address or a name that may be public."""
    address = parse_address(host)
    if address is not None:
        kind = address_refusal(address)
        if kind:
            raise NotPublic(f"URL host {normalise(host)} is not a public address: {address} is {kind}")
        return
    reason = name_refusal(host)
    if reason:
        raise NotPublic(f"URL host {normalise(host)} is not a public address: it is {reason}")


def check_address(host: str, address: str) -> None:
    """Raise NotPublic unless address, which host resolved to, is public."""
    kind = address_refusal(ipaddress.ip_address(address))
    if kind:
        raise NotPublic(f"URL host {normalise(host)} is not a public address: it resolves to {address}, "
                        f"which is {kind}")


def allow_entry(entry: str) -> tuple[str, int]:
    """A host:port allow-list entry ("127.0.0.1:8090", "sandbox:8090", "[::1]:8090") as (host, port)."""
    host, _, port = entry.strip().rpartition(":")
    bare_ipv6 = ":" in host and not host.startswith("[")  # "::1:8090": where does the port start?
    if not normalise(host) or bare_ipv6 or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} is not host:port (e.g. 127.0.0.1:8090, sandbox:8090 or [::1]:8090)")
    return normalise(host), int(port)
