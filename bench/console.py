"""The console's two figures, in Debian's Chromium against a real server:

- the board's first paint with 1,000 jobs in the store (first-contentful-paint,
  and the time until the table shows its rows), and
- the time from a cancel confirmed in one browser context to the row showing
  `Cancelled` on the board in another (both stamped with the machine's clock).

Run: `.venv/bin/python -m bench.console [--jobs 1000] [--cancels 5]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from application.settings import Settings
from web.auth import mint_token

CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(port: int, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(body), {
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        data = json.loads(response.read())
        assert response.status in (200, 201), data
        return dict(data)
    finally:
        connection.close()


def _job(number: int) -> dict[str, Any]:
    return {"type": f"Service call {number:04d}", "durationMinutes": 60,
            "priority": ("Normal", "High", "Rush")[number % 3],
            "region": f"Region {number % 7}",
            "serviceWindow": {"start": "2031-05-01T09:00:00Z", "end": "2031-05-01T11:00:00Z"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--cancels", type=int, default=5)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="console-bench-"))
    port = _free_port()
    env = {**os.environ, "SMARTSCHEDULER_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
           "PYTHONUNBUFFERED": "1"}
    env.pop("SMARTSCHEDULER_JWT_SECRET", None)  # the development secret: dev sign-in on
    env.pop("SMARTSCHEDULER_REDIS_URL", None)
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "smartscheduler", "serve", "--host",
                               "127.0.0.1", "--port", str(port)], cwd=workdir, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        token = mint_token(Settings(), roles=["Dispatcher"])
        ids = [_post(port, token, "/api/jobs", _job(n))["id"] for n in range(args.jobs)]
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            paints, tables = [], []
            for _ in range(5):
                context = browser.new_context(base_url=base)
                context.add_init_script(
                    f"sessionStorage.setItem('smartscheduler.token', {json.dumps(token)})")
                page = context.new_page()
                page.goto("/console/")
                page.locator("table tbody tr").nth(24).wait_for()
                timing = page.evaluate("""() => {
                    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                    return {fcp: fcp ? fcp.startTime : null, table: performance.now()};
                }""")
                paints.append(timing["fcp"])
                tables.append(timing["table"])
                context.close()

            latencies = []
            watcher_context = browser.new_context(base_url=base)
            watcher_context.add_init_script(
                f"sessionStorage.setItem('smartscheduler.token', {json.dumps(token)})")
            watcher = watcher_context.new_page()
            actor_context = browser.new_context(base_url=base)
            actor_context.add_init_script(
                f"sessionStorage.setItem('smartscheduler.token', {json.dumps(token)})")
            actor = actor_context.new_page()
            watcher.goto("/console/")
            watcher.locator("#live[data-state=live]").wait_for()
            for job_id in ids[-args.cancels:][::-1]:
                row = watcher.locator(f"tr[data-job-id='{job_id}']")
                row.wait_for()
                watcher.evaluate("""(id) => new Promise((resolve) => {
                    window.__seen = null;
                    const observer = new MutationObserver(() => {
                        const row = document.querySelector(`tr[data-job-id='${id}']`);
                        if (row && row.textContent.includes('Cancelled')) {
                            window.__seen = performance.timeOrigin + performance.now();
                            observer.disconnect();
                        }
                    });
                    observer.observe(document.querySelector('table tbody'),
                                     {childList: true, subtree: true, characterData: true});
                    resolve();
                })""", job_id)
                actor.goto(f"/console/jobs/{job_id}")
                actor.locator("#live[data-state=live]").wait_for()
                actor.get_by_role("button", name="Cancel job").click()
                confirm = actor.get_by_role("button", name="Confirm cancellation")
                confirm.wait_for()
                clicked = actor.evaluate("""() => new Promise((resolve) => {
                    const button = document.getElementById('cancel-confirm');
                    const at = performance.timeOrigin + performance.now();
                    button.click();
                    resolve(at);
                })""")
                watcher.wait_for_function("() => window.__seen !== null", timeout=10_000)
                latencies.append(watcher.evaluate("window.__seen") - clicked)
            browser.close()
        print(f"board, {args.jobs} jobs in the store (5 loads, ms): first-contentful-paint "
              f"median {statistics.median(paints):.0f} (max {max(paints):.0f}); rows shown "
              f"median {statistics.median(tables):.0f} (max {max(tables):.0f})")
        print(f"cancel in one context -> row Cancelled in another ({len(latencies)} cancels, "
              f"ms): median {statistics.median(latencies):.0f}, max {max(latencies):.0f}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
