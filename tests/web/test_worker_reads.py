"""`web.framing.request_ready`: when the worker's main loop has read enough of a
request for a thread to take it.

The main loop reads each connection's bytes as they come and asks, after every
read, whether the request is in: a whole head, and its body when its length is
known and at most MAX_PREFETCH; or a request a thread must take as it is (a
chunked body, a client awaiting 100 Continue, a body too large to prefetch, a
head too large to wait for). Too early, and a thread blocks on a slow client;
too late (never), and the client is answered only by HEAD_TIMEOUT closing it.
"""

from __future__ import annotations

import json

import pytest

from tests.web.support import job_body
from web.framing import MAX_HEAD, MAX_PREFETCH, MAX_PREFETCH_CHUNKS, request_ready, scanned_to

GET = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"
BODY = json.dumps(job_body()).encode()


def post(body: bytes = BODY, *headers: bytes, length: int | None = None) -> bytes:
    """A POST head with a Content-Length (`length`, or the body's), then the body."""
    size = len(body) if length is None else length
    lines = [b"POST /api/jobs HTTP/1.1", b"Host: localhost",
             b"Content-Type: application/json", b"Content-Length: %d" % size, *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def prefixes(data: bytes) -> list[bytes]:
    """Every proper prefix of `data`, the empty one included."""
    return [data[:end] for end in range(len(data))]


# A request without a body: ready once its head has ended -----------------------


def test_a_head_is_ready_only_once_its_blank_line_has_arrived():
    assert [prefix for prefix in prefixes(GET) if request_ready(prefix)] == []
    assert request_ready(GET)


@pytest.mark.parametrize("cut", [len(GET) - 1, len(GET) - 2, len(GET) - 3])
def test_the_end_of_the_head_split_between_reads_is_not_taken_for_its_end(cut):
    assert not request_ready(GET[:cut])
    assert request_ready(GET[:cut] + GET[cut:])


def test_a_bytearray_the_loop_appends_to_is_read_like_bytes():
    buffer = bytearray()
    readiness = []
    for byte in GET:
        buffer.append(byte)
        readiness.append(request_ready(buffer))
    assert readiness == [False] * (len(GET) - 1) + [True]


def test_a_request_with_content_length_zero_is_ready_at_its_head():
    assert request_ready(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")


def test_an_empty_read_is_not_a_request():
    assert not request_ready(b"")
    assert not request_ready(bytearray())


# A body of known, small length: read in the loop too ---------------------------


def test_a_body_of_known_length_is_waited_for_to_its_last_byte():
    request = post()
    head_end = request.index(b"\r\n\r\n") + 4
    assert not any(request_ready(request[:end]) for end in range(head_end, len(request)))
    assert request_ready(request)


@pytest.mark.parametrize("spelling", [
    b"content-length: %d", b"CONTENT-LENGTH: %d", b"Content-Length:%d",
    b"Content-Length:   %d  ", b"Content-Length:\t%d\t",
])
def test_content_length_is_found_whatever_its_case_and_spacing(spelling):
    head = (b"POST /api/jobs HTTP/1.1\r\nHost: x\r\n" + spelling % 5 + b"\r\n"
            b"Accept: */*\r\n\r\n")
    assert not request_ready(head)
    assert not request_ready(head + b"1234")
    assert request_ready(head + b"12345")


def test_content_length_as_the_first_or_the_last_header_is_found():
    first = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nHost: x\r\n\r\n"
    last = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
    for head in (first, last):
        assert not request_ready(head + b"ab")
        assert request_ready(head + b"abc")


@pytest.mark.parametrize("header", [
    b"X-Content-Length: 100",  # another header whose name ends the same
    b"X-Note: content-length: 100",  # the words in a value
    b"Content-Lengthy: 100",
])
def test_only_the_content_length_header_announces_a_body(header):
    assert request_ready(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")


def test_a_body_of_the_largest_prefetched_size_is_waited_for():
    head = post(b"", length=MAX_PREFETCH)
    assert not request_ready(head)
    assert not request_ready(head + b"x" * (MAX_PREFETCH - 1))
    assert request_ready(head + b"x" * MAX_PREFETCH)


def test_a_body_larger_than_the_prefetch_is_left_to_the_thread_at_its_head():
    assert request_ready(post(b"", length=MAX_PREFETCH + 1))
    assert request_ready(post(b"", length=10**12 - 1))


def test_a_content_length_too_long_to_be_one_is_left_to_the_parser():
    # Thirteen digits: not a length the loop waits for; gunicorn's parser answers it.
    assert request_ready(post(b"", length=10**12))


# What a thread takes at the head ------------------------------------------------


@pytest.mark.parametrize("header", [
    b"Transfer-Encoding: chunked", b"transfer-encoding: chunked",
    b"TRANSFER-ENCODING:chunked", b"Transfer-Encoding: gzip, chunked",
])
def test_a_chunked_body_is_awaited_to_its_last_chunk(header):
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    assert request_ready(head + body)
    for cut in range(len(body)):  # every prefix is still waiting
        assert not request_ready(head + body[:cut]), body[:cut]


def test_a_chunked_body_with_trailer_fields_ends_at_the_empty_line():
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"2\r\n{}\r\n0\r\nX-Checksum: 1\r\n\r\n"
    assert request_ready(head + body)
    assert not request_ready(head + body[:-2])


@pytest.mark.parametrize("body", [b"zz\r\n", b"-1\r\n"])
def test_a_malformed_chunk_size_is_left_to_the_parser(body):
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert request_ready(head + body)


def test_a_chunked_body_past_the_prefetch_is_read_by_the_thread():
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert request_ready(head + b"%X\r\n" % (MAX_PREFETCH + 1))
    assert not request_ready(head + b"%X\r\n" % 100 + b"a" * 50)


def test_a_transfer_coding_that_is_not_chunked_is_left_to_the_parser():
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    assert request_ready(head)


@pytest.mark.parametrize("header", [b"Expect: 100-continue", b"expect:100-continue"])
def test_a_client_awaiting_100_continue_is_taken_before_its_body(header):
    # It sends its body only once told to: waiting for the body would wait forever.
    assert request_ready(post(b"", header))
    assert request_ready(post(b"", header, length=MAX_PREFETCH + 1))


def test_a_head_past_the_prefetch_limit_is_given_to_the_parser_unfinished():
    line = b"X-Filler: " + b"a" * 90 + b"\r\n"
    unfinished = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + line * (MAX_HEAD // len(line) + 1)
    assert len(unfinished) > MAX_HEAD
    assert request_ready(unfinished[:MAX_HEAD + 1])
    assert not request_ready(unfinished[:MAX_HEAD])


def test_a_request_line_without_its_end_is_given_to_the_parser_past_the_limit():
    line = b"GET /healthz?q=" + b"a" * MAX_HEAD
    assert not request_ready(line[:MAX_HEAD])
    assert request_ready(line[:MAX_HEAD + 1])


# Pipelined and kept-alive requests: the first request decides -------------------


def test_a_pipelined_request_behind_the_first_does_not_hold_it_back():
    assert request_ready(GET + GET[:10])
    assert request_ready(post() + post()[:30])


def test_the_first_requests_body_is_counted_from_its_own_head():
    # The second request's head is not the first request's body.
    first = post(b"", length=len(GET) + 10)
    assert not request_ready(first + GET)
    assert request_ready(first + GET + b"x" * 10)


def test_the_first_requests_headers_alone_decide():
    # A Transfer-Encoding or Expect in the next request does not hand this one over.
    first = post(b"", length=5)
    second = b"POST /api/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert not request_ready(first + b"ab")
    assert request_ready(first + b"abcde" + second)


def test_the_one_empty_line_a_client_may_send_before_a_request_does_not_end_it():
    # RFC 9112 section 2.2: a server ignores at least one CRLF before the request line.
    assert request_ready(b"\r\n" + GET)


def test_a_head_ended_by_bare_line_feeds_is_given_to_the_parser_to_reject():
    assert request_ready(b"GET /healthz HTTP/1.1\nHost: x\n\n")


def test_a_body_of_more_chunks_than_the_loop_scans_is_read_by_the_thread():
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    few = b"1\r\na\r\n" * (MAX_PREFETCH_CHUNKS - 1)
    assert not request_ready(head + few)  # unfinished, still scanned by the loop
    assert request_ready(head + few + b"1\r\na\r\n" * 2)  # past the cap: a thread's


@pytest.mark.parametrize("request_bytes", [
    GET, post(), post(b"{}", length=2), b"GET / HTTP/1.1\nHost: x\n\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
])
@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_reads_that_go_on_from_where_the_last_looked_agree_with_reading_it_all(
        request_bytes, step):
    # As the main loop reads: each look starts where the one before stopped.
    buffer, scanned = bytearray(), 0
    for start in range(0, len(request_bytes), step):
        buffer += request_bytes[start:start + step]
        ready = request_ready(buffer, scanned)
        assert ready == request_ready(bytes(buffer))
        if ready:
            break
        scanned = scanned_to(buffer, scanned)
    else:
        pytest.fail("never ready")
