"""Sends deliveries, signed, concurrently, and retries them on the schedule.

Bounded: at most THREADS sends at a time in the process, and at most
PER_ENDPOINT to any one endpoint; an endpoint gets a send beyond its first only
while more than RESERVE threads are free, so the last RESERVE threads go one per
endpoint, and endpoints that hang (each send lasts until its deadline, 15 s)
cannot take them all: it takes (THREADS - RESERVE) / PER_ENDPOINT + RESERVE of
them at once (40) to make a healthy endpoint wait, and then for one deadline at
most, as the waiting endpoints take the threads that free in turn. What waits
does so in its endpoint's queue, in this process's memory, not leased: a
delivery is leased (`WebhookStore.lease`) just before it is sent, unless the
lease it was recorded with still outlasts the send, and its attempt is recorded
only while that lease holds, so two senders never both send it, and a sender
that lost it records nothing. Deliveries come from the follower as it records
them (leased to this process) and from a look at the store every second for
those due: retries, retries an Admin asked for, those a crashed sender had
leased, and those recorded by a sender that has not sent them within its lease.

After a failure (not 2xx, a timeout, a connection error) a delivery is Failed
and due again after the schedule's next wait (with jitter, ±10 %); past the
last wait it is Dead. A 410 makes it Dead and disables its endpoint.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from projections.following.status import describe_error
from projections.webhooks import tables, transport
from projections.webhooks.secrets import SecretBox
from projections.webhooks.store import WebhookStore
from projections.webhooks.tables import Delivery, Endpoint

log = logging.getLogger("projections.webhooks")

SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds before each retry (the contract's 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)."""
TIMEOUT = 15.0
THREADS = 64
PER_ENDPOINT = 4
RESERVE = THREADS // 2
"""Threads only handed out as an endpoint's first send."""
POLL = 1.0
JITTER = 0.1
MARGIN = 5.0
"""Seconds a lease must outlast a send by (to record its outcome)."""
SKIP = 1000
"""Endpoints with deliveries waiting left out of a look for due ones, at most."""


