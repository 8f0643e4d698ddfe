"""Fixtures of the console's browser tests: Debian's Chromium driven by
pytest-playwright, against a real server process (`tests.e2e.servers`).

Without /usr/bin/chromium the browser tests skip with the reason, unless
SMARTSCHEDULER_REQUIRE_SERVICES=1 (as in CI, whose .ci/run installs it).
Every page a test opens is watched: a console error or an uncaught exception
fails the test at teardown, and so does a 4xx answer to the page (Chromium
logs each as a console error) unless the test declares it with
`@pytest.mark.console_problems(412, ...)`, which it must then provoke: a
normal flow (signing in, the board, a job, a past version, a contractor's
home, the dialogs) causes none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.console.support import CHROMIUM, Console, chromium_or_skip
from tests.e2e.servers import Server, start_server, stop


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "console_problems(*statuses): the 4xx answers a browser test provokes "
                   "on purpose (each must occur; any other fails the test)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright launches Debian's Chromium: Playwright's own download
    cannot be reached from here."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server (SQLite, development sign-in) for a module's tests; each
    test makes its own jobs, in a region of its own where it counts rows."""
    chromium_or_skip()
    workdir = tmp_path_factory.mktemp("console")
    server = start_server(f"sqlite:///{workdir}/console.db", workdir, name="console",
                          args=["--workers", "1", "--threads", "8"])
    try:
        yield server
    finally:
        server.close_clients()
        stop(server.process)


@pytest.fixture
def console(browser: Any, console_server: Server, request: pytest.FixtureRequest
            ) -> Iterator[Callable[..., Console]]:
    """Opens browser contexts on the console (`console()` or
    `console(viewport=...)`); each page's console errors fail the test."""
    request.node.server_log = console_server.log
    opened: list[Console] = []

    def open_context(**options: Any) -> Console:
        context = browser.new_context(base_url=console_server.base_url,
                                      viewport=options.pop("viewport",
                                                           {"width": 1280, "height": 800}),
                                      **options)
        context.set_default_timeout(10_000)
        watched = Console(context, console_server)
        opened.append(watched)
        return watched

    yield open_context
    errors = [error for watched in opened for error in watched.errors]
    statuses = [status for watched in opened for status in watched.problem_statuses()]
    for watched in opened:
        watched.context.close()
    assert not errors, f"console errors: {errors}"
    marker = request.node.get_closest_marker("console_problems")
    declared = set(marker.args) if marker else set()
    undeclared = [status for status in statuses if status not in declared]
    assert not undeclared, f"4xx answers in a normal flow: {undeclared}"
    assert declared <= set(statuses), f"declared, never seen: {declared - set(statuses)}"

