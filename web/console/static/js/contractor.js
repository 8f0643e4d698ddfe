// A contractor's home: their own assignments, with Confirm on the Pending ones.

import { api, newKey } from "./api.js";
import { clearAlerts, h, showError, showProblem, statusBadge, windowText } from "./ui.js";

export function renderContractor(ctx) {
  let disposed = false;
  let reloadTimer = null;
  const jobs = new Map();  // job id -> job (its type, version)
  document.title = "My assignments · SmartScheduler";
  const tbody = h("tbody", {});
  ctx.main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { id: "mine-title" }, "My assignments")),
    h("p", { class: "muted" }, "The jobs you are assigned to. Confirm the ones you will do."),
    h("div", { class: "table-wrap" },
      h("table", { class: "grid", "aria-labelledby": "mine-title" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Job"),
          h("th", { scope: "col" }, "Window"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        tbody)));

  async function load() {
    const { body: assignments } = await api.assignments({});
    const missing = [...new Set(assignments.map((a) => a.jobId))].filter((id) => !jobs.has(id));
    const fetched = await Promise.all(missing.map((id) => api.getJob(id).then(
      (r) => r.body, () => null)));
    for (const job of fetched) if (job) jobs.set(job.id, job);
    if (disposed) return;
    assignments.sort((a, b) => a.startUtc.localeCompare(b.startUtc));
    tbody.replaceChildren(...assignments.map((a) => {
      const job = jobs.get(a.jobId);
      return h("tr", { dataset: { assignmentId: a.id } },
        h("th", { scope: "row" }, job ? job.type : "A job"),
        h("td", {}, windowText(a.startUtc, a.endUtc)),
        h("td", {}, statusBadge(a.status)),
        h("td", { class: "row-actions" }, a.status === "Pending"
          ? h("button", { type: "button", class: "button small primary",
                          onclick: (event) => confirm(a, event.currentTarget) }, "Confirm")
          : null));
    }));
    if (!assignments.length) {
      tbody.append(h("tr", {}, h("td", { colspan: "4", class: "empty" },
        "Nothing assigned to you yet.")));
    }
  }

  async function confirm(assignment, button) {
    button.disabled = true;
    try {
      await api.confirm(assignment.jobId, assignment.id, undefined, newKey());
      clearAlerts();
      jobs.delete(assignment.jobId);
      await load();
      const heading = document.getElementById("mine-title");
      if (document.activeElement === document.body && heading) {
        heading.setAttribute("tabindex", "-1");
        heading.focus();
      }
    } catch (error) {
      button.disabled = false;
      if (error.status === 412) showProblem(error.problem, "This assignment changed; reloaded.");
      else showError(error);
    }
  }

  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => load().catch(showError), 150);
  }

  const ready = load().catch(showError);
  return {
    ready,
    onEvent({ type, envelope }) {
      const jobId = envelope.subject || (envelope.data && envelope.data.jobId);
      if (type === "JobCancelled") {
        const job = jobs.get(jobId);
        const data = envelope.data || {};
        ctx.notice(`Job ${job ? `“${job.type}” ` : ""}cancelled (${data.reasonCode || "Other"})`
          + `${data.reason ? `: ${data.reason}` : ""}`);
      }
      jobs.delete(jobId);
      reloadSoon();
    },
    onLiveState(state) { if (state === "live") reloadSoon(); },
    dispose() { disposed = true; clearTimeout(reloadTimer); },
  };
}
