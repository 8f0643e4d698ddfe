"""One webhook send against real, hostile receivers: the attempt's deadline is
the whole attempt's, the outcome is the status line, and a URL that is not
ASCII is sent percent-encoded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from projections.webhooks import transport
from tests.projections.hostile import RawReceiver, endless_continue, no_body, ok, trickle


@pytest.fixture
def receivers() -> Iterator[list[RawReceiver]]:
    made: list[RawReceiver] = []
    yield made
    for receiver in made:
        receiver.close()


def _post(url: str) -> int:
    return transport.post(url, b"{}", {"Content-Type": "application/json"}, timeout=1.0,
                          production=False)


@pytest.mark.parametrize("behaviour", [trickle, endless_continue])
def test_a_receiver_that_keeps_the_answer_coming_is_cut_off_at_the_deadline(
        receivers, behaviour):
    receiver = RawReceiver(behaviour)
    receivers.append(receiver)
    # Each read gets a byte well within the timeout: only a deadline for the
    # whole attempt ends it (else it goes on until the receiver gives up).
    with pytest.raises(TimeoutError):
        _post(receiver.url())
    assert receiver.settled().cut_off == 1


def test_the_status_line_is_the_outcome_however_the_body_goes(receivers):
    receiver = RawReceiver(no_body)
    receivers.append(receiver)
    assert _post(receiver.url()) == 200


def test_a_path_and_query_that_are_not_ascii_are_sent_percent_encoded(receivers):
    receiver = RawReceiver(ok)
    receivers.append(receiver)
    assert _post(receiver.url("/o\u00e9k/a%20b?q=\u00fc&r=1")) == 204
    (request,) = receiver.requests
    assert request.split(b"\r\n")[0] == b"POST /o%C3%A9k/a%20b?q=%C3%BC&r=1 HTTP/1.1"
