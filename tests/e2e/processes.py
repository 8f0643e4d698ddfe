"""The processes of a server under test, read from /proc; stopping one."""

from __future__ import annotations

import signal
import subprocess

import pytest

from smartscheduler.launch import children

__all__ = ["children", "sigterm"]


def sigterm(process: subprocess.Popen[bytes], within: float) -> int:
    """SIGTERM, then the exit code; fails when the process outlives `within` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {within}s after SIGTERM")
