"""The one back-off of the followers, the log reader and the realtime hub."""

from __future__ import annotations

from projections.following.backoff import FIRST, OUTAGE_BACKOFF, Backoff


def test_waits_double_from_the_first_up_to_the_limit():
    backoff = Backoff(1.0)

    waits = [backoff.failed() for _ in range(6)]

    assert waits == [FIRST, FIRST * 2, FIRST * 4, FIRST * 8, 1.0, 1.0]


def test_a_success_starts_again_from_the_first_wait():
    backoff = Backoff(30.0)
    for _ in range(5):
        backoff.failed()

    backoff.succeeded()

    assert backoff.failed() == FIRST


def test_a_failure_may_set_a_lower_limit_for_the_waits_after_it():
    backoff = Backoff(30.0)  # an event that fails may wait up to 30 s
    for _ in range(8):
        backoff.failed()  # 12.8 s next
    assert backoff.wait > OUTAGE_BACKOFF

    first = backoff.failed(OUTAGE_BACKOFF)  # then an outage: look again soon
    assert first > OUTAGE_BACKOFF  # this wait was set by the failures before
    assert backoff.failed(OUTAGE_BACKOFF) == OUTAGE_BACKOFF


def test_the_default_limit_is_the_outage_limit():
    backoff = Backoff()

    waits = [backoff.failed() for _ in range(10)]

    assert max(waits) == OUTAGE_BACKOFF


def test_a_back_off_may_start_from_its_own_first_wait():
    backoff = Backoff(30.0, first=1.0)  # the server's followers process

    waits = [backoff.failed() for _ in range(7)]
    backoff.succeeded()

    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.failed() == 1.0
