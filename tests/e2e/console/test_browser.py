"""The console in a real browser (Debian's Chromium through pytest-playwright)
against a real server process: the stories of console.md, by the accessible
names a screen reader would use."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.console.support import (
    Console,
    assert_accessible,
    assign,
    create_job,
    history_types,
    live,
    region,
    screenshot,
)
from tests.e2e.servers import Server

pytestmark = pytest.mark.slow

OpenConsole = Callable[..., Console]


def test_development_sign_in_and_sign_out(console: OpenConsole) -> None:
    page = console().page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/console/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(page)
    screenshot(page, "sign-in", shows=["Sign in", "Role", "User id"])
    page.get_by_label("Role").select_option("Dispatcher")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    # The token is in session storage, never a cookie the API would take.
    assert page.context.cookies() == []
    assert page.evaluate("sessionStorage.getItem('smartscheduler.token')")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('smartscheduler.token')") is None


def test_board_filters_and_paging(console: OpenConsole, console_server: Server) -> None:
    mine = region()
    for number in range(27):
        create_job(console_server, region=mine, type=f"Boiler service {number:02d}",
                   priority="Rush" if number % 9 == 0 else "Normal")
    cancelled = create_job(console_server, region=mine, type="Gutter cleaning")
    console_server.client().post(f"/api/jobs/{cancelled['id']}/cancel", {"reasonCode": "Weather"})

    page = console().signed_in()
    jobs = page.get_by_role("table", name="Jobs")
    page.get_by_label("Region").fill(mine)
    expect(page.get_by_text("Page 1 of 2 · 28 jobs")).to_be_visible()
    expect(jobs.locator("tbody tr")).to_have_count(25)
    expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    assert_accessible(page)
    screenshot(page, "job-board", shows=["Jobs", "Boiler service", "Page 1 of 2"])

    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("Page 2 of 2 · 28 jobs")).to_be_visible()
    expect(jobs.locator("tbody tr")).to_have_count(3)
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(jobs.locator("tbody tr")).to_have_count(25)

    page.get_by_label("Status").select_option("Cancelled")
    expect(jobs.locator("tbody tr")).to_have_count(1)
    expect(jobs.get_by_role("link", name="Gutter cleaning")).to_be_visible()
    page.get_by_label("Status").select_option("")
    page.get_by_label("Priority").select_option("Rush")
    expect(jobs.locator("tbody tr")).to_have_count(3)  # 0, 9, 18
    page.get_by_label("Priority").select_option("High")
    expect(jobs).to_contain_text("No job matches these filters.")

    # The row's type is a link to the job's page.
    page.get_by_label("Priority").select_option("")
    page.get_by_label("Status").select_option("Cancelled")
    jobs.get_by_role("link", name="Gutter cleaning").click()
    expect(page.get_by_role("heading", name="Gutter cleaning")).to_be_visible()
    expect(page.get_by_label("Job status")).to_have_text("Cancelled")


def test_the_board_at_phone_size(console: OpenConsole, console_server: Server) -> None:
    mine = region()
    create_job(console_server, region=mine, type="Water heater install")
    page = console(viewport={"width": 390, "height": 844}).signed_in()
    page.get_by_label("Region").fill(mine)
    jobs = page.get_by_role("table", name="Jobs")
    expect(jobs.get_by_role("link", name="Water heater install")).to_be_visible()
    expect(jobs.locator("tbody tr").first).to_contain_text("Created")
    for name in ("New job", "Next page", "Sign out"):
        expect(page.get_by_role("button", name=name)).to_be_in_viewport()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px screen"
    assert_accessible(page)
    screenshot(page, "job-board-phone", shows=["Jobs", "Water heater install"])


def test_create_assign_confirm_start_complete(console: OpenConsole) -> None:
    dispatcher = console().signed_in()
    dispatcher.get_by_role("button", name="New job").click()
    dialog = dispatcher.get_by_role("dialog", name="New job")
    expect(dialog.get_by_label("Type")).to_be_focused()
    dialog.get_by_label("Type").fill("Roof leak inspection")
    dialog.get_by_label("Duration (minutes)").fill("90")
    dialog.get_by_label("Priority").select_option("High")
    dialog.get_by_label("Region").fill(region())
    dialog.get_by_label("Window start").fill("2031-03-04T09:00")
    dialog.get_by_label("Window end").fill("2031-03-04T12:00")
    dialog.get_by_label("Description").fill("Water stain above the kitchen")
    assert_accessible(dispatcher)
    screenshot(dispatcher, "new-job", shows=["New job", "Create job"])
    dialog.get_by_role("button", name="Create job").click()

    expect(dispatcher.get_by_role("heading", name="Roof leak inspection")).to_be_visible()
    status = dispatcher.get_by_label("Job status")
    expect(status).to_have_text("Created")
    expect(dispatcher.get_by_role("button", name="Start")).to_be_disabled()
    expect(dispatcher.get_by_role("button", name="Complete")).to_be_disabled()

    contractor_id = str(uuid.uuid4())
    dispatcher.get_by_role("button", name="Assign contractor").click()
    assigning = dispatcher.get_by_role("dialog", name="Assign contractor")
    assigning.get_by_label("Contractor id").fill(contractor_id)
    assigning.get_by_role("button", name="Assign").click()
    expect(status).to_have_text("Assigned")
    assignments = dispatcher.get_by_role("table", name="Assignments")
    expect(assignments).to_contain_text(contractor_id)
    expect(assignments).to_contain_text("Pending")
    live(dispatcher)

    # The contractor, in a browser of their own, sees this assignment only.
    contractor = console().signed_in("Contractor", contractor_id)
    mine = contractor.get_by_role("table", name="My assignments")
    row = mine.locator("tbody tr").filter(has_text="Roof leak inspection")
    expect(row).to_contain_text("Pending")
    assert_accessible(contractor)
    screenshot(contractor, "contractor-home", shows=["My assignments", "Roof leak inspection"])
    row.get_by_role("button", name="Confirm").click()
    expect(row).to_contain_text("Confirmed")
    expect(row.get_by_role("button", name="Confirm")).to_have_count(0)

    # The dispatcher's page follows without a reload.
    expect(assignments).to_contain_text("Confirmed")
    dispatcher.get_by_role("button", name="Start").click()
    expect(status).to_have_text("InProgress")
    dispatcher.get_by_role("button", name="Complete").click()
    expect(status).to_have_text("Completed")
    expect(dispatcher.get_by_role("button", name="Cancel job")).to_be_disabled()
    history = dispatcher.get_by_role("region", name="History")
    for event in ("JobCreated", "AssignmentCreated", "AssignmentConfirmed", "JobStarted",
                  "JobCompleted"):
        expect(history).to_contain_text(event)
    assert_accessible(dispatcher)
    screenshot(dispatcher, "job-page", shows=["Roof leak inspection", "History", "Completed"])

    # A past version, clearly marked, with its actions off.
    history.get_by_role("link", name=re.compile(r"Version 1\b")).click()
    expect(dispatcher.get_by_text("Past version 1 of")).to_be_visible()
    expect(dispatcher.get_by_label("Job status")).to_have_text("Created")
    expect(dispatcher.get_by_role("button", name="Assign contractor")).to_be_disabled()
    assert_accessible(dispatcher)
    screenshot(dispatcher, "job-past-version", shows=["Past version 1 of"])
    dispatcher.get_by_role("link", name="Back to the current version").click()
    expect(dispatcher.get_by_label("Job status")).to_have_text("Completed")


def test_the_contractors_view_is_restricted(console: OpenConsole,
                                            console_server: Server) -> None:
    contractor_id = str(uuid.uuid4())
    theirs = assign(console_server, create_job(console_server, type="Furnace check"),
                    contractor_id)
    other = assign(console_server, create_job(console_server, type="Someone else's job"))
    page = console().signed_in("Contractor", contractor_id)
    mine = page.get_by_role("table", name="My assignments")
    expect(mine).to_contain_text("Furnace check")
    expect(mine).not_to_contain_text("Someone else's job")
    for name in ("New job", "Cancel job", "Assign contractor", "Start", "Complete"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("table", name="Jobs")).to_have_count(0)
    # Another job's page is not reachable: the contractor stays on their home.
    for job in (other, theirs):
        page.goto(f"/console/jobs/{job['id']}")
        expect(page.get_by_role("heading", name="My assignments")).to_be_visible()
        expect(page.get_by_text("Someone else's job")).to_have_count(0)


def _open_cancel(page: object) -> object:
    page.get_by_role("button", name="Cancel job").click()  # type: ignore[attr-defined]
    dialog = page.get_by_role("dialog", name="Cancel job")  # type: ignore[attr-defined]
    expect(dialog).to_be_visible()
    return dialog


def test_cancel_with_a_reason_is_seen_live_elsewhere(console: OpenConsole,
                                                     console_server: Server) -> None:
    mine = region()
    job = assign(console_server, create_job(console_server, region=mine, type="Boiler repair"))
    assign(console_server, job)
    watcher = console().signed_in()
    watcher.get_by_label("Region").fill(mine)
    row = watcher.get_by_role("table", name="Jobs").locator("tbody tr").filter(
        has_text="Boiler repair")
    expect(row).to_contain_text("Assigned")
    live(watcher)

    page = console().signed_in()
    page.goto(f"/console/jobs/{job['id']}")
    dialog = _open_cancel(page)
    expect(dialog.get_by_label("Reason code")).to_be_focused()
    expect(dialog).to_contain_text("2 live assignments will be cancelled")
    dialog.get_by_label("Reason code").select_option("CustomerRequest")
    dialog.get_by_label("Reason", exact=True).fill("Customer sold the house")
    expect(dialog).to_contain_text("23 / 500")
    assert_accessible(page)
    screenshot(page, "cancel-dialog", shows=["Cancel job", "Confirm cancellation", "Keep job"])
    dialog.get_by_role("button", name="Confirm cancellation").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_label("Job status")).to_have_text("Cancelled")
    expect(page.get_by_role("region", name="History")).to_contain_text("JobCancelled")
    expect(page.get_by_role("table", name="Assignments").locator("tbody tr").filter(
        has_text="Cancelled")).to_have_count(2)
    screenshot(page, "job-cancelled", shows=["Cancelled", "JobCancelled",
                                              "Customer sold the house"])

    # The other dispatcher's board changed without a reload, with a notice.
    expect(row).to_contain_text("Cancelled")
    notice = watcher.get_by_role("status")
    expect(notice).to_contain_text("Boiler repair")
    expect(notice).to_contain_text("Customer sold the house")
    assert history_types(console_server, job["id"]).count("AssignmentCancelled") == 2


@pytest.mark.console_problems(412)  # the cancel sent with the version shown
def test_a_job_changed_while_the_dialog_was_open(console: OpenConsole,
                                                 console_server: Server) -> None:
    job = create_job(console_server, type="Window replacement")
    page = console().signed_in()
    page.goto(f"/console/jobs/{job['id']}")
    dialog = _open_cancel(page)
    expect(dialog).to_contain_text("No live assignment will be cancelled")
    changed = assign(console_server, job)  # someone else, through the API
    dialog.get_by_label("Reason", exact=True).fill("Duplicate of another job")
    dialog.get_by_role("button", name="Confirm cancellation").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("changed")
    expect(alert).to_contain_text("Precondition failed")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Job status")).to_have_text("Assigned")
    expect(dialog).to_contain_text("1 live assignment will be cancelled")
    assert history_types(console_server, job["id"]).count("JobCancelled") == 0

    dialog.get_by_role("button", name="Confirm cancellation").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_label("Job status")).to_have_text("Cancelled")
    assert changed["version"] == 2
    assert history_types(console_server, job["id"]).count("JobCancelled") == 1


def test_a_double_click_cancels_once(console: OpenConsole, console_server: Server) -> None:
    job = assign(console_server, create_job(console_server, type="Chimney sweep"))
    page = console().signed_in()
    page.goto(f"/console/jobs/{job['id']}")
    dialog = _open_cancel(page)
    dialog.get_by_role("button", name="Confirm cancellation").dblclick()
    expect(page.get_by_label("Job status")).to_have_text("Cancelled")
    expect(page.get_by_role("alert")).to_have_count(0)
    events = history_types(console_server, job["id"])
    assert events.count("JobCancelled") == 1
    assert events.count("AssignmentCancelled") == 1


def test_a_keyboard_only_cancel(console: OpenConsole, console_server: Server) -> None:
    job = create_job(console_server, type="Garage door repair")
    page = console().signed_in()
    page.goto(f"/console/jobs/{job['id']}")
    expect(page.get_by_label("Job status")).to_have_text("Created")
    cancel = page.get_by_role("button", name="Cancel job")
    for _ in range(40):
        page.keyboard.press("Tab")
        if cancel.evaluate("button => document.activeElement === button"):
            break
    expect(cancel).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Cancel job")
    expect(dialog.get_by_label("Reason code")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_label("Reason", exact=True)).to_be_focused()
    page.keyboard.type("Customer found another company")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Keep job")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Confirm cancellation")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.get_by_label("Job status")).to_have_text("Cancelled")
    # Focus came back to the page, not lost on <body>.
    assert page.evaluate("document.activeElement !== document.body")
    # Escape closes the dialog and gives focus back to its button.
    other = create_job(console_server, type="Fence repair")
    page.goto(f"/console/jobs/{other['id']}")
    cancel.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(cancel).to_be_focused()


@pytest.mark.console_problems(404, 422)  # an unknown job; a create refused
def test_every_problem_is_shown(console: OpenConsole, console_server: Server) -> None:
    job = create_job(console_server, type="Sprinkler check")
    console_server.client().post(f"/api/jobs/{job['id']}/cancel", {"reasonCode": "Duplicate"})
    page = console().signed_in()
    page.goto(f"/console/jobs/{uuid.uuid4()}")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Job not found")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    # A refused create shows the problem's title and detail in the dialog.
    page.goto("/console/")
    page.get_by_role("button", name="New job").click()
    dialog = page.get_by_role("dialog", name="New job")
    dialog.get_by_label("Type").fill("Bad window")
    dialog.get_by_label("Window end").fill("2020-01-01T08:00")
    dialog.get_by_role("button", name="Create job").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Validation failed")
    expect(dialog).to_be_visible()
