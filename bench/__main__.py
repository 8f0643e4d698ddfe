"""`python -m bench`: run the registered benchmarks and print one table."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from bench import BENCHES
from bench.context import Context
from bench.registry import Row, render


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(f"{b.name} ({b.summary})" for b in BENCHES.values())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Print throughput figures, each beside a baseline measured in the "
                    f"same run. Benchmarks: {names}.")
    parser.add_argument("--events", type=int, default=100_000, metavar="N",
                        help="seed each store until it holds at least N events "
                             "(default: %(default)s)")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), metavar="NAME",
                        help="run only this benchmark (repeatable); one of: "
                             + ", ".join(sorted(BENCHES)))
    parser.add_argument("--database-url", default=None, metavar="URL",
                        help="the store to measure (sqlite:///path or postgresql://...); "
                             "it is seeded and its read models rebuilt, so use a scratch "
                             "one (default: a temporary SQLite file)")
    parser.add_argument("--commands", type=int, default=2_000, metavar="N",
                        help="cancel commands per timed run (default: %(default)s)")
    parser.add_argument("--big-events", type=int, default=1_000_000, metavar="N",
                        help="postgres: the size of the log for the second latency "
                             "measurement (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="timed runs per figure; the best is reported "
                             "(default: %(default)s)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar while seeding")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory of the stores")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def _machine() -> str:
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"eventsourcing {version('eventsourcing')}, SQLite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()}")


def _number(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def table(rows: Sequence[Row]) -> str:
    header = ("benchmark", "ours", "baseline", "unit", "ratio", "target", "")
    return render(header, [
        (row.name, _number(row.ours), _number(row.baseline) if row.baseline else "-",
         row.unit, f"{row.ratio:.2f}" if row.baseline else "-", row.target_text,
         row.verdict)
        for row in rows], right={1, 2, 4})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for bench in BENCHES.values():
            print(f"{bench.name:12} {bench.summary}")
        return 0
    selected = [BENCHES[name] for name in (args.only or BENCHES)]
    workdir = Path(tempfile.mkdtemp(prefix="smartscheduler-bench-"))
    ctx = Context(args, workdir)
    rows: list[Row] = []
    began = time.perf_counter()
    print(f"machine: {_machine()}")
    print(f"store:   {ctx.database_url}")
    try:
        for bench in selected:
            rows.extend(bench.run(ctx))
        head = ctx.head()
    finally:
        ctx.close()
    print()
    print(table(rows))
    print()
    store = ("" if head is None else
             f"events in the measured store: {head:,} (at least --events {args.events:,}); ")
    print(f"{store}ratio = ours / baseline; best of {args.repeat} runs; "
          f"{time.perf_counter() - began:,.0f}s in all")
    for row in rows:
        if row.note:
            print(f"  {row.name.strip()}: {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
