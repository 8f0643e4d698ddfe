"""The stream slots an embedded server's workers share (smartscheduler/server.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from smartscheduler.slots import SharedSlots


@pytest.fixture
def slots() -> Iterator[SharedSlots]:
    shared = SharedSlots(3)
    try:
        yield shared
    finally:
        shared.close()


def test_slots_are_taken_up_to_their_number_and_given_back(slots):
    assert [slots.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]

    slots.release()

    assert slots.acquire(blocking=False)
    assert not slots.acquire(blocking=False)


def test_threads_of_one_process_each_take_their_own_slot(slots):
    taken: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        got = slots.acquire(blocking=False)
        with lock:
            taken.append(got)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(taken) == [False] * 5 + [True] * 3


def test_a_release_beyond_what_was_taken_is_an_error_as_with_a_bounded_semaphore(slots):
    assert slots.acquire(blocking=False)
    slots.release()

    with pytest.raises(ValueError):
        slots.release()
