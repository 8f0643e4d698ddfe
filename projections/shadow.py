"""The store's shadow tables, for a rebuild beside the live read models, and the
switch that makes them live.

Part of the store (projections.store): `DispatchViews.shadow`, `create_empty`
and `switch_to` are these functions, which work on the store's own transactions
and SQL, and the backends (projections.backends) say how the switch keeps the
runners out. A rebuild (projections.rebuild) writes into a shadow: the same
tables under other names (SHADOW_SUFFIX), with a tracking position of their
own. `switch` makes them the live tables in one transaction, losing nothing that
the runners applied to the live tables meanwhile.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from projections import assignments, jobs
from projections.batches import decode
from projections.log import EventLog

if TYPE_CHECKING:
    from projections.store import DispatchViews

SHADOW_SUFFIX = "_rebuild"
"""Tables and tracking name of a read model being rebuilt beside the live one."""

TABLES = (jobs.TABLE, assignments.TABLE)
CREATE = (*jobs.CREATE, *assignments.CREATE)


def shadow_of(live: DispatchViews) -> DispatchViews:
    """The same read models under other table names, to rebuild into."""
    twin = copy.copy(live)
    twin.suffix = SHADOW_SUFFIX
    twin.tracking_name = live.tracking_name + SHADOW_SUFFIX
    twin._init_views()
    twin.on_advanced = None  # no wait is for its position
    return twin


def create_empty(views: DispatchViews) -> None:
    """(Re)create the views' tables, empty and without secondary indexes."""
    with views._transaction(commit=True) as c:
        for table in TABLES:
            c.execute(views._sql(f"DROP TABLE IF EXISTS {table}"))
        for sql in CREATE:
            if not sql.startswith("CREATE INDEX"):
                c.execute(views._sql(sql))
        c.execute(views._delete_tracking_sql(), (views.tracking_name,))


def switch(live: DispatchViews, shadow: DispatchViews, app: EventLog) -> int:
    """Make the shadow's tables the live ones, in one transaction; the new position.

    Runners are held off meanwhile (a lock on the live tables); whatever they
    applied beyond the shadow is applied to the shadow first, so the switch
    loses nothing, and the position becomes the later of the two.
    """
    with live._switch_transaction() as c:
        applied = live._lock_for_switch(c)
        c.execute(live._select_tracking_sql(), (shadow.tracking_name,))
        row = c.fetchone()
        built = int(row["notification_id"]) if row else 0
        if applied > built:
            notifications = live._read_log(c, app, built, applied)
            if notifications:
                shadow._apply(c, decode(app, notifications, shadow.tracking_name))
        for table in TABLES:
            c.execute(live._sql(f"DROP TABLE {table}"))
            c.execute(f"ALTER TABLE {shadow._sql(table)} RENAME TO {table}")
        for sql in CREATE:
            if sql.startswith("CREATE INDEX"):
                c.execute(live._sql(sql))
        position = max(applied, built)
        c.execute(live._delete_tracking_sql(), (live.tracking_name,))
        c.execute(live._delete_tracking_sql(), (shadow.tracking_name,))
        if position:
            live._advance(c, position, position)
    live._advanced_here()
    return position
