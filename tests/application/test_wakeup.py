"""Wake-ups between processes sharing an SQLite file (application/wakeup.py).

Each `Wakeup` here stands for a process: it has its own sockets, so one object
waking another goes through the same datagrams as two processes would. Waits
are bounds (WAIT), never timing claims.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from application.settings import Settings
from application.wakeup import ADVANCED, APPENDED, SUFFIX, Wakeup, wakeup_for
from smartscheduler.bootstrap import Services, build_services
from tests.factories import save_cancelled_job

WAIT = 10.0


class Calls:
    """A callback that counts its calls, and can be waited on."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def __call__(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.count >= count, WAIT), (
                f"{self.count} calls, not {count}, within {WAIT}s")


@pytest.fixture
def wakeups(tmp_path: Path) -> Iterator[Callable[..., Wakeup]]:
    made: list[Wakeup] = []

    def make(directory: Path | None = None) -> Wakeup:
        wakeup = Wakeup(directory or tmp_path / ("db" + SUFFIX))
        made.append(wakeup)
        return wakeup

    try:
        yield make
    finally:
        for wakeup in made:
            wakeup.close()


def sockets_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_a_notify_wakes_the_listeners_of_its_channel_only_and_not_itself(wakeups):
    reader, writer = wakeups(), wakeups()
    appended, advanced, own = Calls(), Calls(), Calls()
    reader.listen({APPENDED: appended, ADVANCED: advanced})
    writer.listen({APPENDED: own})

    writer.notify(APPENDED)

    appended.wait_for(1)
    writer.notify(ADVANCED)
    advanced.wait_for(1)
    reader.notify(ADVANCED)  # nobody else listens there: no one is called
    assert own.count == 0


def test_each_listener_binds_one_socket_per_channel_and_removes_them_on_close(
        wakeups, tmp_path):
    directory = tmp_path / ("db" + SUFFIX)
    first, second = wakeups(), wakeups()
    first.listen({APPENDED: Calls(), ADVANCED: Calls()})
    second.listen({APPENDED: Calls()})
    assert len(sockets_in(directory / APPENDED)) == 2
    assert len(sockets_in(directory / ADVANCED)) == 1
    assert all(name.startswith(f"{os.getpid()}-") for name in sockets_in(directory / APPENDED))

    first.close()

    assert len(sockets_in(directory / APPENDED)) == 1
    assert sockets_in(directory / ADVANCED) == []


def test_a_socket_left_by_a_process_that_is_gone_is_removed_by_the_next_notify(
        wakeups, tmp_path):
    directory = tmp_path / ("db" + SUFFIX)
    listener = wakeups()
    calls = Calls()
    listener.listen({APPENDED: calls})
    stale = directory / APPENDED / "999999-dead"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(stale))  # closed without unlinking, as by SIGKILL
    assert stale.exists()

    wakeups().notify(APPENDED)

    calls.wait_for(1)
    assert not stale.exists()
    assert len(sockets_in(directory / APPENDED)) == 1


def test_many_notifies_to_a_busy_listener_never_block_the_writer(wakeups):
    listener = wakeups()
    release = threading.Event()
    calls = Calls()

    def slow() -> None:
        calls()
        release.wait(WAIT)

    listener.listen({APPENDED: slow})
    writer = wakeups()
    for _ in range(1000):  # its buffer fills: the rest are dropped, not waited on
        writer.notify(APPENDED)
    release.set()
    calls.wait_for(1)


def test_a_directory_too_deep_for_a_socket_address_still_works(wakeups, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ("db" + SUFFIX)
    assert len(str(deep / APPENDED / "1234567-abcdefgh")) > 108
    reader, writer = wakeups(deep), wakeups(deep)
    calls = Calls()
    reader.listen({APPENDED: calls})

    writer.notify(APPENDED)

    calls.wait_for(1)


def test_notify_with_nobody_listening_or_after_close_does_nothing(wakeups):
    lonely = wakeups()
    lonely.notify(APPENDED)  # no directory yet
    lonely.close()
    lonely.notify(APPENDED)


def test_only_an_sqlite_file_has_wake_ups(tmp_path):
    found = wakeup_for(f"sqlite:///{tmp_path / 'x.db'}")
    assert found is not None
    try:
        assert found.directory == Path(f"{tmp_path / 'x.db'}{SUFFIX}")
    finally:
        found.close()
    assert wakeup_for("sqlite:///:memory:") is None
    assert wakeup_for("postgresql://postgres@127.0.0.1:5432/test") is None


# Wired by the composition root ---------------------------------------------------


@pytest.fixture
def two_processes(sqlite_url: str) -> Iterator[tuple[Services, Services]]:
    """A server's worker (hub, waits, no runner) and a followers process (the
    runner), as two sets of services on one file: each with its own wake-ups."""
    settings = Settings(database_url=sqlite_url)
    web = build_services(settings, run_projections=False, run_relay=False, realtime=True)
    try:
        followers = build_services(settings, run_projections=True, run_relay=False)
        try:
            yield web, followers
        finally:
            followers.close()
    finally:
        web.close()


def test_the_followers_batches_wake_the_waits_of_a_worker_through_its_socket(
        two_processes):
    web, followers = two_processes
    before = web.views._advances  # moved only by wake-ups: this worker runs no runner

    save_cancelled_job(web.app)  # appended by the worker: its datagram wakes the runner

    assert web.views.wait_for(web.app.head_position(), WAIT)
    deadline = time.monotonic() + WAIT
    while web.views._advances == before:  # the runner's batch came back as a datagram
        assert time.monotonic() < deadline, "no wake-up reached the worker's views"
        time.sleep(0.01)
    assert followers.views.position() == web.app.head_position()


def test_a_process_that_only_reads_or_writes_listens_on_no_channel(sqlite_url, tmp_path):
    services = build_services(Settings(database_url=sqlite_url), run_projections=False,
                              run_relay=False)
    try:
        assert services.wakeup is not None
        directory = services.wakeup.directory
        assert sockets_in(directory / APPENDED) == sockets_in(directory / ADVANCED) == []
    finally:
        services.close()
