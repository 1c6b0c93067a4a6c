"""The outbound host policy: how addresses are read and judged, what resolved addresses pass, allow-list entries."""

from ipaddress import ip_address

import pytest

from shared.netpolicy import NotPublic, address_refusal, allow_entry, check_address, check_host, parse_address


@pytest.mark.parametrize("spelling", ["127.0.0.1", "2130706433", "0x7f000001", "0X7F000001", "0177.0.0.1",
                                      "0177.0.0.01", "127.1", "127.0.1", "0x7f.1", "[127.0.0.1]", "127.0.0.1."])
def test_every_spelling_a_resolver_accepts_reads_as_the_same_address(spelling):
    assert parse_address(spelling) == ip_address("127.0.0.1")


@pytest.mark.parametrize("name", ["example.org", "1.2.3.4.5", "08.1.1.1", "0x1g", "1..1", "256.1.1.1.1", "",
                                  "4294967296", "١٢٧.0.0.1"])
def test_what_is_not_an_address_is_a_name(name):
    assert parse_address(name) is None


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared (carrier-grade NAT)"), ("224.0.0.251", "multicast"), ("239.255.255.250", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("fc00::1", "private"), ("fec0::1", "site-local"),
    ("::ffff:10.0.0.1", "private (it carries IPv4 10.0.0.1)"), ("fe80::1%eth0", "scoped to a local interface"),
])
def test_a_non_public_address_is_named_by_its_kind(address, kind):
    assert address_refusal(ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808", "2002:808:808::"])
def test_a_public_address_passes_however_it_is_carried(address):
    assert address_refusal(ip_address(address)) is None


def test_a_public_name_passes_and_an_address_it_resolves_to_is_judged_on_its_own():
    check_host("content.example")
    check_address("content.example", "93.184.215.14")
    with pytest.raises(NotPublic, match="content.example is not a public address: it resolves to 10.0.0.7, "
                                        "which is private"):
        check_address("content.example", "10.0.0.7")


@pytest.mark.parametrize("entry, parsed", [("127.0.0.1:8090", ("127.0.0.1", 8090)), ("Sandbox.:8090", ("sandbox", 8090)),
                                           ("[::1]:8090", ("::1", 8090)), (" localhost:80 ", ("localhost", 80))])
def test_an_allow_list_entry_is_a_host_and_a_port(entry, parsed):
    assert allow_entry(entry) == parsed


@pytest.mark.parametrize("entry", ["127.0.0.1", "::1:8090", ":8090", "sandbox:", "sandbox:0", "sandbox:65536",
                                   "sandbox:http"])
def test_an_allow_list_entry_without_exactly_one_host_and_port_is_refused(entry):
    with pytest.raises(ValueError, match="is not host:port"):
        allow_entry(entry)
