// The parts of a job's page, built from a job (the version shown) and what the
// page passes in: pure functions of their arguments, rendered by job.js.

import { h, liveAssignments, statusBadge, when, windowText } from "./ui.js";

// What a 412 says, before the problem's own detail.
export const CHANGED_LEAD = "This job changed since you loaded it: the page now shows its latest "
  + "version. Check it, then try again.";

export const CANCELLABLE = new Set(["Created", "Assigned", "InProgress"]);

function actionButton(label, id, allowed, onclick, kind = "") {
  return h("button", { type: "button", class: `button ${kind}`, id, disabled: !allowed,
                       onclick }, label);
}

// Each action is enabled only when the job's status allows it (never on a past
// version: `canAct` false); `on` holds what each one does.
export function actionsBar(view, canAct, on) {
  const status = view.status;
  const hasStartable = liveAssignments(view).some(
    (a) => a.status === "Pending" || a.status === "Confirmed");
  return h("div", { class: "actions", role: "group", "aria-label": "Job actions" },
    actionButton("Assign contractor", "assign-contractor",
      canAct && (status === "Created" || status === "Assigned"), on.assign),
    actionButton("Start", "start-job", canAct && status === "Assigned" && hasStartable,
      on.start),
    actionButton("Complete", "complete-job", canAct && status === "InProgress", on.complete),
    actionButton("Cancel job", "cancel-job", canAct && CANCELLABLE.has(status),
      on.cancel, "danger"));
}

export function detailsSection(view) {
  const status = view.status;
  return h("dl", { class: "details" },
    h("div", {}, h("dt", {}, "Status"),
      h("dd", { id: "job-status", class: `status-text status-${status.toLowerCase()}`,
                "aria-label": "Job status" }, status)),
    h("div", {}, h("dt", {}, "Priority"), h("dd", {}, view.priority)),
    h("div", {}, h("dt", {}, "Region"), h("dd", {}, view.region)),
    h("div", {}, h("dt", {}, "Duration"), h("dd", {}, `${view.durationMinutes} min`)),
    h("div", { class: "span2" }, h("dt", {}, "Service window"),
      h("dd", {}, windowText(view.serviceWindow.start, view.serviceWindow.end))),
    view.requiredSkills && view.requiredSkills.length
      ? h("div", {}, h("dt", {}, "Skills"), h("dd", {}, view.requiredSkills.join(", "))) : null,
    view.location ? h("div", { class: "span2" }, h("dt", {}, "Location"),
      h("dd", {}, view.location.address || `${view.location.latitude}, ${view.location.longitude}`)) : null,
    h("div", {}, h("dt", {}, "Version"), h("dd", {}, String(view.version))),
    h("div", {}, h("dt", {}, "Updated"), h("dd", {}, when(view.updatedAt))),
    view.description ? h("div", { class: "span-all" }, h("dt", {}, "Description"),
      h("dd", { class: "prose" }, view.description)) : null);
}

export function cancellationSection(view) {
  return view.cancellation ? h("section", { class: "cancellation card",
      "aria-labelledby": "cancellation-title" },
    h("h2", { id: "cancellation-title" }, "Cancellation"),
    h("p", {}, h("strong", {}, view.cancellation.reasonCode),
      view.cancellation.reason ? ` — ${view.cancellation.reason}` : ""),
    h("p", { class: "muted" }, `By ${view.cancellation.cancelledBy} on ${when(view.cancellation.cancelledAt)}`))
    : null;
}

// `actions` is null on a past version; else { confirm(a), unassign(a) }.
export function assignmentsSection(view, actions) {
  const canAct = actions !== null;
  const status = view.status;
  const assignmentRows = (view.assignments || []).map((a) => {
    const mayChange = canAct && (a.status === "Pending" || a.status === "Confirmed")
      && CANCELLABLE.has(status);
    return h("tr", { dataset: { assignmentId: a.id } },
      h("td", { class: "mono" }, a.contractorId),
      h("td", {}, windowText(a.startUtc, a.endUtc)),
      h("td", {}, statusBadge(a.status)),
      h("td", { class: "row-actions" },
        canAct && a.status === "Pending" && CANCELLABLE.has(status)
          ? h("button", { type: "button", class: "button small",
              onclick: () => actions.confirm(a) }, "Confirm")
          : null,
        mayChange ? h("button", { type: "button", class: "button small quiet",
              onclick: () => actions.unassign(a) }, "Unassign")
          : null));
  });
  return h("section", { class: "card", "aria-labelledby": "assignments-title" },
    h("h2", { id: "assignments-title" }, "Assignments"),
    h("div", { class: "table-wrap" },
      h("table", { class: "grid", "aria-labelledby": "assignments-title" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Contractor"),
          h("th", { scope: "col" }, "Window"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, assignmentRows.length ? assignmentRows
          : h("tr", {}, h("td", { colspan: "4", class: "empty" }, "No assignments yet."))))));
}

// `events` null: the history could not be loaded; `job`: the current version.
export function historySection(events, view, job, jobId) {
  return h("section", { class: "card history", role: "region",
                         "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, "History"),
    events === null ? h("p", { class: "muted" }, "The history could not be loaded.")
      : h("ol", { class: "timeline" }, events.map((e) => {
        const current = e.version === view.version;
        return h("li", { class: current ? "current" : "" },
          h("a", { href: e.version === job.version ? `/console/jobs/${jobId}`
                     : `/console/jobs/${jobId}?version=${e.version}`,
                   "data-link": true, "aria-current": current ? "true" : false,
                   class: "event-link" },
            h("span", { class: "event-version" }, `Version ${e.version}`),
            h("span", { class: "event-type" }, e.type)),
          h("span", { class: "event-meta" },
            h("time", { datetime: e.occurredAt }, when(e.occurredAt)),
            ` · by ${e.actor ? `${e.actor.sub}${e.actor.roles && e.actor.roles.length
              ? ` (${e.actor.roles.join(", ")})` : ""}` : "system"}`,
            e.requestId ? h("span", { class: "mono" }, ` · request ${e.requestId}`) : null),
          e.type === "JobCancelled" && e.data ? h("span", { class: "event-detail" },
            `${e.data.reasonCode || ""}${e.data.reason ? ` — ${e.data.reason}` : ""}`) : null);
      })));
}

export function pastBanner(view, job, jobId) {
  return h("div", { class: "past-banner", id: "past-banner" },
    h("p", {}, h("strong", {}, `Past version ${view.version} of ${job.version}. `),
      `This is the job as it was on ${when(view.updatedAt)}; it is now `,
      h("strong", {}, job.status), ". Actions are off here."),
    h("a", { href: `/console/jobs/${jobId}`, "data-link": true, class: "button" },
      "Back to the current version"));
}

// The cancel dialog's lines: which job, and what cancelling it takes with it.
export function cancelSubject(job) {
  return `${job.type} · ${job.region} · ${windowText(job.serviceWindow.start, job.serviceWindow.end)}`;
}

export function cancelImpact(job) {
  const count = liveAssignments(job).length;
  return count === 0
    ? "No live assignment will be cancelled with it."
    : `${count} live ${count === 1 ? "assignment" : "assignments"} will be cancelled with it `
      + "(every Pending, Confirmed or InProgress one).";
}

// The page when the job cannot be read.
export function notLoaded(error) {
  return [
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/console/", "data-link": true }, "← Jobs")),
    h("h1", {}, error.status === 404 ? "Job not found" : "The job could not be loaded"),
  ];
}
