"""What `serving` measures beside the wrk runs: event streams held open while
commands run, /healthz beside half-open connections, how soon a left stream's
slot is free again, the group commit's events per append (from the workers'
logs), and the resident memory of the server's processes.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smartscheduler.launch import HOST, children


def rss_mib(root: int) -> float:
    """The resident memory of a process and its descendants."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending.extend(children(pid))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@contextmanager
def open_streams(port: int, token: str, count: int) -> Iterator[None]:
    """`count` event streams held open and read, as dispatcher screens would."""
    if not count:
        yield
        return
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
                      ).encode())
        sockets.append(sock)
    stop = threading.Event()

    def drain() -> None:
        selector = selectors.DefaultSelector()
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in selector.select(0.2):
                try:
                    key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    selector.unregister(key.fileobj)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        time.sleep(1)
        yield
    finally:
        stop.set()
        reader.join(5)
        for sock in sockets:
            sock.close()


def healthz_beside_half_open(port: int, count: int) -> tuple[float, float]:
    """/healthz latency (slowest and median of 20, ms) while `count` connections
    hold a request head they never finish."""
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            held.append(sock)
        time.sleep(0.5)
        times = []
        for _ in range(20):
            began = time.perf_counter()
            connection = http.client.HTTPConnection(HOST, port, timeout=10)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            times.append((time.perf_counter() - began) * 1000)
        return max(times), statistics.median(times)
    finally:
        for sock in held:
            sock.close()


def slot_freed_after(port: int, token: str) -> float:
    """Seconds from a stream's client leaving to its (only) slot taking a new stream."""
    def attempt() -> tuple[socket.socket, bytes]:
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        return sock, sock.recv(200)

    first, head = attempt()
    if b" 200 " not in head:
        raise RuntimeError(f"no stream: {head!r}")
    first.close()
    began = time.monotonic()
    while time.monotonic() - began < 30:
        sock, head = attempt()
        sock.close()
        if b" 200 " in head:
            return time.monotonic() - began
        time.sleep(0.02)
    return float("inf")


def events_per_append(log: Path) -> str | None:
    """The workers' own count, logged as they stop ("... N events in M appends")."""
    events = appends = 0
    for line in log.read_text(errors="replace").splitlines():
        if "events in" in line and "appends" in line:
            words = line.split()
            try:
                at = words.index("events")
                events += int(words[at - 1].replace(",", ""))
                appends += int(words[at + 2].replace(",", ""))
            except (ValueError, IndexError):
                continue
    return f"{events / appends:.2f}" if appends else None
