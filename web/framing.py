"""How much of a request the worker's main loop reads before a thread takes it.

The worker (`web.worker`) reads each connection's bytes in its main loop and,
after every read, asks `request_ready`: is a whole request head in, with its body
when its length is known and small (or a chunked body to its last chunk)? Or is
it a request a thread must take as it is (a client awaiting 100 Continue, a body
past MAX_PREFETCH, a head past MAX_HEAD, something gunicorn's parser refuses)?
These are pure functions of the bytes read so far: no sockets, no gunicorn.
"""

from __future__ import annotations

import re

HEAD_TIMEOUT = 10.0
"""Seconds a connection has to send its request head (and a body of known length)
before it is closed; until then it costs a buffer in the worker's main loop, not
a thread."""

MAX_PREFETCH = 1 << 20
"""Bytes of a request body read in the main loop before a thread takes the request
(the API's largest accepted body); a longer body is read by the thread."""

MAX_HEAD = 64 * 1024
"""Bytes of request head read in the main loop before a thread takes the request
anyway (gunicorn's parser then answers 431 or 414)."""

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]{1,12})[ \t]*\r\n", re.I)
TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding[ \t]*:([^\r\n]*)", re.I)
EXPECT = re.compile(rb"\r\nexpect[ \t]*:", re.I)
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


BARE_LF = re.compile(rb"(?<!\r)\n")


def request_ready(data: bytes | bytearray, scanned: int = 0) -> bool:
    """Whether `data` holds a whole request head, and its body when its length is
    known and small; or enough that a thread should take it as it is.

    `scanned` (from `scanned_to`) says how far earlier reads looked for the head's
    end: the look goes on from there, so a head sent a byte at a time costs the
    main loop its new bytes at each read, not the whole buffer again."""
    end = data.find(b"\r\n\r\n", max(0, scanned - 3))
    if end < 0:
        # gunicorn's parser refuses a line ended by a bare LF at once (400).
        return len(data) > MAX_HEAD or BARE_LF.search(data, max(0, scanned - 1)) is not None
    head = bytes(data[:end + 2])
    if EXPECT.search(head):  # the client waits for 100 Continue before its body
        return True
    coding = TRANSFER_ENCODING.search(head)
    if coding is not None:
        if not coding.group(1).strip().lower().endswith(b"chunked"):
            return True  # the parser refuses it
        return chunked_body_in(data, end + 4)
    length = CONTENT_LENGTH.search(head)
    if length is None:
        return True
    size = int(length.group(1))
    return size > MAX_PREFETCH or len(data) >= end + 4 + size


def scanned_to(data: bytes | bytearray, scanned: int) -> int:
    """Where the next look for the head's end starts, after a read that did not
    make the request ready: the end, when it is in, else the end of the bytes."""
    end = data.find(b"\r\n\r\n", max(0, scanned - 3))
    return end if end >= 0 else len(data)


MAX_PREFETCH_CHUNKS = 256
"""Chunks of a body the main loop looks through, at each read, before a thread takes
the request (each read scans from the body's start: many tiny chunks would make
that the loop's whole work)."""


def chunked_body_in(data: bytes | bytearray, start: int) -> bool:
    """Whether the chunked body that starts at `start` has ended; or it is past
    MAX_PREFETCH or MAX_PREFETCH_CHUNKS, or malformed (gunicorn's parser answers
    400): a thread takes it."""
    limit, position = start + MAX_PREFETCH, start
    for _ in range(MAX_PREFETCH_CHUNKS):
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return len(data) > limit
        size_field = bytes(data[position:line_end]).split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(size_field):
            return True
        size = int(size_field, 16)
        if size == 0:  # the last chunk: then trailer fields, if any, and an empty line
            rest = bytes(data[line_end + 2:])
            return rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        position = line_end + 2 + size + 2
        if position > limit:
            return True
        if position > len(data):
            return False
    return True  # a body of many small chunks: the thread reads the rest


def head_unfinished(data: bytes | bytearray) -> bool:
    """Whether `data` is a head past MAX_HEAD with no end in sight: the main loop
    refuses it (414/431) rather than leave a thread to wait for the rest."""
    return len(data) > MAX_HEAD and b"\r\n\r\n" not in data
