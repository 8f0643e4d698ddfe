"""Sends deliveries, signed, concurrently, and retries them on the schedule.

Bounded: at most THREADS sends at a time in the process, and at most
PER_ENDPOINT to any one endpoint (the rest of its deliveries wait in its own
queue), so a slow or dead endpoint holds its own slots and nobody else's. Each
send has a deadline (15 s). Deliveries come from the follower as it records
them (already leased to this process) and from a look at the store every
second for those due: retries, retries an Admin asked for, and those a crashed
sender had leased. Claiming is a lease (`WebhookStore.claim`), so two senders
never send the same delivery at once.

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
THREADS = 32
PER_ENDPOINT = 4
POLL = 1.0
JITTER = 0.1


def parse_schedule(text: str | None) -> tuple[float, ...]:
    """`SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE`: comma-separated seconds."""
    if not text:
        return SCHEDULE
    found = tuple(float(part) for part in text.split(",") if part.strip())
    if any(wait < 0 for wait in found):
        raise ValueError("retry waits must not be negative")
    return found


class Sender:
    """Sends deliveries in a bounded pool; see the module docstring."""

    def __init__(self, store: WebhookStore, box: SecretBox, *,
                 schedule: Sequence[float] = SCHEDULE, timeout: float = TIMEOUT,
                 production: bool = False, threads: int = THREADS,
                 per_endpoint: int = PER_ENDPOINT, poll: float = POLL,
                 on_outcome: Callable[[str], None] = lambda outcome: None) -> None:
        self.store, self.box = store, box
        self.schedule = tuple(schedule)
        self.timeout, self.production = timeout, production
        self.per_endpoint, self.poll = per_endpoint, poll
        self.lease = 2 * timeout + 5
        """Seconds a claimed delivery is this sender's: past it, it is due again."""
        self.outcomes: Counter[str] = Counter()
        self.on_outcome = on_outcome
        """Told each attempt's outcome (the composition root counts it in /metrics)."""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook-send")
        self._lock = threading.Lock()
        self._held: set[str] = set()  # queued or being sent here
        self._queues: dict[str, deque[Delivery]] = {}
        self._sending: dict[str, int] = {}
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
        """Send these (leased to this process) as soon as their endpoints allow."""
        with self._lock:
            for delivery in deliveries:
                if delivery.id not in self._held and not self._stopping.is_set():
                    self._held.add(delivery.id)
                    self._dispatch(delivery)

    def _dispatch(self, delivery: Delivery) -> None:
        endpoint = delivery.endpoint_id
        if self._sending.get(endpoint, 0) < self.per_endpoint:
            self._sending[endpoint] = self._sending.get(endpoint, 0) + 1
            self._send(delivery)
        else:
            self._queues.setdefault(endpoint, deque()).append(delivery)

    def _send(self, delivery: Delivery) -> None:
        try:
            self._pool.submit(self._run, delivery)
        except RuntimeError:  # stopped meanwhile: its lease ends, it is sent again
            self._held.discard(delivery.id)

    def _run(self, delivery: Delivery) -> None:
        try:
            self._attempt(delivery)
        except Exception as error:  # the store failed: its lease ends, it is sent again
            log.warning("Webhook delivery %s: %s", delivery.id, describe_error(error))
        finally:
            self._next_of(delivery)

    def _next_of(self, delivery: Delivery) -> None:
        endpoint = delivery.endpoint_id
        with self._lock:
            self._held.discard(delivery.id)
            queue = self._queues.get(endpoint)
            if queue and not self._stopping.is_set():
                self._send(queue.popleft())
                return
            self._queues.pop(endpoint, None)
            self._sending[endpoint] -= 1
            if not self._sending[endpoint]:
                del self._sending[endpoint]

    def _look(self) -> None:
        """Every POLL seconds: claim what is due and not held here, and send it."""
        while not self._stopping.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                now = time.time()
                with self._lock:
                    held = set(self._held)
                due = [d for d in self.store.due(now, 500) if d.id not in held]
                if due:
                    self.submit(self.store.claim(due, now + self.lease))
            except Exception as error:  # the store is down: look again later
                log.warning("Webhooks: could not look for due deliveries (%s)",
                            describe_error(error))

    def _attempt(self, delivery: Delivery) -> None:
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
        self._record(delivery, code, error)

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

    def _record(self, delivery: Delivery, code: int | None, error: str | None) -> None:
        now = time.time()
        attempts = delivery.attempts + 1
        if error is None:
            self.store.finish(delivery.id, tables.SUCCEEDED, code, None, None)
            outcome = "succeeded"
        elif code == 410:
            self.store.finish(delivery.id, tables.DEAD, code, "HTTP 410 Gone: endpoint "
                              "disabled", None)
            self.store.disable(delivery.endpoint_id, "Answered 410 Gone", now)
            log.warning("Webhook endpoint %s answered 410 Gone: disabled",
                        delivery.endpoint_id)
            outcome = "gone"
        elif attempts > len(self.schedule):
            self.store.finish(delivery.id, tables.DEAD, code, error, None)
            log.warning("Webhook delivery %s (position %s) is dead after %s attempts: %s",
                        delivery.id, delivery.position, attempts, error)
            outcome = "dead"
        else:
            wait = self.schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            self.store.finish(delivery.id, tables.FAILED, code, error, now + wait)
            outcome = "failed"
        self.outcomes[outcome] += 1
        self.on_outcome(outcome)
