"""The real server: `smartscheduler serve` (gunicorn) in its own process.

`server` starts it on a free port against a fresh database on each backend (the
root conftest's `database_url`), waits for /healthz, hands the test a `Server`
and terminates the process afterwards: SIGTERM, then SIGKILL if it lingers.
When a test fails, the server's log is attached to the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Server, start_server, stop


@pytest.fixture
def server(database_url: str, tmp_path: Path, request: pytest.FixtureRequest
           ) -> Iterator[Server]:
    """The real server over a fresh database (each backend), until the test ends."""
    running = start_server(database_url, tmp_path)
    request.node.server_log = running.log
    try:
        yield running
    finally:
        running.close_clients()
        stop(running.process)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    report = yield
    log = getattr(item, "server_log", None)
    if log is not None and report.failed:  # its end: where the failure is
        report.sections.append(("server log", log()[-20_000:]))
    return report
