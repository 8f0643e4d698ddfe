"""The embedded server (SQLite) as several processes: HTTP workers and a followers process.

`smartscheduler serve` on an SQLite file runs at least two HTTP worker processes
and one followers process (the read models, and the relay with Redis), all
children of gunicorn's arbiter (smartscheduler/server.py). These tests find the
processes through /proc: the followers process names itself `followers`, and
the worker that holds a client's connection is the one with the server side of
its TCP socket among its descriptors. Timeouts here are bounds, never timing
claims.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from application.settings import Settings
from projections.realtime.relay import STREAM
from projections.realtime.relay import TRACKING_NAME as RELAY_TRACKING_NAME
from projections.rebuild import rebuild
from smartscheduler.bootstrap import Services, build_services
from tests.e2e.processes import children, followers_pid, running, worker_pids
from tests.e2e.servers import Client, Server, start_server, stop
from tests.e2e.sse import SseClient
from tests.redis_server import RedisServer

WAIT = 60.0
"""How long to wait for what must happen (a bound, not a timing claim; generous,
for a machine whose cores other test runs share)."""

STOP_WITHIN = 2.0
"""Seconds from SIGTERM to the server's exit, as tests/e2e/test_shutdown.py asks."""

JOB = {
    "type": "HVAC repair",
    "durationMinutes": 120,
    "region": "North",
    "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
}
CANCEL = {"reason": "Customer called", "reasonCode": "CustomerRequest"}


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT}s")
        time.sleep(0.05)
    return value


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:  # gone meanwhile
        pass
    return inodes


