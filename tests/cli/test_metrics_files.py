"""The server's metrics directory: made fresh per start, named after the server,
and the ones left behind by servers that died (kill -9) removed at the next start."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from smartscheduler.observability import METRICS_PREFIX, MULTIPROC_DIR, metrics_files


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_servers_directory_is_removed_and_a_live_ones_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_DIR, "")
    temp = Path(tempfile.gettempdir())
    dead = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{dead_pid()}-"))
    (dead / "counter_1.db").write_bytes(b"x")
    live = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getppid()}-"))
    try:
        with metrics_files() as directory:
            made = Path(directory)
            assert made.parent == temp
            assert made.name.startswith(f"{METRICS_PREFIX}{os.getpid()}-")
            assert os.environ[MULTIPROC_DIR] == directory
            assert not dead.exists()
            assert live.exists()
        assert not made.exists()
    finally:
        live.rmdir()
