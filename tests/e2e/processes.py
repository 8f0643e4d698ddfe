"""The processes of a server under test, read from /proc; stopping one."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest


def children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is `pid`: a server's workers, and
    on SQLite its followers process."""
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


def sigterm(process: subprocess.Popen[bytes], within: float) -> int:
    """SIGTERM, then the exit code; fails when the process outlives `within` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {within}s after SIGTERM")
