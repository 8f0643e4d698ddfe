"""The whole Job lifecycle as a state machine, against a tiny reference model.

Every command is issued from every state, valid or not: the model predicts
whether it succeeds or which error refuses it. After each step the aggregates
must agree with the model, with their own stored events, with a replay of
those events, and (once the runner has caught up) with the read models.

Each rule picks its job (and assignment) either among all of them or among
those the command fits; both are drawn, so invalid states stay as likely to
be tried as the lifecycle is to be walked all the way to its end.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from application.errors import JobNotFound
from application.settings import Settings
from domain.errors import (
    AssignmentNotCancellable,
    AssignmentNotConfirmable,
    AssignmentNotFound,
    Forbidden,
    InvalidJob,
    InvalidTransition,
    JobAlreadyCancelled,
    JobCompleted,
    JobNotAssignable,
)
from domain.job import Job
from domain.values import Actor, Priority
from smartscheduler.bootstrap import build_dispatch, build_services
from tests.factories import NOW, admin, contractor, dispatcher, job_fields, request, slot
from tests.resources import resource

TERMINAL = {"Completed", "Cancelled"}
UNSTARTED = {"Pending", "Confirmed"}
LIVE = UNSTARTED | {"InProgress"}
MAX_JOBS = 8
MAX_LIVE_JOBS = 2
PRIORITIES = st.sampled_from(list(Priority))
REGIONS = st.sampled_from(["North", "South"])
STAFF_COMMANDS = ["assign", "cancel assignment", "start", "complete", "cancel"]

Model = dict[str, Any]


def replay(events: Any) -> Job | None:
    """Fold stored events into an aggregate, as the repository would."""
    job = None
    for event in events:
        job = event.mutate(job)
    return job


class JobLifecycle(RuleBasedStateMachine):
    """Dispatch on one SQLite file, with its runner, beside a model of plain dicts.

    The model: `model[job_id] = {"status", "events", "assignments"}` where
    `assignments[assignment_id] = {"status", "contractor"}`, in creation order;
    `events` counts the events the job should have stored.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        directory.mkdir(parents=True)
        self.url = f"sqlite:///{directory / 'lifecycle.db'}"
        self.services = build_services(Settings(database_url=self.url),
                                       run_projections=True)
        self.app = self.services.app
        self.views = self.services.views
        self.model: dict[UUID, Model] = {}
        self.became_terminal: dict[UUID, str] = {}

    def teardown(self) -> None:
        self.services.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # Helpers --------------------------------------------------------------

    def attempt(self, expected_error: type[Exception] | None, command: Any) -> Any:
        """Run the command; it must succeed, or fail with exactly the predicted error.

        A refused command must store nothing.
        """
        if expected_error is None:
            return command()
        head = self.app.head_position()
        with pytest.raises(expected_error) as raised:
            command()
        assert type(raised.value) is expected_error
        assert self.app.head_position() == head
        return None

    def pick_job(self, data: st.DataObject, fits: Callable[[Model], bool]) -> UUID:
        """Any job, or one the command fits or finds interesting (when there is one)."""
        fitting = [job_id for job_id, job in self.model.items() if fits(job)]
        if fitting and data.draw(st.booleans(), label="pick a job it fits"):
            return data.draw(st.sampled_from(fitting), label="fitting job")
        return data.draw(st.sampled_from(list(self.model)), label="any job")

    def pick_assignment(self, job_id: UUID, data: st.DataObject,
                        fits: Callable[[Model], bool]) -> UUID:
        """One of the job's assignments (preferably one the command fits), else
        another job's, or one that does not exist."""
        own = self.model[job_id]["assignments"]
        fitting = [a for a, assignment in own.items() if fits(assignment)]
        foreign = [a for other, job in self.model.items() if other != job_id
                   for a in job["assignments"]]
        choices = [*(["fitting"] * 3 if fitting else []), *(["own"] if own else []),
                   *(["foreign"] if foreign else []), "unknown"]
        choice = data.draw(st.sampled_from(choices), label="which assignment")
        if choice == "unknown":
            return uuid4()
        pool = {"fitting": fitting, "own": list(own), "foreign": foreign}[choice]
        return data.draw(st.sampled_from(pool), label=f"{choice} assignment")

    def contractor_of(self, assignment_id: UUID) -> UUID:
        for job in self.model.values():
            if assignment_id in job["assignments"]:
                return job["assignments"][assignment_id]["contractor"]
        return uuid4()

    def issue(self, command: str, job_id: UUID, actor: Actor) -> Any:
        app, asked = self.app, request(actor)
        return {
            "assign": lambda: app.assign(asked, job_id, contractor_id=uuid4(), **slot()),
            "confirm": lambda: app.confirm_assignment(asked, job_id, uuid4()),
            "cancel assignment": lambda: app.cancel_assignment(asked, job_id, uuid4()),
            "start": lambda: app.start_job(asked, job_id),
            "complete": lambda: app.complete_job(asked, job_id),
            "cancel": lambda: app.cancel_job(asked, job_id),
        }[command]()

    def new_job(self, priority: Priority, region: str) -> None:
        outcome = self.app.create_job(request(), **job_fields(
            priority=str(priority), region=region))
        self.model[outcome.job.id] = {"status": "Created", "events": 1, "assignments": {}}

    # Rules ----------------------------------------------------------------

    @initialize(priority=PRIORITIES, region=REGIONS)
    def create_the_first_job(self, priority: Priority, region: str) -> None:
        self.new_job(priority, region)

    @precondition(lambda self: len(self.model) < MAX_JOBS and sum(
        job["status"] not in TERMINAL for job in self.model.values()) < MAX_LIVE_JOBS)
    @rule(priority=PRIORITIES, region=REGIONS)
    def create_job(self, priority: Priority, region: str) -> None:
        self.new_job(priority, region)

    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        job_id = self.pick_job(data, lambda job: job["status"] not in TERMINAL)
        job = self.model[job_id]
        known = list(dict.fromkeys(a["contractor"] for a in job["assignments"].values()))
        reuse = bool(known) and data.draw(st.booleans(), label="a known contractor")
        contractor_id = (data.draw(st.sampled_from(known), label="contractor") if reuse
                         else uuid4())
        error: type[Exception] | None
        if job["status"] in TERMINAL or any(
                a["contractor"] == contractor_id and a["status"] in LIVE
                for a in job["assignments"].values()):
            error = JobNotAssignable
        else:
            error = None
        outcome = self.attempt(error, lambda: self.app.assign(
            request(), job_id, contractor_id=contractor_id, **slot()))
        if outcome is not None:
            assignment = outcome.job.assignments[-1]
            assert assignment.contractor_id == contractor_id
            assert assignment.id not in job["assignments"]
            job["assignments"][assignment.id] = {"status": "Pending",
                                                 "contractor": contractor_id}
            if job["status"] == "Created":
                job["status"] = "Assigned"
            job["events"] += 1

    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        job_id = self.pick_job(data, lambda job: job["status"] not in TERMINAL and any(
            a["status"] == "Pending" for a in job["assignments"].values()))
        job = self.model[job_id]
        assignment_id = self.pick_assignment(job_id, data,
                                             lambda a: a["status"] == "Pending")
        who = data.draw(st.sampled_from(["a dispatcher", "its contractor", "an admin",
                                         "its contractor", "a stranger"]),
                        label="who confirms")
        actor = {"a dispatcher": dispatcher, "an admin": admin,
                 "its contractor": lambda: contractor(self.contractor_of(assignment_id)),
                 "a stranger": contractor}[who]()
        assignment = job["assignments"].get(assignment_id)
        on_job = any(str(a["contractor"]) == actor.sub for a in job["assignments"].values())
        error: type[Exception] | None
        if not actor.is_staff and not on_job:
            error = JobNotFound
        elif assignment is None:
            error = AssignmentNotFound
        elif not actor.is_staff and str(assignment["contractor"]) != actor.sub:
            error = Forbidden
        elif job["status"] in TERMINAL or assignment["status"] != "Pending":
            error = AssignmentNotConfirmable
        else:
            error = None
        outcome = self.attempt(error, lambda: self.app.confirm_assignment(
            request(actor), job_id, assignment_id))
        if outcome is not None:
            assignment["status"] = "Confirmed"
            job["events"] += 1

    @rule(data=st.data())
    def cancel_assignment(self, data: st.DataObject) -> None:
        job_id = self.pick_job(data, lambda job: job["status"] not in TERMINAL and any(
            a["status"] in UNSTARTED for a in job["assignments"].values()))
        job = self.model[job_id]
        assignment_id = self.pick_assignment(job_id, data,
                                             lambda a: a["status"] in UNSTARTED)
        assignment = job["assignments"].get(assignment_id)
        error: type[Exception] | None
        if assignment is None:
            error = AssignmentNotFound
        elif job["status"] in TERMINAL or assignment["status"] not in UNSTARTED:
            error = AssignmentNotCancellable
        else:
            error = None
        outcome = self.attempt(error, lambda: self.app.cancel_assignment(
            request(), job_id, assignment_id, reason="Rescheduled"))
        if outcome is not None:
            assignment["status"] = "Cancelled"
            others_left = any(a["status"] in UNSTARTED for a in job["assignments"].values())
            if job["status"] == "Assigned" and not others_left:
                job["status"] = "Created"
            job["events"] += 1

    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        job_id = self.pick_job(data, lambda job: job["status"] == "Assigned")
        job = self.model[job_id]
        ready = [a for a in job["assignments"].values() if a["status"] in UNSTARTED]
        error = None if job["status"] == "Assigned" and ready else InvalidTransition
        if self.attempt(error, lambda: self.app.start_job(request(), job_id)):
            for assignment in ready:
                assignment["status"] = "InProgress"
            job["status"] = "InProgress"
            job["events"] += 1

    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job_id = self.pick_job(data, lambda job: job["status"] == "InProgress")
        job = self.model[job_id]
        error = None if job["status"] == "InProgress" else InvalidTransition
        if self.attempt(error, lambda: self.app.complete_job(request(), job_id)):
            for assignment in job["assignments"].values():
                if assignment["status"] == "InProgress":
                    assignment["status"] = "Completed"
            job["status"] = "Completed"
            job["events"] += 1

    @rule(data=st.data())
    def cancel_job(self, data: st.DataObject) -> None:
        # Preferably a job with assignments still to cancel along with it.
        job_id = self.pick_job(data, lambda job: any(
            a["status"] in LIVE for a in job["assignments"].values()))
        job = self.model[job_id]
        error = {"Completed": JobCompleted, "Cancelled": JobAlreadyCancelled}.get(
            job["status"])
        if self.attempt(error, lambda: self.app.cancel_job(request(), job_id,
                                                            reason="Customer called")):
            live = [a for a in job["assignments"].values() if a["status"] in LIVE]
            for assignment in live:
                assignment["status"] = "Cancelled"
            job["status"] = "Cancelled"
            job["events"] += len(live) + 1

    @rule(refusal=st.sampled_from(["an invalid job", "an unknown job",
                                   "a contractor's staff command"]),
          data=st.data())
    def refused_commands(self, refusal: str, data: st.DataObject) -> None:
        if refusal == "an invalid job":
            fields = data.draw(st.sampled_from([
                job_fields(window_end=NOW - timedelta(hours=1)),
                job_fields(duration_minutes=0),
                job_fields(window_start=NOW.replace(tzinfo=None))]), label="fields")
            self.attempt(InvalidJob, lambda: self.app.create_job(request(), **fields))
        elif refusal == "an unknown job":
            command = data.draw(st.sampled_from([*STAFF_COMMANDS, "confirm"]),
                                label="command")
            self.attempt(JobNotFound, lambda: self.issue(command, uuid4(), admin()))
        else:
            # Even the job's own contractor: only staff may issue these.
            job_id = data.draw(st.sampled_from(list(self.model)), label="job")
            command = data.draw(st.sampled_from(STAFF_COMMANDS), label="command")
            known = [a["contractor"] for a in self.model[job_id]["assignments"].values()]
            actor = contractor(data.draw(st.sampled_from(known), label="contractor")
                               if known else None)
            self.attempt(Forbidden, lambda: self.issue(command, job_id, actor))

    @rule()
    def a_fresh_application_on_the_same_file_rebuilds_every_job(self) -> None:
        fresh = build_dispatch(Settings(database_url=self.url))
        try:
            for job_id in self.model:
                assert resource(fresh.get_job(job_id)) == resource(
                    self.app.get_job(job_id))
        finally:
            fresh.close()

    # Invariants -----------------------------------------------------------

    @invariant()
    def every_aggregate_agrees_with_the_model_its_events_and_the_read_models(self) -> None:
        assert self.views.wait_for(self.app.head_position(), timeout=10)
        assert self.views.count_jobs() == len(self.model)
        assert self.views.list_assignments(page_size=1).total == sum(
            len(job["assignments"]) for job in self.model.values())
        for job_id, expected in self.model.items():
            job = self.app.repository.get(job_id)
            events = list(self.app.events.get(job_id))
            # The model.
            assert job.status == expected["status"]
            assert [(a.id, a.status) for a in job.assignments] == [
                (a, m["status"]) for a, m in expected["assignments"].items()]
            # Terminal states stay terminal.
            if job_id in self.became_terminal:
                assert job.status == self.became_terminal[job_id]
            elif job.status in TERMINAL:
                self.became_terminal[job_id] = job.status
            if job.status == "Cancelled":
                assert not [a for a in job.assignments if a.status in LIVE]
            # The stored events, and a replay of them.
            assert job.version == len(events) == expected["events"]
            document = resource(job)
            assert resource(replay(events)) == document
            # The read models.
            assert resource(self.views.get_job(str(job_id))) == document


def test_the_job_lifecycle_follows_its_reference_model(tmp_path):
    runs = itertools.count()
    run_state_machine_as_test(
        lambda: JobLifecycle(tmp_path / f"run-{next(runs)}"),
        settings=settings(stateful_step_count=30),
    )
