"""Which URLs a webhook may be sent to, and where it may connect.

Outside production any http or https URL goes. In production (so that an
endpoint can never be pointed at the service's own network) a URL must be
https, and its host must resolve to public addresses only: a loopback, private,
link-local, shared, reserved or multicast address is refused, and so is a name
that resolves to one. An IPv6 address that carries an IPv4 one (IPv4-mapped,
-compatible or -translated, NAT64's 64:ff9b::/96, 6to4) is judged by the IPv4
address it carries; local-use NAT64 (64:ff9b:1::/48), Teredo and site-local
addresses are refused. A URL must be ASCII (an internationalised name in its
xn-- form, other characters percent-encoded): it is sent as it is written.
The check is made when the endpoint is registered (a name that does not
resolve then, or not within RESOLVE_TIMEOUT, is let through: it names no
address yet, and a DNS hiccup must not refuse a good endpoint; the names are
resolved in a small shared pool, so a slow resolver holds no request longer
than that), and again at every send, where
a name that resolves to nothing fails the attempt: the sender resolves the name itself and
connects to an address it has just checked (`projections.webhooks.transport`),
so a name that changes what it resolves to after registration (DNS rebinding)
gets nothing sent to a private address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Late
from typing import Any
from urllib.parse import SplitResult, urlsplit

MAX_URL = 2048

RESOLVE_TIMEOUT = 2.0
"""Seconds a registration waits for its URL's name to resolve."""

Resolver = Callable[..., Sequence[Any]]
"""`socket.getaddrinfo`, or anything called like it."""

_CARRY_IPV4 = tuple(ipaddress.IPv6Network(net) for net in (
    "::/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
"""IPv4-compatible, IPv4-translated and NAT64: the IPv4 address is the last 32 bits."""

_NEVER = tuple(ipaddress.IPv6Network(net) for net in (
    "64:ff9b:1::/48", "2001::/32", "fec0::/10"))
"""Local-use NAT64, Teredo, site-local."""

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-resolve")


class Refused(Exception):
    """The URL, or the address its host resolves to, may not be sent to."""


class Unresolved(Refused):
    """The URL's host resolves to no address (now)."""


def is_public(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _NEVER):
            return False
        ip = _carried(ip) or ip
    return ip.is_global and not ip.is_multicast


def _carried(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries, if it carries one."""
    if ip.ipv4_mapped is not None or ip.sixtofour is not None:
        return ip.ipv4_mapped or ip.sixtofour
    if any(ip in net for net in _CARRY_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse(url: str, *, production: bool) -> SplitResult:
    """The URL's parts; Refused when it is not one a webhook may be sent to."""
    if len(url) > MAX_URL or any(ch <= " " or ch == "\x7f" for ch in url):
        raise Refused(f"Must be at most {MAX_URL} characters, with no spaces or controls.")
    if not url.isascii():
        raise Refused("Must be ASCII: write an internationalised host name in its "
                      "xn-- form and percent-encode other characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise Refused(f"Not a URL ({error}).") from None
    allowed = ("https",) if production else ("http", "https")
    if parts.scheme not in allowed:
        raise Refused("Must be an https URL." if production else
                      "Must be an http or https URL.")
    if not parts.hostname:
        raise Refused("Must name a host.")
    if parts.username is not None or parts.password is not None:
        raise Refused("Must not carry credentials.")
    if port == 0:
        raise Refused("Must not name port 0.")
    return parts


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> list[str]:
    """The addresses `host` resolves to; Refused when it resolves to none."""
    try:
        found = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Unresolved(f"The host {host!r} does not resolve ({error}).") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise Unresolved(f"The host {host!r} does not resolve.")
    return addresses


def public_addresses(host: str, port: int, resolver: Resolver = socket.getaddrinfo
                     ) -> list[str]:
    """The addresses of `host`, when all are public; else Refused."""
    addresses = resolve(host, port, resolver)
    private = [address for address in addresses if not is_public(address)]
    if private:
        raise Refused(f"The host {host!r} resolves to a loopback, private or reserved "
                      f"address ({', '.join(private)}).")
    return addresses


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def check(url: str, *, production: bool, resolver: Resolver = socket.getaddrinfo,
          timeout: float = RESOLVE_TIMEOUT) -> None:
    """Refused unless a webhook may be sent to `url` (see the module docstring)."""
    parts = parse(url, production=production)
    if production:
        found = _pool.submit(public_addresses, parts.hostname or "", default_port(parts),
                             resolver)
        # No address (yet, or not within the timeout) is none to refuse: each send checks.
        with contextlib.suppress(Unresolved, Late):
            found.result(timeout=timeout)