class Sender:
    """Sends deliveries in a bounded pool; see the module docstring."""

    def __init__(self, store: WebhookStore, box: SecretBox, *,
                 schedule: Sequence[float] = SCHEDULE, timeout: float = TIMEOUT,
                 production: bool = False, threads: int = THREADS,
                 per_endpoint: int = PER_ENDPOINT, reserve: int | None = None,
                 poll: float = POLL, lease: float | None = None,
                 on_outcome: Callable[[str], None] = lambda outcome: None) -> None:
        self.store, self.box = store, box
        self.schedule = tuple(schedule)
        self.timeout, self.production = timeout, production
        self.threads, self.per_endpoint, self.poll = threads, per_endpoint, poll
        self.reserve = threads // 2 if reserve is None else reserve
        self.lease = 2 * timeout + 5 if lease is None else lease
        """Seconds a leased delivery is this sender's: past it, it is due again."""
        self.outcomes: Counter[str] = Counter()
        self.on_outcome = on_outcome
        """Told each attempt's outcome (the composition root counts it in /metrics)."""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook-send")
        self._lock = threading.Lock()
        self._held: set[str] = set()  # waiting or being sent here
        self._waiting: dict[str, deque[Delivery]] = {}  # in turn: the next first
        self._sending: Counter[str] = Counter()
        self._busy = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sender:
        self._thread = threading.Thread(target=self._look, name="webhook-due", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop looking and sending; a send in flight stays leased and is sent again
        by whoever runs next, once its lease is over."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def submit(self, deliveries: Sequence[Delivery]) -> None:
        """Send these as soon as their endpoints and the threads allow."""
        with self._lock:
            for delivery in deliveries:
                if delivery.id not in self._held and not self._stopping.is_set():
                    self._held.add(delivery.id)
                    self._waiting.setdefault(delivery.endpoint_id, deque()).append(delivery)
            self._pump()

    def _pump(self) -> None:
        """Hand waiting deliveries to free threads, endpoint by endpoint in turn."""
        progress = True
        while progress and self._busy < self.threads and not self._stopping.is_set():
            progress = False
            for endpoint in list(self._waiting):
                if self._busy >= self.threads:
                    return
                if not self._may_send(endpoint):
                    continue
                queue = self._waiting.pop(endpoint)
                delivery = queue.popleft()
                if queue:
                    self._waiting[endpoint] = queue  # last in turn now
                self._sending[endpoint] += 1
                self._busy += 1
                try:
                    self._pool.submit(self._run, delivery)
                except RuntimeError:  # stopped meanwhile: sent again later
                    return
                progress = True

    def _may_send(self, endpoint: str) -> bool:
        sending = self._sending[endpoint]
        if not sending:
            return True
        return sending < self.per_endpoint and self.threads - self._busy > self.reserve

    def _run(self, delivery: Delivery) -> None:
        try:
            lease = self._leased(delivery)
            if lease is not None:
                self._attempt(delivery, lease)
        except Exception as error:  # the store failed: its lease ends, it is sent again
            log.warning("Webhook delivery %s: %s", delivery.id, describe_error(error))
        finally:
            with self._lock:
                self._held.discard(delivery.id)
                self._sending[delivery.endpoint_id] -= 1
                if not self._sending[delivery.endpoint_id]:
                    del self._sending[delivery.endpoint_id]
                self._busy -= 1
                self._pump()

    def _leased(self, delivery: Delivery) -> float | None:
        """The lease this send is made under (None: another sender has it): the one
        it was recorded with when that outlasts the send, else a new one."""
        now, held = time.time(), delivery.next_attempt_at
        if held is not None and held - now > self.timeout + MARGIN:
            return held
        until = now + self.lease + random.uniform(0, 0.001)  # (a token: unique)
        return until if self.store.lease(delivery, until) else None

    def _look(self) -> None:
        """Every POLL seconds: what is due, not held here, of endpoints with nothing
        waiting here, is sent."""
        while not self._stopping.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._lock:
                    held, waiting = set(self._held), list(self._waiting)[:SKIP]
                self.submit([d for d in self.store.due(time.time(), 500, waiting)
                             if d.id not in held])
            except Exception as error:  # the store is down: look again later
                log.warning("Webhooks: could not look for due deliveries (%s)",
                            describe_error(error))

    def _attempt(self, delivery: Delivery, lease: float) -> None:
        endpoint = self.store.endpoint(delivery.endpoint_id)
        if endpoint is None or endpoint.status != tables.ACTIVE:
            return  # deleted or disabled: nothing more is sent to it
        code: int | None = None
        try:
            body, headers = self.signed(delivery, endpoint)
            code = transport.post(endpoint.url, body, headers, timeout=self.timeout,
                                  production=self.production)
            error = None if 200 <= code < 300 else f"HTTP {code}"
        except Exception as failure:  # the endpoint's failure, recorded with the attempt
            error = describe_error(failure)
        self._record(delivery, lease, code, error)

    def signed(self, delivery: Delivery, endpoint: Endpoint) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a send: Standard Webhooks v1, one signature per
        secret that signs now (two during a rotation's overlap)."""
        stamp = int(time.time())
        moment = datetime.fromtimestamp(stamp, UTC)
        signatures = [Webhook(self.box.open(sealed)).sign(delivery.event_id, moment,
                                                           delivery.payload)
                      for sealed in endpoint.signing_secrets(stamp)]
        return delivery.payload.encode(), {
            "Content-Type": "application/json", "User-Agent": "SmartScheduler-Webhooks/1",
            "webhook-id": delivery.event_id, "webhook-timestamp": str(stamp),
            "webhook-signature": " ".join(signatures)}

    def _record(self, delivery: Delivery, lease: float, code: int | None,
                error: str | None) -> None:
        now = time.time()
        attempts = delivery.attempts + 1
        if error is None:
            status, next_at, outcome = tables.SUCCEEDED, None, "succeeded"
        elif code == 410:
            status, next_at, outcome = tables.DEAD, None, "gone"
            error = "HTTP 410 Gone: endpoint disabled"
        elif attempts > len(self.schedule):
            status, next_at, outcome = tables.DEAD, None, "dead"
        else:
            wait = self.schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            status, next_at, outcome = tables.FAILED, now + wait, "failed"
        if not self.store.finish(delivery.id, lease, status, code, error, next_at):
            log.warning("Webhook delivery %s: its lease ran out before its attempt was "
                        "recorded (another sender has it)", delivery.id)
        if outcome == "gone":
            self.store.disable(delivery.endpoint_id, "Answered 410 Gone", now)
            log.warning("Webhook endpoint %s answered 410 Gone: disabled",
                        delivery.endpoint_id)
        elif outcome == "dead":
            log.warning("Webhook delivery %s (position %s) is dead after %s attempts: %s",
                        delivery.id, delivery.position, attempts, error)
        self.outcomes[outcome] += 1
        self.on_outcome(outcome)
