"""Helpers of the console's browser tests: the browser, a watched context,
sign-in, axe-core, screenshots, and jobs made through the API."""

from __future__ import annotations

import re
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Server
from tests.services import REQUIRE_SERVICES
from tests.web.support import job_body

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
SERIOUS = {"serious", "critical"}
HANDLED = re.compile(r"Failed to load resource: the server responded with a status of (4\d\d) ")


def chromium_or_skip() -> None:
    if Path(CHROMIUM).exists():
        return
    message = (f"{CHROMIUM} is missing (apt-get install chromium): the console's browser "
               "tests need Debian's Chromium")
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; SMARTSCHEDULER_REQUIRE_SERVICES is set")
    pytest.skip(message)


@dataclass
class Console:
    """A browser context on the console; every page's console errors and
    uncaught exceptions are collected in `errors`."""

    context: Any
    server: Server
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def page(self) -> Any:
        page = self.context.new_page()
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        return page

    def problem_statuses(self) -> list[int]:
        """The status of each 4xx answer the pages got, in order."""
        return [int(found.group(1)) for text in self.problems
                if (found := HANDLED.match(text))]

    def _console(self, page: Any, message: Any) -> None:
        """Chromium logs every 4xx answer to fetch as an error; those are the
        API's problems, which the page shows (tests check the alerts), kept in
        `problems` (a normal flow has none: the `console` fixture fails a test
        with any it did not declare). Any other error of the console's pages, a
        5xx included, counts (not those of another site's page, such as an
        identity provider's)."""
        if message.type != "error" or not page.url.startswith(self.server.base_url):
            return
        if HANDLED.match(message.text):
            self.problems.append(message.text)
        else:
            self.errors.append(message.text)

    def signed_in(self, role: str = "Dispatcher", user_id: str = "") -> Any:
        """A page signed in through the development form, on the role's home."""
        page = self.page()
        page.goto("/")
        page.get_by_label("Role").select_option(role)
        if user_id:
            page.get_by_label("User id").fill(user_id)
        page.get_by_role("button", name="Sign in").click()
        home = "My assignments" if role == "Contractor" else "Jobs"
        page.get_by_role("heading", name=home).wait_for()
        return page


def live(page: Any) -> None:
    """Waits until the page follows the event stream (its indicator says Live)."""
    page.locator("#live[data-state=live]").wait_for()


def axe_serious(page: Any) -> list[str]:
    """The serious and critical axe-core violations on the page as it is."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in results.response["violations"] if v["impact"] in SERIOUS]


def assert_accessible(page: Any) -> None:
    found = axe_serious(page)
    assert not found, f"axe-core, serious or critical: {found}"


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct row bytes-patterns of an 8-bit
    RGB(A) PNG (a blank page has a handful; a page with content, many)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        kind = data[offset + 4:offset + 8]
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += length + 12
    raw = zlib.decompress(b"".join(chunks))
    stride = len(raw) // height
    rows = {raw[row * stride + 1:(row + 1) * stride] for row in range(height)}
    return width, height, len(rows)


def screenshot(page: Any, name: str, *, shows: list[str]) -> Path:
    """Saves the page as test-artifacts/console/<name>.png, after checking that
    it shows each text of `shows`, and checks the picture is not blank."""
    body = page.locator("body")
    for text in shows:
        body.get_by_text(text).first.wait_for(state="visible")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    data = page.screenshot(path=str(path))
    width, height, distinct_rows = png_facts(data)
    viewport = page.viewport_size
    assert (width, height) == (viewport["width"], viewport["height"])
    assert distinct_rows > 40, f"{name}.png looks blank ({distinct_rows} distinct rows)"
    return path


def create_job(server: Server, **overrides: Any) -> dict[str, Any]:
    reply = server.client().post("/api/jobs", job_body(**overrides))
    assert reply.status == 201, reply.body
    job: dict[str, Any] = reply.body
    return job


def assign(server: Server, job: dict[str, Any], contractor_id: str | None = None
           ) -> dict[str, Any]:
    reply = server.client().post(f"/api/jobs/{job['id']}/assignments", {
        "contractorId": contractor_id or str(uuid.uuid4()),
        "startUtc": job["serviceWindow"]["start"], "endUtc": job["serviceWindow"]["end"]})
    assert reply.status == 201, reply.body
    assigned: dict[str, Any] = reply.body
    return assigned


def history_types(server: Server, job_id: str) -> list[str]:
    reply = server.client().get(f"/api/jobs/{job_id}/history")
    assert reply.status == 200, reply.body
    return [event["type"] for event in reply.body["events"]]


def region() -> str:
    """A region of a test's own, so that its rows are the only ones it counts."""
    return f"R-{uuid.uuid4().hex[:8]}"
