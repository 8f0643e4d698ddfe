// A job's page: details, assignments, actions, history and past versions, and
// the cancel dialog (If-Match + Idempotency-Key).

import { api, newKey } from "./api.js";
import {
  actionsBar, assignmentsSection, CHANGED_LEAD, cancelImpact, cancellationSection, cancelSubject,
  detailsSection, historySection, notLoaded, pastBanner,
} from "./job-sections.js";
import {
  clearAlerts, closeDialog, fromLocalInput, h, mountDialog, openDialog, showError,
  showProblem, statusBadge, toLocalInput,
} from "./ui.js";

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

  function render() {
    const focusedId = document.activeElement && document.activeElement.id;
    const focusInMain = ctx.main.contains(document.activeElement)
      && document.activeElement !== ctx.main;
    document.title = `${job.type} · SmartScheduler`;
    const view = shown;
    const past = isPast();
    const status = view.status;
    const canAct = !past;
    const actions = actionsBar(view, canAct, {
      assign: openAssign,
      start: () => command((version, key) => api.start(jobId, version, key)),
      complete: () => command((version, key) => api.complete(jobId, version, key)),
      cancel: openCancel,
    });

    const banner = past ? pastBanner(view, job, jobId) : null;
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
            h("h2", { id: "details-title" }, "Details"), detailsSection(view)),
          cancellationSection(view),
          assignmentsSection(view, canAct ? {
            confirm: (a) => command((v, k) => api.confirm(jobId, a.id, v, k)),
            unassign: (a) => command((v, k) => api.unassign(jobId, a.id, v, k)),
          } : null)),
        historySection(events, view, job, jobId))].filter(Boolean));
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
    document.getElementById("cancel-subject").textContent = cancelSubject(job);
    document.getElementById("cancel-impact").textContent = cancelImpact(job);
  }

  function openCancel() {
    const dialog = mountDialog("cancel-dialog");
    const form = document.getElementById("cancel-form");
    const reason = form.elements.reason;
    const counter = document.getElementById("cancel-count");
    const count = () => { counter.textContent = `${reason.value.length} / ${reason.maxLength} characters`; };
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
    ctx.main.replaceChildren(...notLoaded(error));
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
