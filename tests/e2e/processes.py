"""The processes of a server under test, read from /proc; stopping one."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smartscheduler.launch import children

if TYPE_CHECKING:
    from tests.e2e.servers import Server

__all__ = ["children", "comm", "followers_pid", "running", "sigterm", "worker_pids"]


def sigterm(process: subprocess.Popen[bytes], within: float) -> int:
    """SIGTERM, then the exit code; fails when the process outlives `within` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {within}s after SIGTERM")


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def followers_pid(server: Server) -> int | None:
    found = [pid for pid in children(server.process.pid) if comm(pid) == "followers"]
    assert len(found) <= 1, f"more than one followers process: {found}"
    return found[0] if found else None


def worker_pids(server: Server) -> set[int]:
    return {pid for pid in children(server.process.pid) if comm(pid) != "followers"}
