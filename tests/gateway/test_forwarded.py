"""X-Forwarded-For from trusted proxies only: who the client is (sans-I/O)."""

from __future__ import annotations

import pytest

from ghapplets.gateway.forwarded import MAX_HOPS, TrustedProxies, parse_address

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"])


@pytest.mark.parametrize(
    ("peer", "xff", "client"),
    [
        # no header, or an untrusted peer: the peer
        ("10.0.0.1", None, "10.0.0.1"),
        ("203.0.113.5", "10.1.1.1", "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1, 10.1.1.1", "203.0.113.5"),
        # a trusted peer: the right-most entry that is not a trusted proxy
        ("10.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", "10.9.9.9, 198.51.100.1", "198.51.100.1"),  # spoofed left-most
        ("10.0.0.1", "198.51.100.1, 10.2.2.2, 192.0.2.1", "198.51.100.1"),
        ("10.0.0.1", "198.51.100.9,198.51.100.1 , 10.2.2.2", "198.51.100.1"),
        # every entry a trusted proxy: the left-most
        ("10.0.0.1", "10.3.3.3, 10.2.2.2", "10.3.3.3"),
        # IPv6, ports and brackets as proxies write them
        ("2001:db8:ffff::1", "2001:db8::5", "2001:db8::5"),
        ("2001:db8:ffff::1", "[2001:db8::5]:443, 2001:db8:ffff::2", "2001:db8::5"),
        ("2001:db8:ffff::1", "198.51.100.1:5000", "198.51.100.1"),
        ("::ffff:10.0.0.1", "::ffff:198.51.100.1", "198.51.100.1"),  # IPv4-mapped
        ("2001:db9::1", "2001:db8::5", "2001:db9::1"),  # untrusted IPv6 peer
        # garbage written by a trusted proxy: unknown
        ("10.0.0.1", "198.51.100.1, bogus", None),
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", " , ", None),
    ],
)
def test_client_address(peer: str, xff: str | None, client: str | None) -> None:
    assert PROXIES.client(peer, xff) == client


def test_no_trusted_proxies_means_the_header_is_never_read() -> None:
    none = TrustedProxies([])
    assert not none
    assert none.client("10.0.0.1", "198.51.100.1") == "10.0.0.1"
    assert none.client(None, "198.51.100.1") is None


def test_a_very_long_header_is_walked_a_bounded_distance() -> None:
    chain = ", ".join(["10.0.0.1"] * (MAX_HOPS * 100))
    assert PROXIES.client("10.0.0.1", "198.51.100.1, " + chain) is None
    assert PROXIES.client("10.0.0.1", chain + ", 198.51.100.1") == "198.51.100.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4:80 ", "1.2.3.4"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[2001:db8::1]:443]", "2001:db8::1"),  # what the first brackets hold
        ("::1", "::1"),
        ("[::1", None),
        ("unknown", None),
        ("1.2.3.4:80:90", None),
        ("", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


def test_a_network_written_with_host_bits_is_its_network() -> None:
    proxies = TrustedProxies(["10.1.2.3/8", "2001:db8::1/32"])
    assert proxies.client("10.200.0.1", "198.51.100.7") == "198.51.100.7"
    assert proxies.client("2001:db8:ffff::9", "198.51.100.8") == "198.51.100.8"
