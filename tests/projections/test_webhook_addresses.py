"""Which addresses a production webhook may reach (`projections.webhooks.addresses`),
and the bound on resolving a URL's name at registration."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from projections.webhooks import addresses


@pytest.mark.parametrize("address", [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "::a9fe:a9fe",  # IPv4-compatible
    "::ffff:0:a9fe:a9fe",  # IPv4-translated
    "::ffff:169.254.169.254",  # IPv4-mapped
    "fec0::1",  # site-local
    "::1", "::", "fe80::1%eth0", "fc00::1", "ff02::1",
    "127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "224.0.0.1", "0.0.0.0",
])
def test_what_is_not_public(address: str) -> None:
    assert not addresses.is_public(address)


@pytest.mark.parametrize("address", [
    "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    "64:ff9b::5db8:d70e",  # NAT64 of 93.184.215.14 (what DNS64 answers)
    "2002:5db8:d70e::1",  # 6to4 of 93.184.215.14
])
def test_what_is_public(address: str) -> None:
    assert addresses.is_public(address)


@pytest.mark.parametrize("url", ["https://bücher.example/x", "https://example.com/café",
                                 "https://example.com/x?q=\u00e9"])
def test_a_url_must_be_ascii(url: str) -> None:
    with pytest.raises(addresses.Refused, match="ASCII"):
        addresses.parse(url, production=False)
    addresses.parse("https://xn--bcher-kva.example/caf%C3%A9", production=True)


def test_registration_waits_a_bounded_time_for_a_slow_name() -> None:
    release = threading.Event()

    def slow(host: str, port: int, **kwargs: Any) -> list[Any]:
        release.wait(10)
        return socket.getaddrinfo("127.0.0.1", port, **kwargs)

    started = time.monotonic()
    try:
        addresses.check("https://slow.example/x", production=True, resolver=slow,
                        timeout=0.2)  # not resolved yet: taken, each send checks
        assert time.monotonic() - started < 5
    finally:
        release.set()


def test_a_name_resolved_in_time_is_still_checked() -> None:
    def private(host: str, port: int, **kwargs: Any) -> list[Any]:
        return socket.getaddrinfo("127.0.0.1", port, **kwargs)

    with pytest.raises(addresses.Refused, match=r"127\.0\.0\.1"):
        addresses.check("https://inside.example/x", production=True, resolver=private)
