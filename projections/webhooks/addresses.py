"""Which URLs a webhook may be sent to, and where it may connect.

Outside production any http or https URL goes. In production (so that an
endpoint can never be pointed at the service's own network) a URL must be
https, and its host must resolve to public addresses only: a loopback, private,
link-local, shared, reserved or multicast address is refused, and so is a name
that resolves to one. The check is made when the endpoint is registered (a
name that does not resolve then is let through: it names no address yet, and
a DNS hiccup must not refuse a good endpoint), and again at every send, where
a name that resolves to nothing fails the attempt: the sender resolves the name itself and
connects to an address it has just checked (`projections.webhooks.transport`),
so a name that changes what it resolves to after registration (DNS rebinding)
gets nothing sent to a private address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

MAX_URL = 2048


class Refused(Exception):
    """The URL, or the address its host resolves to, may not be sent to."""


class Unresolved(Refused):
    """The URL's host resolves to no address (now)."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse(url: str, *, production: bool) -> SplitResult:
    """The URL's parts; Refused when it is not one a webhook may be sent to."""
    if len(url) > MAX_URL or any(ch <= " " or ch == "\x7f" for ch in url):
        raise Refused(f"Must be at most {MAX_URL} characters, with no spaces or controls.")
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


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to; Refused when it resolves to none."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Unresolved(f"The host {host!r} does not resolve ({error}).") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise Unresolved(f"The host {host!r} does not resolve.")
    return addresses


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses of `host`, when all are public; else Refused."""
    addresses = resolve(host, port)
    private = [address for address in addresses if not is_public(address)]
    if private:
        raise Refused(f"The host {host!r} resolves to a loopback, private or reserved "
                      f"address ({', '.join(private)}).")
    return addresses


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def check(url: str, *, production: bool) -> None:
    """Refused unless a webhook may be sent to `url` (see the module docstring)."""
    parts = parse(url, production=production)
    if production:
        with contextlib.suppress(Unresolved):  # no address to refuse yet: each send checks
            public_addresses(parts.hostname or "", default_port(parts))
