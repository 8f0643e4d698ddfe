"""A private `redis-server` for one test: its own port and directory, and killable.

The relay writes to the fixed stream `smartscheduler:events`, so the tests never
use a developer's Redis: each starts its own server, durable (append-only file,
fsync on every write) so that it can be killed with SIGKILL and started again
on the same port and directory with everything it acknowledged.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server")
STARTUP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """`redis-server` on 127.0.0.1:<port>, keeping its data in `directory`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10,
                           socket_connect_timeout=5)

    def start(self) -> RedisServer:
        """Start (or start again) and return once it answers PING."""
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.directory), "--appendonly", "yes",
                 "--appendfsync", "always", "--save", "", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:"
                                   f"\n{self.log()}")
            try:
                with self.client() as client:
                    client.ping()
                return self
            except redis.RedisError:  # not listening yet, or still loading its AOF
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"redis-server did not answer:\n{self.log()}"
                                       ) from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; only what was fsynced survives."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reap()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _reap(self) -> None:
        if self.process is not None:
            self.process.wait(timeout=10)


def require_redis_server() -> None:
    """Skip (or fail, in CI) when there is no redis-server binary to start."""
    from tests.services import service_missing

    if REDIS_SERVER is None:
        service_missing("redis-server", "no redis-server binary on PATH to start a "
                        "private Redis with")


def start_private_redis(directory: Path) -> RedisServer:
    """A private server, started; see `require_redis_server`."""
    require_redis_server()
    return RedisServer(directory).start()