def owner(server: Server, client_port: int) -> int | None:
    """The worker that holds the server side of the connection from `client_port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rpartition(":")[2], 16)
        remote_port = int(fields[2].rpartition(":")[2], 16)
        if local_port == server.port and remote_port == client_port:
            inode = fields[9]
            break
    if inode is None:
        return None
    holders = [pid for pid in worker_pids(server) if inode in _socket_inodes(pid)]
    return holders[0] if len(holders) == 1 else None


def client_port(client: Client) -> int:
    sock = client.connection.sock
    assert sock is not None, "the connection is not open"
    return int(sock.getsockname()[1])


def clients_on_two_workers(server: Server) -> tuple[Client, Client]:
    """Two kept-alive connections, each held by a different worker process."""
    by_worker: dict[int, Client] = {}
    for _ in range(100):
        client = server.client()
        assert client.get("/api/jobs?pageSize=1").status == 200  # accepted, kept alive
        holder = wait_until(lambda c=client: owner(server, client_port(c)),
                            "finding the worker of a connection")
        by_worker.setdefault(holder, client)
        if len(by_worker) >= 2:
            first, second = list(by_worker.values())[:2]
            return first, second
    pytest.fail(f"100 connections all went to one worker of {worker_pids(server)}")


@pytest.fixture
def embedded(sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Iterator[Server]:
    """The embedded server on a fresh SQLite file, with at least two workers."""
    running = start_server(sqlite_url, tmp_path, env={"SMARTSCHEDULER_SSE_HEARTBEAT": "1"})
    request.node.server_log = running.log
    try:
        wait_until(lambda: len(worker_pids(running)) >= 2 and followers_pid(running),
                   "two workers and the followers process")
        yield running
    finally:
        running.close_clients()
        stop(running.process)


# Commands and reads across processes -----------------------------------------------------


def test_what_one_worker_wrote_the_other_reads_at_once_in_lists_and_gets(embedded):
    a, b = clients_on_two_workers(embedded)
    on_a, on_b = owner(embedded, client_port(a)), owner(embedded, client_port(b))
    assert on_a != on_b

    for round_ in range(10):
        writer, reader = (a, b) if round_ % 2 == 0 else (b, a)
        created = writer.post("/api/jobs", {**JOB, "region": f"R{round_}"})
        assert created.status == 201, created.body
        job_id = created.body["id"]
        # Read-your-writes across processes: the list waits for the read models of
        # the followers process, woken by the other worker's append.
        listed = reader.get(f"/api/jobs?region=R{round_}")
        assert listed.status == 200, listed.body
        assert [job["id"] for job in listed.body] == [job_id]
        got = reader.get(f"/api/jobs/{job_id}")
        assert got.status == 200 and got.body["status"] == "Created", got.body

        cancelled = reader.post(f"/api/jobs/{job_id}/cancel", CANCEL)
        assert cancelled.status == 200, cancelled.body
        listed = writer.get(f"/api/jobs?region=R{round_}&status=Cancelled")
        assert [job["id"] for job in listed.body] == [job_id], listed.body

    # Every request above went over the same two connections, to the same two workers.
    assert owner(embedded, client_port(a)) == on_a
    assert owner(embedded, client_port(b)) == on_b


def test_an_event_stream_receives_a_cancel_handled_by_another_worker(embedded):
    streams: list[SseClient] = []
    try:
        command, _ = clients_on_two_workers(embedded)
        commander = owner(embedded, client_port(command))
        stream = None
        for _ in range(100):
            opened = SseClient(embedded)
            streams.append(opened)
            assert opened.status == 200
            opened.wait_connected()
            sock = opened.connection.sock
            assert sock is not None
            holder = wait_until(lambda s=sock: owner(embedded, s.getsockname()[1]),
                                "finding the worker of a stream")
            if holder != commander:
                stream = opened
                break
        assert stream is not None, "every stream went to the worker of the commands"

        created = command.post("/api/jobs", JOB)
        assert created.status == 201, created.body
        assert command.post(f"/api/jobs/{created.body['id']}/cancel", CANCEL).status == 200

        event = stream.cancelled(created.body["id"])  # waits up to WAIT
        assert event.data["data"]["jobId"] == created.body["id"]
        assert [e.event for e in stream.events] == ["JobCreated", "JobCancelled"]
    finally:
        for opened in streams:
            opened.close()


# The followers process -------------------------------------------------------------------


def read_models(services: Services) -> tuple[list[Any], list[Any]]:
    jobs = services.views.list_jobs(page_size=100_000)
    assignments = services.views.list_assignments(page_size=100_000)
    return jobs.items, assignments.items


def test_the_followers_process_killed_is_started_again_and_nothing_is_lost_or_doubled(
        sqlite_url: str, tmp_path: Path, redis_server: RedisServer,
        request: pytest.FixtureRequest) -> None:
    server = start_server(sqlite_url, tmp_path,
                          env={"SMARTSCHEDULER_REDIS_URL": redis_server.url})
    request.node.server_log = server.log
    store = build_services(Settings(database_url=sqlite_url), run_projections=False,
                           run_relay=False)
    stop_writing = threading.Event()
    failures: list[Any] = []
    created_ids: set[str] = set()

    def write(number: int) -> None:
        # A 503 (the store busy for longer than a request may wait: a loaded
        # machine) is an answer the API may give; anything else is a failure.
        client = Client(server.host, server.port, server.token())
        try:
            while not stop_writing.is_set():
                created = client.post("/api/jobs", {**JOB, "region": f"R{number}"})
                if created.status == 201:
                    created_ids.add(created.body["id"])
                    cancelled = client.post(f"/api/jobs/{created.body['id']}/cancel",
                                            CANCEL)
                    if cancelled.status not in (200, 503):
                        failures.append(cancelled.body)
                        return
                elif created.status != 503:
                    failures.append(created.body)
                    return
        except Exception as error:  # reported by the test's thread
            failures.append(repr(error))
        finally:
            client.close()

    writers = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(4)]
    try:
        first = wait_until(lambda: followers_pid(server), "the followers process")
        for writer in writers:
            writer.start()
        killed, current = set(), first
        for _ in range(2):  # killed mid-batch (or not): each time another one comes
            head = store.app.head_position()
            wait_until(lambda h=head: store.views.position() >= h,
                       "the read models moving while commands come in")
            os.kill(current, signal.SIGKILL)
            killed.add(current)
            current = wait_until(lambda: next(
                (pid for pid in [followers_pid(server)] if pid and pid not in killed), None),
                "a new followers process")
        stop_writing.set()
        for writer in writers:
            writer.join(WAIT)
        assert not failures, failures

        head = store.app.head_position()
        wait_until(lambda: store.views.position() == head, "the read models catching up")
        wait_until(lambda: store.views.position_of(RELAY_TRACKING_NAME) == head,
                   "the relay catching up")
        assert "was killed by SIGKILL" in server.log()
        server.close_clients()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=WAIT) == 0
        assert not children(server.process.pid)

        kept = read_models(store)
        rebuild(store.app, store.views)
        assert read_models(store) == kept
        assert {job.id for job in kept[0]} == created_ids
        with redis_server.client() as client:
            entries = [entry_id.decode() for entry_id, _ in client.xrange(STREAM)]
        assert entries == [f"{position}-0" for position in range(1, head + 1)]
    finally:
        stop_writing.set()
        store.close()
        stop(server.process)


def test_sigterm_stops_the_workers_and_the_followers_with_exit_0_leaving_no_process(
        embedded):
    processes = worker_pids(embedded) | {followers_pid(embedded)}
    client = embedded.client()
    assert client.post("/api/jobs", JOB).status == 201
    stream = SseClient(embedded).wait_connected()
    try:
        embedded.process.send_signal(signal.SIGTERM)
        try:
            code = embedded.process.wait(timeout=STOP_WITHIN)
        except Exception:
            pytest.fail(f"still running {STOP_WITHIN}s after SIGTERM")
        assert code == 0
    finally:
        stream.close()
    alive = {pid for pid in processes if running(pid)}
    assert not alive, f"left running: {alive}"
    log = embedded.log()
    assert "Traceback" not in log
    assert "Read models: stopped at position" in log
    assert "Followers process" in log and "stopped (exited with code 0)" in log


def test_the_arbiter_killed_takes_its_workers_and_followers_with_it(embedded):
    processes = worker_pids(embedded) | {followers_pid(embedded)}
    assert None not in processes and len(processes) >= 3

    embedded.process.send_signal(signal.SIGKILL)  # no clean stop: the children notice
    embedded.process.wait(timeout=WAIT)

    wait_until(lambda: not {pid for pid in processes if running(pid)},
               "every worker and the followers process exiting")


def test_ctrl_c_to_the_process_group_stops_the_followers_cleanly_too(embedded):
    processes = worker_pids(embedded) | {followers_pid(embedded)}
    assert embedded.client().post("/api/jobs", JOB).status == 201

    os.killpg(embedded.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    assert embedded.process.wait(timeout=WAIT) == 0

    assert not {pid for pid in processes if running(pid)}
    log = embedded.log()
    assert "Read models: stopped at position" in log, log
    assert "stopped (exited with code 0)" in log, log
    assert "Traceback" not in log
