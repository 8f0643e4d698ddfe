"""The registry of named benchmarks, and the rows they report.

A benchmark is a function `(ctx) -> list[Row]`, registered under a name with
`@register("name", "what it measures")`. Each row puts our figure beside a
baseline measured in the same run, so the ratio holds on any machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.context import Context


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

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else 0.0

    @property
    def verdict(self) -> str:
        if self.at_most is not None:
            return "ok" if self.ours <= self.at_most else "MISS"
        if self.target is None:
            return "info"
        return "ok" if self.ratio >= self.target else "MISS"

    @property
    def target_text(self) -> str:
        if self.at_most is not None:
            return f"<= {self.at_most:g} {self.unit}"
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


def timed(function: Callable[[], int]) -> float:
    """Run `function` (which returns how many items it did); items per second."""
    began = time.perf_counter()
    items = function()
    seconds = time.perf_counter() - began
    return items / seconds if seconds else 0.0
