"""The client's address behind reverse proxies (docs/configuration.md#behind-a-reverse-proxy).

Behind nginx every request comes from the proxy's address. A proxy adds the address it got
the request from to `X-Forwarded-For`; a client can send that header too, with any address
in it. So the header is read only when the peer is a trusted proxy
(`PASSGATE_FORWARDED_ALLOW_IPS`), and from the right: each trusted proxy appended the address
it was connected from, and the first address from the right that is not a trusted proxy is
the client. What stands left of it was written by the client (or by proxies we do not know)
and is ignored, so a client cannot pick its own address.

This is the one place Passgate works out a client's address (the Client API's rate limits,
the console's sessions and audit log); `request.client` stays the TCP peer. The `ipAddress` a
backend passes to track is the backend's word and is stored as given."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """Addresses and networks (`10.0.0.0/8`, `::1`) whose `X-Forwarded-For` is believed;
    `*` trusts every peer (only when nothing but the proxy can reach Passgate)."""

    def __init__(self, networks: Iterable[IpNetwork], *, everyone: bool = False) -> None:
        self.networks = tuple(networks)
        self.everyone = everyone

    @classmethod
    def parse(cls, value: str) -> TrustedProxies:
        """A comma-separated list; ValueError names an entry that is neither an address, a
        network nor `*`."""
        networks: list[IpNetwork] = []
        everyone = False
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            if item == "*":
                everyone = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (such as 10.0.0.0/8), or *"
                ) from None
        return cls(networks, everyone=everyone)

    def trusts(self, address: IpAddress) -> bool:
        if self.everyone:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=8)
def trusted_proxies(value: str) -> TrustedProxies:
    return TrustedProxies.parse(value)


def _address(entry: str) -> IpAddress | None:
    """An `X-Forwarded-For` entry's address: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`
    or `[2001:db8::1]:4711`; None for anything else (`unknown`, obfuscated names)."""
    entry = entry.strip()
    if entry.startswith("["):
        entry = entry[1 : entry.find("]")] if "]" in entry else ""
    elif entry.count(":") == 1:
        entry = entry.split(":", 1)[0]
    try:
        return ipaddress.ip_address(entry)
    except ValueError:
        return None


def resolve(peer: str | None, forwarded_for: Iterable[str], trusted: TrustedProxies) -> str | None:
    """The client's address: the peer itself unless it is a trusted proxy; else, walking
    `X-Forwarded-For` from the right past trusted proxies, the first address that is not
    one. An entry that is not an address ends the walk at the last proxy passed (a trusted
    proxy writes addresses; garbage came from further left). When every entry is a trusted
    proxy, the left-most one."""
    client = _address(peer) if peer else None
    # No peer address: a Unix socket, which only a proxy on this host reaches (trusted with *).
    if not (trusted.trusts(client) if client is not None else peer is None and trusted.everyone):
        return peer
    entries = [entry for value in forwarded_for for entry in value.split(",") if entry.strip()]
    for entry in reversed(entries):
        address = _address(entry)
        if address is None:
            break
        client = address
        if not trusted.trusts(address):
            break
    if client is None:
        return peer
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        return str(client.ipv4_mapped)
    return str(client)


def client_ip(connection: HTTPConnection) -> str | None:
    """The request's client address (see the module docstring); None when the server gives
    no peer address (a Unix socket with no proxy header)."""
    peer = connection.client.host if connection.client else None
    value: str = connection.app.state.settings.forwarded_allow_ips
    headers = connection.headers.getlist("x-forwarded-for")
    if not headers:
        return peer
    return resolve(peer, headers, trusted_proxies(value))
