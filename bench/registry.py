"""The registry of named benchmarks, the rows they report, and what they share
to measure: `timed`, `Timing`, `percentile`, `in_turns`, `render`.

A benchmark is a function `(ctx) -> list[Row]`, registered under a name with
`@register("name", "what it measures")`. Each row puts our figure beside a
baseline measured in the same run, so the ratio holds on any machine.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bench.context import Context

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One line of the final table: our rate beside the baseline's."""

    name: str
    ours: float
    baseline: float
    unit: str
    target: float | None = None  # the least acceptable ours/baseline
    note: str = ""
    at_most: float | None = None  # the most acceptable `ours` (a latency, in `unit`)
    most: float | None = None  # the most acceptable ours/baseline (a latency's growth)

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else 0.0

    @property
    def verdict(self) -> str:
        if self.at_most is not None:
            return "ok" if self.ours <= self.at_most else "MISS"
        if self.most is not None:
            return "ok" if self.ratio <= self.most else "MISS"
        if self.target is None:
            return "info"
        return "ok" if self.ratio >= self.target else "MISS"

    @property
    def target_text(self) -> str:
        if self.at_most is not None:
            return f"<= {self.at_most:g} {self.unit}"
        if self.most is not None:
            return f"<= {self.most:.2f}"
        return f">= {self.target:.2f}" if self.target is not None else "-"


BenchFunction = Callable[["Context"], list[Row]]


@dataclass(frozen=True)
class Bench:
    name: str
    summary: str
    run: BenchFunction


BENCHES: dict[str, Bench] = {}


def register(name: str, summary: str) -> Callable[[BenchFunction], BenchFunction]:
    """Register a benchmark under `name` (the value of `--only`)."""

    def decorate(function: BenchFunction) -> BenchFunction:
        if name in BENCHES:
            raise ValueError(f"A benchmark named {name!r} is already registered")
        BENCHES[name] = Bench(name, summary, function)
        return function

    return decorate


@dataclass(frozen=True)
class Timing:
    """Rates of the repeated runs of one measurement (items per second)."""

    rates: tuple[float, ...]

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def describe(self, unit: str) -> str:
        runs = ", ".join(f"{rate:,.0f}" for rate in self.rates)
        return f"best {self.best:,.0f} {unit}, median {self.median:,.0f} (runs: {runs})"


def timed(function: Callable[[], int]) -> tuple[float, float]:
    """Run `function` (which returns how many items it did); its items per second
    of wall-clock time and of CPU time. The CPU rate leaves out waiting for the
    disk, so it shows what our layer adds more steadily than the wall clock."""
    wall, cpu = time.perf_counter(), time.process_time()
    items = function()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (items / wall if wall else 0.0), (items / cpu if cpu else 0.0)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 for p50), in the values' unit."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def in_turns(run: int, pair: Sequence[T]) -> Sequence[T]:
    """`pair` as given on odd runs and reversed on even ones, so each side goes
    first in turn: a burst of synced commits slows the disk for the next one."""
    return pair if run % 2 else pair[::-1]


def render(header: Sequence[str], lines: Sequence[Sequence[str]],
           right: Collection[int]) -> str:
    """A plain text table; the columns numbered in `right` are right-aligned."""
    rows = [header, *lines]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
                         ).rstrip()

    rule = "  ".join("-" * w for w in widths).rstrip()
    return "\n".join([line(header), rule, *(line(row) for row in lines)])
