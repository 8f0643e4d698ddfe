"""`rebuild`: replaying the whole log into the read models, against reading it.

Ours: `projections.rebuild.rebuild(app, views)` as shipped (projections.rebuild:
batches of 10,000 events decoded only as far as the read models need, their
writes folded per row and written in one transaction each, with their tracking
record, to new tables beside the live ones, then the switch that makes them
live, indexes included), events/s.

Baseline: paging through the whole notification log with
`recorder.select_notifications(start, limit=1000, inclusive_of_start=False)`,
no decoding: the floor no replay can beat. A third figure, the same read plus
`app.mapper.to_domain_event` on every notification, is what a replay through
the domain events would start from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.context import Context
from bench.registry import Row, Timing, register, timed
from projections.rebuild import rebuild as rebuild_views

TARGET = 0.5
PAGE = 1000


def read_log(app: Any, decode: Callable[[Any], Any] | None = None) -> int:
    """Page through the whole notification log; decode each one if asked."""
    select = app.recorder.select_notifications
    position, count = 0, 0
    while True:
        notifications = select(position, limit=PAGE, inclusive_of_start=False)
        if not notifications:
            return count
        if decode is not None:
            for notification in notifications:
                decode(notification)
        position = notifications[-1].id
        count += len(notifications)


@register("rebuild", "rebuild of the read models (events/s) against a raw read of the log")
def rebuild(ctx: Context) -> list[Row]:
    app: Any = ctx.ours().app
    views, repeat = ctx.views(), ctx.args.repeat
    ctx.say(f"rebuild: the whole log of {ctx.ours().head():,} events, best of {repeat}")
    read_log(app)  # warm the page cache for all three
    raw, decoded, rebuilt = [], [], []
    counts: set[int] = set()
    for run in range(1, repeat + 1):
        raw.append(timed(lambda: read_log(app))[0])
        decoded.append(timed(lambda: read_log(app, app.mapper.to_domain_event))[0])
        result = rebuild_views(app, views)  # as shipped: its default batch size
        counts.add(result.events)
        rebuilt.append(result.rate)
        ctx.say(f"  run {run}: rebuild {rebuilt[-1]:,.0f} events/s, raw read "
                f"{raw[-1]:,.0f}, read+decode {decoded[-1]:,.0f}")

    raw_t, decoded_t, rebuilt_t = (Timing(tuple(r)) for r in (raw, decoded, rebuilt))
    ctx.say(f"  rebuild:     {rebuilt_t.describe('events/s')}")
    ctx.say(f"  raw read:    {raw_t.describe('events/s')}")
    ctx.say(f"  read+decode: {decoded_t.describe('events/s')}")
    ctx.say(f"  replayed {', '.join(f'{c:,}' for c in sorted(counts))} events; "
            f"{views.count_jobs():,} jobs in the read model")
    return [
        Row("rebuild: read models", rebuilt_t.best, raw_t.best, "events/s", TARGET,
            note="baseline: raw select_notifications paging, no decoding"),
        Row("  read + decode only", decoded_t.best, raw_t.best, "events/s", None,
            note="the library's decoding alone, for comparison"),
    ]
