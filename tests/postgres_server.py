"""A private PostgreSQL cluster for the tests of one module: its own data
directory and port, stopped and started again at will.

Outage tests stop the event store under a running service, so they never use
the shared server (SMARTSCHEDULER_TEST_POSTGRES_URL): each module makes its own
cluster with `initdb`, runs it with `pg_ctl` on a free port of 127.0.0.1, and
stops and starts it by its data directory only. Durability is traded for speed
(fsync off): a cluster lives as long as its tests.

PostgreSQL refuses to run as root; as root, the binaries run as the `postgres`
user (`runuser`), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

STARTUP_TIMEOUT = 30
OWNER = "postgres"


def _binary(name: str) -> str | None:
    """On PATH, or in a Debian-style /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(Path(path).parts[-3].split(".")[0]))
    return candidates[-1] if candidates else None


INITDB = _binary("initdb")
PG_CTL = _binary("pg_ctl")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_owner() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", OWNER, "--"]


def missing() -> str | None:
    """Why a private cluster cannot be made here, or None."""
    if INITDB is None or PG_CTL is None:
        return "no initdb/pg_ctl on PATH or under /usr/lib/postgresql to start one with"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OWNER)
        except KeyError:
            return f"running as root and there is no {OWNER!r} user to run it as"
        if shutil.which("runuser") is None:
            return "running as root and there is no runuser to drop privileges with"
    return None


class PostgresServer:
    """A cluster in its own directory, listening on 127.0.0.1:<port> only."""

    def __init__(self, port: int | None = None) -> None:
        # Not under pytest's tmp_path: its parents are private to the user running
        # the tests, and the postgres user must reach the data directory. Short,
        # too: the Unix socket's path has a 107-byte limit.
        self.directory = Path(tempfile.mkdtemp(prefix="sspg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OWNER)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = port or free_port()
        self.initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def schema_url(self) -> str:
        """The cluster's URL with a schema of its own (created by the service)."""
        return f"{self.url}?schema=t_{uuid.uuid4().hex[:16]}"

    def _run(self, *args: str, timeout: float = STARTUP_TIMEOUT + 10
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_as_owner(), *args], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def init(self) -> PostgresServer:
        assert INITDB is not None
        done = self._run(INITDB, "-D", str(self.data), "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--no-sync", "--no-instructions")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}"
                               f"\n{done.stderr}")
        self.initialised = True
        return self

    def start(self) -> PostgresServer:
        """Start (or start again) and return once it accepts connections."""
        assert PG_CTL is not None
        if not self.initialised:
            self.init()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-k {self.directory} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        done = self._run(PG_CTL, "-D", str(self.data), "-l", str(self.log_path), "-w",
                         "-t", str(STARTUP_TIMEOUT), "-o", options, "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}):\n{done.stdout}"
                               f"\n{done.stderr}\n{self.log()}")
        with psycopg.connect(self.url, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop this cluster only (by its data directory). `fast` ends the sessions
        of connected clients; `immediate` is a crash, without a checkpoint."""
        assert PG_CTL is not None
        if not self.running():
            return
        done = self._run(PG_CTL, "-D", str(self.data), "-m", mode, "-w",
                         "-t", str(STARTUP_TIMEOUT), "stop")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed ({done.returncode}):\n{done.stdout}"
                               f"\n{done.stderr}")

    def running(self) -> bool:
        assert PG_CTL is not None
        if not self.initialised:
            return False
        return self._run(PG_CTL, "-D", str(self.data), "status").returncode == 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def remove(self) -> None:
        """Stop it (as a crash: nothing is kept) and delete its directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def require_postgres_binaries() -> None:
    """Skip (or fail, in CI) when no private cluster can be made here."""
    from tests.services import service_missing

    reason = missing()
    if reason is not None:
        service_missing("A private PostgreSQL cluster", reason)


def start_private_postgres() -> PostgresServer:
    """A private cluster, started; see `require_postgres_binaries`."""
    require_postgres_binaries()
    server = PostgresServer()
    try:
        return server.start()
    except BaseException:
        server.remove()
        raise
