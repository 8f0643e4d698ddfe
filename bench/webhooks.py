"""`webhooks`: from sending a cancel to a webhook receiver answering 200 to its
JobCancelled delivery.

Real processes over real sockets: one `smartscheduler serve` on a fresh SQLite
file (as `make run` starts it: the webhooks' follower and sender run in its
followers process) and receivers in this process. (a) one healthy endpoint;
(b) the same, beside a second endpoint that never answers (every send to it
times out after 15 s). Each scenario creates its jobs first, then sends WARMUP
+ CANCELS cancels one at a time, each after the previous delivery arrived.
Latency: `perf_counter()` before the cancel is sent to the moment the healthy
receiver has read the delivery's body. The baseline column is the cancel's own
HTTP round trip. Targets, on p99: 100 ms; (b) at most 20 ms above (a).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from application.settings import Settings
from bench.context import Context
from bench.realtime import Latencies, cancel_latencies, latency_rows
from bench.registry import Row, percentile, register
from bench.services import SECRET, call, connect, serve
from smartscheduler.launch import HOST
from web.auth import mint_token

CANCELS = 150
WARMUP = 20
LIMIT_MS = 100.0
ADDED_MS = 20.0


class Receiver:
    """Answers 200 and notes when each job's JobCancelled arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                envelope = json.loads(body)
                if envelope["type"] == "JobCancelled":
                    with receiver.changed:
                        receiver.arrived[envelope["subject"]] = now
                        receiver.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, job_id: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while job_id not in self.arrived:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"The delivery for {job_id} never arrived")
                self.changed.wait(0.5)
            return self.arrived[job_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts connections and never answers: every send to it times out."""

    def __init__(self) -> None:
        self.socket = socket.create_server((HOST, 0), backlog=1024)
        self.url = f"http://{HOST}:{self.socket.getsockname()[1]}/hook"
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                self.held.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self.socket.close()
        for held in self.held:
            held.close()


def measure(port: int, receiver: Receiver, count: int) -> Latencies:
    return cancel_latencies(port, receiver.wait, count)


def scenario(ctx: Context, name: str, with_silent: bool) -> Latencies:
    workdir = ctx.workdir / f"webhooks-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    admin = mint_token(Settings(jwt_secret=SECRET), roles=["Admin"], sub="bench-admin")
    with ExitStack() as stack:
        receiver = Receiver()
        stack.callback(receiver.close)
        port = serve(stack, workdir, "server", f"sqlite:///{workdir / 'wh.db'}").port
        urls = [receiver.url]
        if with_silent:
            silent = Silent()
            stack.callback(silent.close)
            urls.append(silent.url)
        api = connect(port)
        for url in urls:
            status, body = call(api, "POST", "/api/webhooks", {"url": url}, admin)
            assert status == 201, body
        api.close()
        return measure(port, receiver, WARMUP + CANCELS)


def rows(label: str, latencies: Latencies, at_most_ms: float, note: str) -> list[Row]:
    return latency_rows("webhooks", label, latencies, at_most_ms, note, WARMUP)


@register("webhooks", "cancel sent -> a webhook receiver's 200 (p50, p99), beside a dead "
                      "endpoint")
def webhooks(ctx: Context) -> list[Row]:
    ctx.say(f"webhooks: {WARMUP} warm-up + {CANCELS} cancels per scenario, one at a time")
    healthy = scenario(ctx, "healthy", with_silent=False)
    found = rows("one healthy endpoint", healthy, LIMIT_MS,
                 f"embedded server, SQLite; {CANCELS} cancels; baseline: the cancel's "
                 "HTTP round trip")
    beside = scenario(ctx, "beside-silent", with_silent=True)
    alone_p99_ms = percentile(healthy.delivered[WARMUP:], 0.99) * 1000
    found += rows("beside one that times out", beside, alone_p99_ms + ADDED_MS,
                  f"target: the healthy-only p99 + {ADDED_MS:g} ms")
    for row in found:
        ctx.say(f"  {row.name}: {row.ours / 1000:.1f} ms (cancel round trip "
                f"{row.baseline / 1000:.1f} ms)")
    return found
