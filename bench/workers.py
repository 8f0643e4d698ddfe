"""Spawned worker processes of the PostgreSQL benchmarks, started together.

`Workers(name, target, args, count)` spawns `count` processes ('spawn' start
method) running `target(index, barrier, tasks, results, *args)`. Each takes
tasks from its own queue, waits on the shared barrier so that all start at
once, and puts `(index, kind, payload)` on `results`; an exception is reported
as `(index, "error", traceback)` and raised here. `run` hands one task to each
process and returns the wall-clock time from the start signal to the last one
done, with what each reported.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 1800.0


def _main(target: Callable[..., None], index: int, barrier: Any, tasks: Any,
          results: Any, *args: Any) -> None:
    try:
        target(index, barrier, tasks, results, *args)
    except BaseException:
        results.put((index, "error", traceback.format_exc()))


class Workers:
    """`count` spawned processes of `target`, run together on a shared start signal."""

    def __init__(self, name: str, target: Callable[..., None], args: Sequence[Any],
                 count: int) -> None:
        mp = multiprocessing.get_context("spawn")
        self.name, self.count = name, count
        self.barrier = mp.Barrier(count + 1)
        self.results = mp.Queue()
        self.tasks = [mp.Queue() for _ in range(count)]
        self.processes = [
            mp.Process(target=_main, name=f"bench-{name}-{i}", daemon=True,
                       args=(target, i, self.barrier, self.tasks[i], self.results, *args))
            for i in range(count)]
        for process in self.processes:
            process.start()

    def receive(self, kind: str, timeout: float) -> Any:
        """The payload of the next report, which must be of `kind`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                index, got, payload = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in self.processes if p.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} workers: no answer ({kind}); "
                                       f"exited: {dead or 'none'}") from None
                continue
            if got == "error":
                raise RuntimeError(f"{self.name} worker {index} failed:\n{payload}")
            if got != kind:
                raise RuntimeError(f"{self.name} worker {index}: {got!r}, not {kind!r}")
            return payload

    def wait_until_ready(self) -> None:
        for _ in range(self.count):
            self.receive("ready", STARTUP_TIMEOUT)

    def run(self, tasks: Sequence[Any]) -> tuple[float, list[Any]]:
        """Task i to process i, all started at once; (seconds, what each reported)."""
        for queue_, task in zip(self.tasks, tasks, strict=True):
            queue_.put(task)
        self.barrier.wait(timeout=STARTUP_TIMEOUT)
        began = time.perf_counter()
        done = [self.receive("done", RUN_TIMEOUT) for _ in range(self.count)]
        return time.perf_counter() - began, done

    def stop(self) -> None:
        for tasks in self.tasks:
            with contextlib.suppress(Exception):
                tasks.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()  # one of the processes this object started
                process.join(timeout=10)


def shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal counts."""
    return [total // parts + (i < total % parts) for i in range(parts)]
