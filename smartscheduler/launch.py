"""Start a program in its own process group, wait until it is ready, stop it.

The one launcher of the benchmarks (`bench/`) and the end-to-end tests
(`tests/e2e/servers.py`): `serve` starts `python -m smartscheduler serve` on a
free port and returns once /healthz answers; `launch` starts any command (a
worker, a relay, redis-server, a plain gunicorn app) and waits for the given
`ready` check. Output goes to a log file; a process that exits or is not ready
in time is stopped and raises `NotReady` with that log. `stop` sends SIGTERM
(gunicorn's graceful stop) and, past its deadline, SIGKILL to the whole group.
No layer imports this module.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class NotReady(RuntimeError):
    """The process exited, or was not ready in time; the message holds its log."""


@dataclass
class Launched:
    """A started process, the port it was told to listen on (0: none) and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        stop(self.process, timeout)


Ready = Callable[[Launched], bool]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def smartscheduler(*args: str) -> list[str]:
    """The command line of `python -m smartscheduler <args>` in this interpreter."""
    return [sys.executable, "-m", "smartscheduler", *args]


def service_env(database_url: str, jwt_secret: str,
                settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without its SMARTSCHEDULER_* variables, then the store, the
    secret and `settings` (full names): Redis is off unless `settings` names one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTSCHEDULER_")}
    env.update({"SMARTSCHEDULER_DATABASE_URL": database_url,
                "SMARTSCHEDULER_JWT_SECRET": jwt_secret, **(settings or {})})
    return env


def answers(path: str = "/healthz") -> Ready:
    """Ready once GET `path` on the process's port answers 200."""

    def check(launched: Launched) -> bool:
        connection = http.client.HTTPConnection(HOST, launched.port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    return check


def logged(text: str) -> Ready:
    """Ready once `text` is in the process's log."""
    return lambda launched: text in launched.log()


def launch(args: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
           cwd: Path | None = None, port: int = 0, ready: Ready | None = None,
           timeout: float = STARTUP_TIMEOUT) -> Launched:
    """Start `args` in a new session (its own process group), stdout and stderr to
    `log_path`; return once `ready` holds (at once without one)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(args), cwd=cwd, env={**(os.environ if env is None else env),
                                      "PYTHONUNBUFFERED": "1"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    launched = Launched(log_path.stem, process, log_path, port)
    deadline = time.monotonic() + timeout
    while ready is not None and not ready(launched):
        code = process.poll()
        if code is not None or time.monotonic() > deadline:
            stop(process)
            why = f"exit code {code}" if code is not None else f"not ready in {timeout:g}s"
            raise NotReady(f"{launched.name} ({' '.join(args)}) did not start ({why}); "
                           f"its log:\n{launched.log()}")
        time.sleep(0.05)
    return launched


def serve(database_url: str, jwt_secret: str, log_path: Path, *,
          settings: Mapping[str, str] | None = None, args: Sequence[str] = (),
          cwd: Path | None = None, timeout: float = STARTUP_TIMEOUT) -> Launched:
    """`python -m smartscheduler serve` on a free port, once /healthz answers.

    `settings` adds SMARTSCHEDULER_* variables (see `service_env`); `args` are
    more options of `serve` (`--workers 1`).
    """
    port = free_port()
    return launch(smartscheduler("serve", "--host", HOST, "--port", str(port), *args),
                  log_path, env=service_env(database_url, jwt_secret, settings), cwd=cwd,
                  port=port, ready=answers("/healthz"), timeout=timeout)


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then after `timeout` seconds SIGKILL to the process's whole group
    (the session `launch` started: a master and its workers)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is `pid`, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found
