"""The webhooks' store: endpoints and deliveries, with the delivery follower's
tracking position (per backend in `projections.webhooks.backends`).

`record` commits the deliveries made from a batch of events together with the
position of the batch's last event, so each delivery is made exactly once: a
batch already recorded (by another process, or again after a crash) fails the
tracking update and rolls back. A delivery is leased for sending just before it
is sent (`next_attempt_at` moved past the send's timeout, to an instant that is
the lease's token): one that a crashed sender held becomes due again when its
lease ends, so nothing is lost and only what was in flight is sent again, and
an attempt is recorded only by the sender that still holds the lease.
A deleted or disabled endpoint's deliveries are due no more (`next_attempt_at`
cleared), so the due index holds none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError

from projections.query import Page, newest_first
from projections.webhooks import tables as t
from projections.webhooks.tables import Delivery, Endpoint

TRACKING_NAME = "Webhooks"


class WebhookStore:
    """Endpoints, deliveries and the follower's position (mixed into a tracking
    recorder of the backend, whose datastore and tracking table it uses)."""

    placeholder = "?"

    def _init_webhooks(self) -> None:
        self._cache: dict[str, str] = {}

    # The Admins' operations (application.webhooks) ----------------------------

    def insert_endpoint(self, endpoint: Endpoint) -> None:
        e = endpoint
        with self._tx(commit=True) as c:
            c.execute(self._q(t.INSERT_ENDPOINT), (
                e.id, e.url, _json(e.event_types), _json(e.regions), e.description,
                e.status, e.after_position, e.secret, e.created_at, e.created_by))

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint not deleted, oldest first."""
        with self._tx(commit=False) as c:
            c.execute(self._q(f"SELECT {t.ENDPOINT_COLUMNS} FROM {t.ENDPOINTS} "
                              f"WHERE {t.LIVE} ORDER BY created_at, id"))
            return [Endpoint.from_row(row) for row in c.fetchall()]

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        with self._tx(commit=False) as c:
            c.execute(self._q(f"SELECT {t.ENDPOINT_COLUMNS} FROM {t.ENDPOINTS} "
                              f"WHERE id = ? AND {t.LIVE}"), (endpoint_id,))
            row = c.fetchone()
            return None if row is None else Endpoint.from_row(row)

    def delete_endpoint(self, endpoint_id: str, by: str, at: float) -> bool:
        """Mark it deleted (who and when stay recorded); False when there is none."""
        return self._stop_sending(endpoint_id, f"UPDATE {t.ENDPOINTS} SET deleted_at = ?, "
                                  f"deleted_by = ? WHERE id = ? AND {t.LIVE}",
                                  (at, by, endpoint_id))

    def rotate_secret(self, endpoint_id: str, secret: str, overlap_until: float, by: str,
                      at: float) -> bool:
        """The new secret signs from now; the current one too until `overlap_until`."""
        return self._update(
            f"UPDATE {t.ENDPOINTS} SET previous_secret = secret, secret = ?, "
            "previous_until = ?, rotated_at = ?, rotated_by = ? "
            f"WHERE id = ? AND {t.LIVE}", (secret, overlap_until, at, by, endpoint_id))

    def deliveries(self, endpoint_id: str, *, status: str | None = None, page: int = 1,
                   page_size: int = 20) -> Page[Delivery]:
        with self._tx(commit=False) as c:
            rows, total = newest_first(c, self._q, t.DELIVERIES, t.DELIVERY_COLUMNS,
                                       page, page_size, endpoint_id=endpoint_id,
                                       status=status)
            return Page([Delivery.from_row(row) for row in rows], total)

    def retry(self, endpoint_id: str, delivery_id: str, now: float) -> Delivery | None:
        """Make a Failed or Dead delivery due now; the delivery as it is (None: there
        is none). The caller tells a retried one from one that was not retryable
        by its status."""
        with self._tx(commit=True) as c:
            c.execute(self._q(
                f"UPDATE {t.DELIVERIES} SET status = ?, next_attempt_at = ? "
                "WHERE id = ? AND endpoint_id = ? AND status IN (?, ?)"),
                (t.FAILED, now, delivery_id, endpoint_id, *t.RETRYABLE))
            c.execute(self._q(f"SELECT {t.DELIVERY_COLUMNS} FROM {t.DELIVERIES} "
                              "WHERE id = ? AND endpoint_id = ?"), (delivery_id, endpoint_id))
            row = c.fetchone()
            return None if row is None else Delivery.from_row(row)

    # The delivery follower (projections.webhooks.follower) --------------------

    def position(self) -> int:
        return self.max_tracking_id(TRACKING_NAME) or 0  # type: ignore[attr-defined]

    def active_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints() if e.status == t.ACTIVE]

    def record(self, deliveries: Sequence[Delivery], first: int, last: int) -> None:
        """Insert the deliveries of the events `first`..`last` and record `last`, in
        one transaction; IntegrityError, changing nothing, when the position is
        already at or past `first`."""
        with self._tx(commit=True) as c:
            if deliveries:
                c.executemany(self._q(t.INSERT_DELIVERY), [d.row() for d in deliveries])
            c.execute(self._advance_sql(), {"name": TRACKING_NAME, "first": first,
                                            "last": last})
            if c.fetchone() is None:
                raise IntegrityError(f"{TRACKING_NAME} is already at or past {first}")

    # The sender (projections.webhooks.sender) ----------------------------------

    def due(self, now: float, limit: int, skip: Sequence[str] = ()) -> list[Delivery]:
        """Deliveries to send now, to endpoints that are active (but those in `skip`),
        oldest due first."""
        columns = ", ".join(f"d.{name}" for name in t.DELIVERY_COLUMNS.split(", "))
        sql = (f"SELECT {columns} FROM {t.DELIVERIES} d JOIN {t.ENDPOINTS} e "
               "ON e.id = d.endpoint_id WHERE d.next_attempt_at <= ? "
               "AND d.status IN (?, ?) AND e.status = ? AND e.deleted_at IS NULL ")
        if skip:
            sql += f"AND d.endpoint_id NOT IN ({', '.join('?' * len(skip))}) "
        sql += "ORDER BY d.next_attempt_at LIMIT ?"
        with self._tx(commit=False) as c:  # (a list of any length: not cached)
            c.execute(self._translate(sql) if skip else self._q(sql),
                      (now, *t.TO_SEND, t.ACTIVE, *skip, limit))
            return [Delivery.from_row(row) for row in c.fetchall()]

    def lease(self, delivery: Delivery, until: float) -> bool:
        """Lease the delivery, still as it was read, until `until` (its token)."""
        return self._update(f"UPDATE {t.DELIVERIES} SET next_attempt_at = ? WHERE id = ? "
                            "AND next_attempt_at = ? AND status = ?",
                            (until, delivery.id, delivery.next_attempt_at, delivery.status))

    def finish(self, delivery_id: str, lease: float, status: str, code: int | None,
               error: str | None, next_attempt_at: float | None) -> bool:
        """Record an attempt and its outcome, if the lease `lease` still holds the
        delivery (or its endpoint was deleted or disabled meanwhile); whether it
        was recorded. A deleted or disabled endpoint's delivery is not due again."""
        return self._update(
            f"UPDATE {t.DELIVERIES} SET status = ?, attempts = attempts + 1, "
            "last_status_code = ?, last_error = ?, next_attempt_at = CASE WHEN EXISTS "
            f"(SELECT 1 FROM {t.ENDPOINTS} e WHERE e.id = endpoint_id AND e.status = ? "
            f"AND e.{t.LIVE}) THEN CAST(? AS DOUBLE PRECISION) ELSE NULL END "
            "WHERE id = ? AND (next_attempt_at = ? "
            "OR next_attempt_at IS NULL AND status IN (?, ?))",
            (status, code, error, t.ACTIVE, next_attempt_at, delivery_id, lease,
             *t.TO_SEND))

    def disable(self, endpoint_id: str, reason: str, at: float) -> None:
        self._stop_sending(endpoint_id, f"UPDATE {t.ENDPOINTS} SET status = ?, "
                           "disabled_at = ?, disabled_reason = ? WHERE id = ?",
                           (t.DISABLED, at, reason, endpoint_id))

    def _stop_sending(self, endpoint_id: str, sql: str, params: Sequence[Any]) -> bool:
        """Run the endpoint's UPDATE and, when it changed it, make its deliveries due
        no more, in one transaction; whether it changed it."""
        with self._tx(commit=True) as c:
            c.execute(self._q(sql + " RETURNING id"), params)
            if not c.fetchall():
                return False
            c.execute(self._q(f"UPDATE {t.DELIVERIES} SET next_attempt_at = NULL "
                              "WHERE endpoint_id = ? AND next_attempt_at IS NOT NULL"),
                      (endpoint_id,))
            return True

    # SQL and transactions: each backend's ---------------------------------------

    def _update(self, sql: str, params: Sequence[Any]) -> bool:
        """Run an UPDATE; whether it changed a row."""
        with self._tx(commit=True) as c:
            c.execute(self._q(sql + " RETURNING id"), params)
            return bool(c.fetchall())

    def _q(self, sql: str) -> str:
        found = self._cache.get(sql)
        if found is None:
            found = self._cache[sql] = self._translate(sql)
        return found

    def _translate(self, sql: str) -> str:
        return sql

    def _advance_sql(self) -> str:
        raise NotImplementedError

    @contextmanager
    def _tx(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:  # type: ignore[attr-defined]
            yield c


def _json(values: Sequence[str]) -> str:
    import json

    return json.dumps(list(values))
