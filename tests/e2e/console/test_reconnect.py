"""The board across a server restart: the page says it lost the live connection,
and once the service is back it resumes the stream with Last-Event-ID, so an
event committed while it was away arrives through the stream (its notice), not
only through a reload."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.console.support import Console, chromium_or_skip, create_job, region
from tests.e2e.servers import Server, start_server, stop

pytestmark = pytest.mark.slow

# What Chromium logs while the service is down: each failed attempt to reach it.
OUTAGE = re.compile(r"Failed to load resource: net::ERR_(CONNECTION_REFUSED|FAILED|"
                    r"EMPTY_RESPONSE|CONNECTION_RESET|INCOMPLETE_CHUNKED_ENCODING)\b")
BACK_WITHIN_MS = 30_000  # the console's back-off reaches 10 s between attempts


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[list[Server]]:
    """The servers a test starts, on one SQLite database; every one is stopped."""
    chromium_or_skip()
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.close_clients()
            stop(server.process)


def _serve(tmp_path: Path, started: list[Server], port: int | None = None) -> Server:
    server = start_server(f"sqlite:///{tmp_path}/restart.db", tmp_path,
                          name=f"restart-{len(started)}", port=port,
                          args=["--workers", "1", "--threads", "8"])
    started.append(server)
    return server


def test_the_board_resumes_the_stream_after_a_restart(
        browser: Any, tmp_path: Path, restartable: list[Server]) -> None:
    first = _serve(tmp_path, restartable)
    context = browser.new_context(base_url=first.base_url,
                                  viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    watched = Console(context, first)
    streams: list[dict[str, str]] = []
    try:
        page = watched.page()
        page.on("request", lambda request: streams.append(request.headers)
                if request.url.endswith("/api/events") else None)
        page.goto("/")
        page.get_by_label("Role").select_option("Dispatcher")
        page.get_by_role("button", name="Sign in").click()
        live = page.locator("#live")
        expect(live).to_have_attribute("data-state", "live")
        expect(live).to_have_text("Live")

        mine = region()
        page.get_by_label("Region").fill(mine)
        job = create_job(first, region=mine, type="Attic insulation")
        row = page.get_by_role("table", name="Jobs").locator("tbody tr").filter(
            has_text="Attic insulation")
        expect(row).to_contain_text("Created")  # it came live: the page has a position

        page.evaluate("window.beforeTheRestart = true")  # gone if the page reloads
        stop(first.process)  # SIGTERM: gunicorn's graceful stop ends the stream
        expect(live).to_have_attribute("data-state", "reconnecting")
        expect(live).to_contain_text("Reconnecting")

        # Until the cancel is stored, the page cannot reach the new server's stream
        # (as if it were still down): what it gets next can only be a replay.
        page.route("**/api/events", lambda route: route.abort("connectionrefused"))
        second = _serve(tmp_path, restartable, port=first.port)
        cancelled = second.client().post(f"/api/jobs/{job['id']}/cancel", {
            "reasonCode": "Weather", "reason": "Storm warning for the whole region"})
        assert cancelled.status == 200, cancelled.body
        page.unroute("**/api/events")

        expect(live).to_have_attribute("data-state", "live", timeout=BACK_WITHIN_MS)
        expect(live).to_have_text("Live")
        notice = page.get_by_role("status")
        expect(notice).to_contain_text("Attic insulation")
        expect(notice).to_contain_text("Storm warning for the whole region")
        expect(row).to_contain_text("Cancelled")
        # The stream was resumed where it had stopped: Last-Event-ID on reconnect.
        assert "last-event-id" not in streams[0]
        resumed = [headers["last-event-id"] for headers in streams[1:]
                   if "last-event-id" in headers]
        assert resumed and all(value.isdigit() for value in resumed), streams
        assert page.evaluate("window.beforeTheRestart === true"), "the page was reloaded"

        unexpected = [error for error in watched.errors if not OUTAGE.search(error)]
        assert unexpected == [] and watched.problems == []
    finally:
        context.close()
