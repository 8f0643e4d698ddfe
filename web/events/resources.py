"""/api/events: Server-Sent Events, replayed from the store, then live."""

from __future__ import annotations

import json
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from application.metrics import metrics
from domain.errors import Forbidden
from projections.log import EventLog
from projections.realtime.envelopes import contractors_of, region_of
from projections.realtime.feeds import read_log
from projections.realtime.hub import Envelope, Hub
from web import http
from web.docs import ApiBlueprint
from web.problems import Problem
from web.pump import StreamSubscriber, handoff_of
from web.services import services

MAX_POSITION = 2**63 - 1  # positions are 64-bit integers in either store

blp = ApiBlueprint("events", __name__, url_prefix="/api/events",
                   description="Realtime: every published event as Server-Sent Events.")

@blp.route("")
class Events(MethodView):
    @blp.doc(
        parameters=[
            {"in": "query", "name": "region", "required": False,
             "description": "Dispatcher/Admin: the dispatch/<region> groups to receive "
                            "(repeatable; all regions when absent)",
             "schema": {"type": "array", "items": {"type": "string"}},
             "style": "form", "explode": True},
            {"in": "header", "name": "Last-Event-ID", "required": False,
             "description": "Resume after this position: missed events are replayed "
                            "from the event store first, then the stream goes live.",
             "schema": {"type": "integer", "minimum": 0}},
        ],
        responses={"200": {
            "description": "text/event-stream: `id: <position>`, `event: <type>`, "
                           "`data: <envelope>`; a comment line at least every 15 s.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }},
    )
    @blp.problems(401, 403, 422, 503)
    def get(self) -> Response:
        """Stream published events: a dispatcher's regions, a contractor's own."""
        accepts = _filter_for_actor()
        after = _last_event_id()
        release = _take_stream_slot()
        try:
            return _event_stream(accepts, after, release)
        except BaseException:
            release()
            raise


def _take_stream_slot() -> Callable[[], None]:
    """One of this server's stream slots (503 when none is free), and its release
    (which releases it once however often it is called)."""
    slots: threading.BoundedSemaphore = current_app.extensions["smartscheduler.streams"]
    if not slots.acquire(blocking=False):
        raise Problem(503, "service_unavailable", "Too many streams",
                      "This server holds as many event streams as it can; retry "
                      "shortly.", headers={"Retry-After": "5"})
    open_streams = metrics().sse_streams_open
    open_streams.inc()

    def release() -> None:
        slots.release()
        open_streams.dec()

    return _once(release)


def _event_stream(accepts: Callable[[Envelope], bool], after: int | None,
                  release: Callable[[], None]) -> Response:
    """The text/event-stream response: replayed from `after`, then live."""
    built = services()
    assert built.hub is not None, "the composition root gives the web app a hub"
    return Response(
        _stream(built.app, built.hub, accepts, after,
                built.settings.sse_heartbeat,
                _client_gone(request.environ.get("gunicorn.socket")),
                handoff=handoff_of(request.environ), release=release),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _filter_for_actor() -> Callable[[Envelope], bool]:
    actor = http.actor()
    if actor.is_staff:
        regions = set(request.args.getlist("region"))
        return (lambda item: region_of(item) in regions) if regions else (lambda _: True)
    if actor.is_contractor:
        me = str(actor.contractor_id)
        return lambda item: me in contractors_of(item)
    raise Forbidden("Only Admin, Dispatcher and Contractor tokens may stream events.")


def _last_event_id() -> int | None:
    value = request.headers.get("Last-Event-ID")
    if value is None or not value.strip():
        return None
    value = value.strip()
    # ASCII digits only ("²".isdigit() is true), and within the store's 64-bit positions.
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_POSITION:
        raise Problem(422, "validation_failed", "Validation failed",
                      "Last-Event-ID must be an event position (an integer).",
                      errors={"Last-Event-ID": ["Not an integer."]})
    return int(value)


def encode_event(item: Envelope) -> str:
    """One event as a Server-Sent Events message."""
    return f"id: {item['position']}\nevent: {item['type']}\ndata: {json.dumps(item)}\n\n"


_event = encode_event


CLIENT_CHECK = 1.0
"""Seconds between looks at whether a quiet stream's client has gone."""


def _client_gone(sock: socket.socket | None) -> Callable[[], bool]:
    """Whether the client closed its end: its socket reads as end-of-file.

    A stream learns it otherwise only when it next writes (a heartbeat, up to
    15 s later), holding its slot and its thread meanwhile.
    """
    if sock is None:  # not under gunicorn (the test client): never known
        return lambda: False

    def gone() -> bool:
        poller = select.poll()  # not select(): it fails past file descriptor 1023
        poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLRDHUP)
        try:
            if not poller.poll(0):
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return gone


def _once(release: Callable[[], Any]) -> Callable[[], None]:
    done = threading.Lock()

    def once() -> None:
        if done.acquire(blocking=False):
            release()

    return once


def _stream(app: EventLog, hub: Hub, accepts: Callable[[Envelope], bool], after: int | None,
            heartbeat: float, client_gone: Callable[[], bool] = lambda: False, *,
            handoff: Callable[..., bool] | None = None,
            release: Callable[[], None] = lambda: None) -> Iterator[str]:
    """The stream: a greeting, the replay after `after`, then live events.

    Under a server that offers a hand-over (`handoff`), the live part is written
    by its pump, and this generator (with its thread) ends after the replay.
    """
    # Subscribe before reading the store, so nothing committed meanwhile is missed;
    # positions de-duplicate the seam between the replay and the live feed.
    subscriber = hub.subscribe(accepts, subscriber=StreamSubscriber(accepts)
                               if handoff is not None else None)
    handed_over = False

    def close() -> None:
        hub.unsubscribe(subscriber)
        release()

    try:
        yield "retry: 2000\n: connected\n\n"
        last = 0
        item: Envelope | None
        if after is not None:
            last = after
            for item in read_log(app, after):
                if accepts(item):
                    yield _event(item)
                last = max(last, item["position"])
        if handoff is not None and isinstance(subscriber, StreamSubscriber):
            handed_over = handoff(subscriber, last=last, heartbeat=heartbeat,
                                  on_close=close)
            if handed_over:
                return
        beat = time.monotonic() + heartbeat  # a comment at least every `heartbeat` s
        while True:
            wait = min(CLIENT_CHECK, max(0.0, beat - time.monotonic()))
            try:
                item = subscriber.queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is None and (subscriber.closed or client_gone()):
                return
            if time.monotonic() >= beat:
                yield ": heartbeat\n\n"
                beat = time.monotonic() + heartbeat
            if item is not None and item["position"] > last:
                last = item["position"]
                yield _event(item)
    finally:
        if not handed_over:
            close()
