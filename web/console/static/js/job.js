// A job's page: details, assignments, actions, history and past versions, and
// the cancel dialog (If-Match + Idempotency-Key).

import { api, newKey } from "./api.js";
import {
  clearAlerts, closeDialog, fromLocalInput, h, liveAssignments, mountDialog, openDialog,
  showError,
  showProblem, statusBadge, toLocalInput, when, windowText,
} from "./ui.js";

const CANCELLABLE = new Set(["Created", "Assigned", "InProgress"]);
const CHANGED_LEAD = "This job changed since you loaded it: the page now shows its latest "
  + "version. Check it, then try again.";

export function renderJob(ctx, jobId, versionParam) {
  let job = null;       // the current job
  let shown = null;     // what is on screen (a past version, or the job)
  let events = [];
  let disposed = false;
  let refreshTimer = null;
  const pastVersion = versionParam && /^\d+$/.test(versionParam) ? Number(versionParam) : null;
  const cancelDialog = () => document.getElementById("cancel-dialog");
  const cancelState = { key: null, version: null, busy: false };

  ctx.main.replaceChildren(h("p", { class: "loading" }, "Loading job…"));

  async function load() {
    const [current, past, history] = await Promise.all([
      api.getJob(jobId),
      pastVersion ? api.getJob(jobId, pastVersion).catch((e) => e) : null,
      api.history(jobId).catch((e) => e),
    ]);
    if (disposed) return;
    job = current.body;
    if (past instanceof Error) showError(past);
    shown = past && !(past instanceof Error) ? past.body : job;
    events = history instanceof Error ? null : history.body.events;
    render();
    if (history instanceof Error) showError(history);
    updateCancelDialog();
  }

  function isPast() { return shown && job && shown.version !== job.version; }

  function actionButton(label, id, allowed, onclick, kind = "") {
    return h("button", { type: "button", class: `button ${kind}`, id, disabled: !allowed,
                         onclick }, label);
  }

  function render() {
    const focusedId = document.activeElement && document.activeElement.id;
    const focusInMain = ctx.main.contains(document.activeElement)
      && document.activeElement !== ctx.main;
    document.title = `${job.type} · SmartScheduler`;
    const view = shown;
    const past = isPast();
    const live = liveAssignments(view);
    const status = view.status;
    const canAct = !past;
    const hasStartable = live.some((a) => a.status === "Pending" || a.status === "Confirmed");

    const actions = h("div", { class: "actions", role: "group", "aria-label": "Job actions" },
      actionButton("Assign contractor", "assign-contractor",
        canAct && (status === "Created" || status === "Assigned"), openAssign),
      actionButton("Start", "start-job", canAct && status === "Assigned" && hasStartable,
        () => command((version, key) => api.start(jobId, version, key))),
      actionButton("Complete", "complete-job", canAct && status === "InProgress",
        () => command((version, key) => api.complete(jobId, version, key))),
      actionButton("Cancel job", "cancel-job", canAct && CANCELLABLE.has(status),
        openCancel, "danger"));

    const details = h("dl", { class: "details" },
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

    const cancellation = view.cancellation ? h("section", { class: "cancellation card",
        "aria-labelledby": "cancellation-title" },
      h("h2", { id: "cancellation-title" }, "Cancellation"),
      h("p", {}, h("strong", {}, view.cancellation.reasonCode),
        view.cancellation.reason ? ` — ${view.cancellation.reason}` : ""),
      h("p", { class: "muted" }, `By ${view.cancellation.cancelledBy} on ${when(view.cancellation.cancelledAt)}`))
      : null;

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
                onclick: () => command((v, k) => api.confirm(jobId, a.id, v, k)) }, "Confirm")
            : null,
          mayChange ? h("button", { type: "button", class: "button small quiet",
                onclick: () => command((v, k) => api.unassign(jobId, a.id, v, k)) }, "Unassign")
            : null));
    });
    const assignments = h("section", { class: "card", "aria-labelledby": "assignments-title" },
      h("h2", { id: "assignments-title" }, "Assignments"),
      h("div", { class: "table-wrap" },
        h("table", { class: "grid", "aria-labelledby": "assignments-title" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Contractor"),
            h("th", { scope: "col" }, "Window"), h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
          h("tbody", {}, assignmentRows.length ? assignmentRows
            : h("tr", {}, h("td", { colspan: "4", class: "empty" }, "No assignments yet."))))));

    const history = h("section", { class: "card history", role: "region",
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

    const banner = past ? h("div", { class: "past-banner", id: "past-banner" },
      h("p", {}, h("strong", {}, `Past version ${view.version} of ${job.version}. `),
        `This is the job as it was on ${when(view.updatedAt)}; it is now `,
        h("strong", {}, job.status), ". Actions are off here."),
      h("a", { href: `/console/jobs/${jobId}`, "data-link": true, class: "button" },
        "Back to the current version")) : null;

    ctx.main.replaceChildren(...[
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
        h("a", { href: "/console/", "data-link": true }, "← Jobs")),
      banner,
      h("div", { class: `page-head${past ? " is-past" : ""}` },
        h("h1", { id: "job-title" }, view.type,
          past ? h("span", { class: "past-tag" }, ` (version ${view.version})`) : null),
        statusBadge(status, { "aria-hidden": "true" })),
      actions,
      h("div", { class: `job-layout${past ? " is-past" : ""}` },
        h("div", { class: "job-main" },
          h("section", { class: "card", "aria-labelledby": "details-title" },
            h("h2", { id: "details-title" }, "Details"), details),
          cancellation, assignments),
        history)].filter(Boolean));
    if (focusInMain && !document.querySelector("dialog[open]")) {
      // Focus stays where it was, or, when that is gone or disabled, on the heading.
      const again = focusedId && document.getElementById(focusedId);
      const target = again && !again.disabled ? again : document.getElementById("job-title");
      if (target.id === "job-title") target.setAttribute("tabindex", "-1");
      target.focus();
    }
  }

  // Sends a command for the version shown, with an Idempotency-Key, and shows the
  // job it returns (closing `dialog`, if any). A 412 refreshes the job, runs
  // `changed` and says the job changed; any other problem is shown.
  async function command(run, { version = job.version, key = newKey(), dialog = null,
                                changed = () => {} } = {}) {
    try {
      const { body } = await run(version, key);
      job = body;
      shown = body;
      clearAlerts();
      if (dialog) closeDialog(dialog);
      render();
      await refreshHistory();
    } catch (error) {
      if (error.status === 412) {
        await refresh();
        changed();
        showProblem(error.problem, CHANGED_LEAD);
      } else {
        showError(error);
      }
    }
  }

  async function refresh() {
    try { await load(); } catch (error) { showError(error); }
  }

  async function refreshHistory() {
    try {
      const { body } = await api.history(jobId);
      if (disposed) return;
      events = body.events;
      render();
    } catch (error) {
      showError(error);
    }
  }

  // ---- cancel ----

  function updateCancelDialog() {
    const dialog = cancelDialog();
    if (!dialog || !dialog.open || !job) return;
    const count = liveAssignments(job).length;
    document.getElementById("cancel-subject").textContent =
      `${job.type} · ${job.region} · ${windowText(job.serviceWindow.start, job.serviceWindow.end)}`;
    document.getElementById("cancel-impact").textContent = count === 0
      ? "No live assignment will be cancelled with it."
      : `${count} live ${count === 1 ? "assignment" : "assignments"} will be cancelled with it `
        + "(every Pending, Confirmed or InProgress one).";
  }

  function openCancel() {
    const dialog = mountDialog("cancel-dialog");
    const form = document.getElementById("cancel-form");
    const reason = form.elements.reason;
    const counter = document.getElementById("cancel-count");
    const count = () => { counter.textContent = `${reason.value.length} / 500 characters`; };
    count();
    reason.oninput = count;
    cancelState.key = newKey();      // one cancel however often Confirm is pressed
    cancelState.version = job.version;  // the version the dispatcher is looking at
    cancelState.busy = false;
    form.onsubmit = async (event) => {
      event.preventDefault();
      if (cancelState.busy) return;
      const confirm = document.getElementById("cancel-confirm");
      const body = { reasonCode: form.elements.reasonCode.value };
      if (reason.value.trim()) body.reason = reason.value.trim();
      cancelState.busy = true;
      confirm.disabled = true;
      confirm.setAttribute("aria-busy", "true");
      try {
        await command((version, key) => api.cancel(jobId, body, version, key), {
          version: cancelState.version, key: cancelState.key, dialog,
          changed: () => {
            cancelState.version = job.version;  // try again against what is now shown
            updateCancelDialog();
          },
        });
      } finally {
        cancelState.busy = false;
        confirm.disabled = false;
        confirm.removeAttribute("aria-busy");
      }
    };
    openDialog(dialog, form.elements.reasonCode);
    updateCancelDialog();
  }

  // ---- assign ----

  function openAssign() {
    const dialog = mountDialog("assign-dialog");
    const form = document.getElementById("assign-form");
    form.elements.startUtc.value = toLocalInput(job.serviceWindow.start);
    form.elements.endUtc.value = toLocalInput(job.serviceWindow.end);
    const known = new Set((job.assignments || []).map((a) => a.contractorId));
    document.getElementById("known-contractors").replaceChildren(
      ...[...known].map((id) => h("option", { value: id })));
    const version = job.version;
    const key = newKey();
    form.onsubmit = async (event) => {
      event.preventDefault();
      const submit = form.querySelector("button[type=submit]");
      if (submit.disabled) return;
      submit.disabled = true;
      try {
        await command((v, k) => api.assign(jobId, {
          contractorId: form.elements.contractorId.value.trim(),
          startUtc: fromLocalInput(form.elements.startUtc.value),
          endUtc: fromLocalInput(form.elements.endUtc.value),
        }, v, k), { version, key, dialog });
      } finally {
        submit.disabled = false;
      }
    };
    openDialog(dialog, form.elements.contractorId);
  }

  const ready = load().catch((error) => {
    if (disposed) return;
    ctx.main.replaceChildren(
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
        h("a", { href: "/console/", "data-link": true }, "← Jobs")),
      h("h1", {}, error.status === 404 ? "Job not found" : "The job could not be loaded"));
    showError(error);
  });

  return {
    ready,
    onEvent({ type, envelope }) {
      const subject = envelope.subject || (envelope.data && envelope.data.jobId);
      if (subject !== jobId) return;
      if (type === "JobCancelled") {
        const data = envelope.data || {};
        ctx.notice(`Job “${job ? job.type : jobId}” cancelled (${data.reasonCode || "Other"})`
          + `${data.reason ? `: ${data.reason}` : ""}`);
      }
      if (job && typeof envelope.data?.version === "number" && envelope.data.version <= job.version
          && events && events.length >= envelope.data.version) return;  // already shown
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(async () => {
        try {
          const pastShown = isPast() ? shown : null;
          const [{ body: current }, history] = await Promise.all([
            api.getJob(jobId), api.history(jobId)]);
          if (disposed) return;
          job = current;
          shown = pastShown || current;
          events = history.body.events;
          render();
          updateCancelDialog();
        } catch (error) {
          showError(error);
        }
      }, 100);
    },
    onLiveState(state) { if (state === "live" && job) refresh(); },
    dispose() {
      disposed = true;
      clearTimeout(refreshTimer);
      closeDialog(cancelDialog());
      closeDialog(document.getElementById("assign-dialog"));
      closeDialog(document.getElementById("new-job-dialog"));
    },
  };
}
