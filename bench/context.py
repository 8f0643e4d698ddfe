"""What the benchmarks share: the stores, seeded once per run.

`ours` is the Dispatch application on the database being measured (a temporary
SQLite file unless `--database-url` names another). `baseline` is a plain
`eventsourcing.application.Application` with the library's stock recorder for
the same backend, in its own store seeded to the same size: what a command
costs without our retry, idempotency and visibility layer.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID, uuid4

from eventsourcing.application import Application

from application.dispatch import Dispatch
from application.persistence import eventsourcing_env, prepare_database
from domain.job import Job
from domain.values import Actor, Request
from projections.backends import views_for
from projections.store import DispatchViews

EVENTS_PER_JOB = 2  # Created + AssignmentCreated
SEED_BATCH = 500  # jobs per save() while seeding
ACTOR = Actor("bench-dispatcher", ("Dispatcher",))
REGIONS = ("North", "South", "East", "West", "Default")
PRIORITIES = ("Normal", "Normal", "Normal", "High", "Rush")
SKILLS = ("hvac", "electrical", "plumbing", "roofing", "carpentry")
EPOCH = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


class BaselineApplication(Application[UUID]):
    """The library's own Application: stock recorder, no snapshots, no retries."""

    name = "Baseline"


def make_job(rng: random.Random, serial: int) -> Job:
    """A Created job with one Pending assignment (two pending events)."""
    start = EPOCH + timedelta(hours=rng.randrange(24 * 365))
    request = Request(ACTOR, request_id=f"seed-{serial}")
    job = Job.create(
        request=request, type="HVAC repair", description=f"Seeded job {serial}",
        duration_minutes=rng.choice((60, 90, 120, 240)), priority=rng.choice(PRIORITIES),
        region=rng.choice(REGIONS), required_skills=rng.sample(SKILLS, 2),
        location={"address": f"{serial} Main St", "latitude": 40.7, "longitude": -74.0},
        window_start=start, window_end=start + timedelta(hours=4))
    job.assign(request=request, contractor_id=uuid4(), start_utc=start,
               end_utc=start + timedelta(hours=2))
    return job


class Store:
    """An application and the ids of the live jobs seeded into it by this run."""

    def __init__(self, label: str, app: Application[UUID], *, seed: int,
                 progress: bool) -> None:
        self.label = label
        self.app = app
        self.progress = progress
        self._rng = random.Random(seed)
        self._live: list[UUID] = []
        self._serial = 0

    def head(self) -> int:
        """The position of the newest event (the number of events, barring gaps)."""
        return self.app.recorder.max_notification_id() or 0

    def fill(self, events: int) -> None:
        """Seed jobs until the store holds at least `events` events."""
        missing = events - self.head()
        if missing > 0:
            self.seed_jobs(math.ceil(missing / EVENTS_PER_JOB))

    def seed_jobs(self, count: int) -> None:
        """Build `count` assigned jobs and save them `SEED_BATCH` at a time."""
        from tqdm import tqdm

        with tqdm(total=count * EVENTS_PER_JOB, unit="event", unit_scale=True,
                  desc=f"seed {self.label}", disable=not self.progress,
                  leave=False) as bar:
            left = count
            while left:
                jobs = [make_job(self._rng, self._serial + i)
                        for i in range(min(SEED_BATCH, left))]
                self._serial += len(jobs)
                self.app.save(*jobs)
                self._live.extend(job.id for job in jobs)
                left -= len(jobs)
                bar.update(len(jobs) * EVENTS_PER_JOB)

    def take_live_jobs(self, count: int) -> list[UUID]:
        """`count` seeded, still-live jobs from all over the log, never handed out twice."""
        if len(self._live) < count:
            self.seed_jobs(count - len(self._live))
        self._rng.shuffle(self._live)
        taken, self._live = self._live[-count:], self._live[:-count]
        return taken


class Context:
    """Lazily built, shared by every benchmark of a run."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.database_url: str = args.database_url or f"sqlite:///{workdir / 'ours.db'}"
        self._ours: Store | None = None
        self._baseline: Store | None = None
        self._views: DispatchViews | None = None
        self._closers: list[Callable[[], Any]] = []

    @property
    def events(self) -> int:
        return int(self.args.events)

    def say(self, message: str) -> None:
        print(message, flush=True)

    def ours(self) -> Store:
        if self._ours is None:
            prepare_database(self.database_url)
            app = Dispatch(env=eventsourcing_env(self.database_url))
            self._closers.append(app.close)
            self._ours = Store("ours", app, seed=1, progress=self.args.progress)
            self._ours.fill(self.events)
        return self._ours

    def baseline(self) -> Store:
        if self._baseline is None:
            app = BaselineApplication(env=self.baseline_env())
            self._closers.append(app.close)
            self._baseline = Store("baseline", app, seed=1, progress=self.args.progress)
            self._baseline.fill(self.events)
        return self._baseline

    def head(self) -> int | None:
        """Events in the shared store, or None when no benchmark of the run used it."""
        return self._ours.head() if self._ours is not None else None

    def views(self) -> DispatchViews:
        if self._views is None:
            self._views = views_for(self.ours().app.factory)
        return self._views

    def baseline_env(self) -> dict[str, str]:
        """The library's stock persistence for the same backend, in its own store.

        Beside a temporary store it is temporary too; beside a named one it is
        kept (`<file>.baseline.db`, or the schema `<schema>_bench_baseline`).
        """
        url = urlsplit(self.database_url)
        if url.scheme == "sqlite":
            if self.args.database_url:
                path = Path(eventsourcing_env(self.database_url)["SQLITE_DBNAME"])
                baseline = path.with_name(f"{path.stem}.baseline{path.suffix or '.db'}")
            else:
                baseline = self.workdir / "baseline.db"
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(baseline)}
        query = dict(parse_qsl(url.query))
        query["schema"] = f"{query.get('schema', 'public')}_bench_baseline"
        baseline_url = urlunsplit(url._replace(query=urlencode(query)))
        prepare_database(baseline_url)
        env = eventsourcing_env(baseline_url)
        env.pop("APPLICATION_RECORDER_TOPIC", None)
        return env

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
