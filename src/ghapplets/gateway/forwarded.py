"""The client's address behind reverse proxies: ``X-Forwarded-For`` from trusted proxies only
(sans-I/O).

``X-Forwarded-For`` is a list that every proxy on the way appends its own peer to, so only the
entries added by proxies we trust are facts; everything to their left was written by whoever
sent the request and can be anything. :class:`TrustedProxies` therefore

- ignores the header unless the TCP peer is inside a trusted network (a client talking to the
  gateway directly cannot claim another address);
- walks the list from the right, skipping the addresses of trusted proxies, and takes the first
  one that is not a trusted proxy: the address the outermost trusted proxy saw;
- takes the left-most entry when every entry is a trusted proxy (a request from inside);
- answers ``None`` (unknown) when that entry is not an IP address, so an allow-list denies it.

IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``, as a dual-stack socket reports IPv4 peers)
count as their IPv4 address, both as the peer and in the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# a longer X-Forwarded-For is walked this far from the right (the header size is bounded anyway)
MAX_HOPS = 64


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (``1.2.3.4``, ``2001:db8::1``, ``[2001:db8::1]:443``,
    ``1.2.3.4:5678``), IPv4-mapped IPv6 unwrapped; ``None`` when it is not one."""
    value = text.strip()
    if value.startswith("["):  # [v6] or [v6]:port
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in cidrs
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address, given the TCP ``peer`` and the ``X-Forwarded-For`` value
        (several headers joined with commas)."""
        if not self.networks or not forwarded_for or peer is None:
            return peer
        peer_address = parse_address(peer)
        if peer_address is None or not self.trusts(peer_address):
            return peer  # a direct client: its header is its own claim
        hops = forwarded_for.rsplit(",", MAX_HOPS)
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return None  # garbage a trusted proxy passed on: the client is unknown
            if not self.trusts(address):
                return str(address)
        return str(parse_address(hops[0]))  # every hop a trusted proxy: the first is the client
