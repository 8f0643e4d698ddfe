// The job board: filters, paging, the New job dialog, rows kept live.

import { api, newKey } from "./api.js";
import {
  clearAlerts, closeDialog, fromLocalInput, h, liveAssignments, mountDialog, openDialog,
  showError,
  statusBadge, toLocalInput, windowText,
} from "./ui.js";

const PAGE_SIZE = 25;
// The contract's statuses and priorities, as the service names them.
const { statuses: STATUSES, priorities: PRIORITIES } =
  JSON.parse(document.getElementById("console-config").textContent);

function jobRow(job) {
  return h("tr", { dataset: { jobId: job.id } },
    h("th", { scope: "row" },
      h("a", { href: `/console/jobs/${job.id}`, "data-link": true }, job.type)),
    h("td", {}, statusBadge(job.status)),
    h("td", {}, h("span", { class: `priority priority-${job.priority.toLowerCase()}` }, job.priority)),
    h("td", {}, job.region),
    h("td", { class: "nowrap-wide" }, windowText(job.serviceWindow.start, job.serviceWindow.end)),
    h("td", { class: "num" }, String(liveAssignments(job).length)));
}

export function renderBoard(ctx, params) {
  const state = {
    status: params.get("status") || "",
    priority: params.get("priority") || "",
    region: params.get("region") || "",
    page: Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1),
  };
  let pagination = null;
  let loading = null;
  let reloadTimer = null;
  const rows = new Map();  // job id -> job shown
  document.title = "Jobs · SmartScheduler";

  const select = (id, label, options, value) => h("div", { class: "field inline" },
    h("label", { for: id }, label),
    h("select", { id }, h("option", { value: "" }, "Any"),
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
  const statusField = select("f-status", "Status", STATUSES, state.status);
  const priorityField = select("f-priority", "Priority", PRIORITIES, state.priority);
  const regionInput = h("input", { id: "f-region", type: "search", value: state.region,
    autocomplete: "off", placeholder: "Any region" });
  const regionField = h("div", { class: "field inline" },
    h("label", { for: "f-region" }, "Region"), regionInput);
  const newJob = h("button", { type: "button", class: "button primary", id: "new-job" }, "New job");

  const tbody = h("tbody", {});
  const summary = h("p", { class: "page-summary", id: "page-summary", "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "button", id: "previous-page" }, "Previous page");
  const next = h("button", { type: "button", class: "button", id: "next-page" }, "Next page");
  const table = h("table", { class: "grid jobs", "aria-labelledby": "jobs-title",
                             "aria-describedby": "page-summary" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col" }, "Priority"), h("th", { scope: "col" }, "Region"),
      h("th", { scope: "col" }, "Service window"),
      h("th", { scope: "col", class: "num" }, h("abbr", { title: "Live assignments" }, "Live"),
        h("span", { class: "visually-hidden" }, " assignments")))),
    tbody);

  ctx.main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { id: "jobs-title" }, "Jobs"), newJob),
    h("form", { class: "filters", role: "search", "aria-label": "Filter jobs",
                onsubmit: (e) => e.preventDefault() },
      statusField, priorityField, regionField),
    h("div", { class: "table-wrap" }, table),
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, summary, next));

  function syncUrl() {
    const query = new URLSearchParams();
    if (state.status) query.set("status", state.status);
    if (state.priority) query.set("priority", state.priority);
    if (state.region) query.set("region", state.region);
    if (state.page > 1) query.set("page", String(state.page));
    const text = query.toString();
    history.replaceState(null, "", `/console/${text ? `?${text}` : ""}`);
  }

  async function load() {
    if (loading) loading.abort();
    const controller = new AbortController();
    loading = controller;
    table.setAttribute("aria-busy", "true");
    try {
      const { body, headers } = await api.listJobs({
        status: state.status, priority: state.priority, region: state.region.trim(),
        page: state.page, page_size: PAGE_SIZE }, controller.signal);
      if (controller !== loading) return;
      pagination = JSON.parse(headers.get("X-Pagination") || "null");
      if (pagination && pagination.total_pages && state.page > pagination.total_pages) {
        state.page = pagination.total_pages;
        syncUrl();
        load();
        return;
      }
      rows.clear();
      tbody.replaceChildren(...body.map((job) => { rows.set(job.id, job); return jobRow(job); }));
      if (!body.length) {
        tbody.append(h("tr", {}, h("td", { colspan: "6", class: "empty" },
          state.status || state.priority || state.region
            ? "No job matches these filters." : "No jobs yet. Create one with New job.")));
      }
      const total = pagination ? pagination.total : body.length;
      const pages = pagination ? Math.max(1, pagination.total_pages || 1) : 1;
      summary.textContent = `Page ${state.page} of ${pages} · ${total} ${total === 1 ? "job" : "jobs"}`;
      previous.disabled = state.page <= 1;
      next.disabled = state.page >= pages;
    } catch (error) {
      if (error.name === "AbortError") return;
      showError(error);
    } finally {
      if (controller === loading) {
        table.removeAttribute("aria-busy");
        loading = null;
      }
    }
  }

  function filtersChanged() {
    state.status = statusField.querySelector("select").value;
    state.priority = priorityField.querySelector("select").value;
    state.region = regionInput.value;
    state.page = 1;
    clearAlerts();
    syncUrl();
    load();
  }
  statusField.querySelector("select").addEventListener("change", filtersChanged);
  priorityField.querySelector("select").addEventListener("change", filtersChanged);
  let typing = null;
  regionInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(filtersChanged, 250);
  });
  regionInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { clearTimeout(typing); filtersChanged(); }
  });
  previous.addEventListener("click", () => {
    if (state.page > 1) { state.page -= 1; syncUrl(); load(); }
  });
  next.addEventListener("click", () => { state.page += 1; syncUrl(); load(); });
  newJob.addEventListener("click", () => openNewJob(ctx));

  async function refreshRow(jobId) {
    try {
      const { body: job } = await api.getJob(jobId);
      const row = tbody.querySelector(`tr[data-job-id="${CSS.escape(jobId)}"]`);
      if (!row || !rows.has(jobId)) return;
      rows.set(jobId, job);
      row.replaceWith(jobRow(job));
    } catch (error) {
      if (error.status !== 404) showError(error);
    }
  }

  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 300);
  }

  // Rows to read again, once for all the events of one read of the stream (a
  // cancel is an event per live assignment and one for the job).
  const stale = new Set();
  let staleTimer = null;
  function refreshSoon(jobId) {
    stale.add(jobId);
    staleTimer ??= setTimeout(() => {
      staleTimer = null;
      const ids = [...stale];
      stale.clear();
      ids.forEach(refreshRow);
    }, 0);
  }

  const ready = load();
  return {
    ready,
    onEvent({ type, envelope }) {
      const jobId = envelope.subject || (envelope.data && envelope.data.jobId);
      if (type === "JobCancelled") {
        const job = rows.get(jobId);
        const data = envelope.data || {};
        ctx.notice(`Job ${job ? `“${job.type}” ` : ""}cancelled (${data.reasonCode || "Other"})`
          + `${data.reason ? `: ${data.reason}` : ""}`);
      }
      if (jobId && rows.has(jobId)) refreshSoon(jobId);
      else if (type === "JobCreated" && state.page === 1) reloadSoon();
    },
    onLiveState(liveState) { if (liveState === "live" && pagination) reloadSoon(); },
    dispose() {
      if (loading) loading.abort();
      clearTimeout(reloadTimer);
      clearTimeout(staleTimer);
      clearTimeout(typing);
    },
  };
}

function defaultWindow() {
  const start = new Date();
  start.setDate(start.getDate() + 1);
  start.setHours(9, 0, 0, 0);
  const end = new Date(start);
  end.setHours(11);
  return [start, end];
}

function openNewJob(ctx) {
  const dialog = mountDialog("new-job-dialog");
  const form = document.getElementById("new-job-form");
  const [start, end] = defaultWindow();
  form.elements.windowStart.value = toLocalInput(start);
  form.elements.windowEnd.value = toLocalInput(end);
  const key = newKey();  // one create, however often the button is pressed
  form.onsubmit = async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    if (submit.disabled) return;
    const f = form.elements;
    const body = {
      type: f.type.value.trim(),
      durationMinutes: Number.parseInt(f.durationMinutes.value, 10),
      priority: f.priority.value,
      region: f.region.value.trim(),
      serviceWindow: { start: fromLocalInput(f.windowStart.value),
                       end: fromLocalInput(f.windowEnd.value) },
      description: f.description.value.trim() || null,
    };
    submit.disabled = true;
    try {
      const { body: job } = await api.createJob(body, key);
      closeDialog(dialog);
      ctx.navigate(`/console/jobs/${job.id}`);
    } catch (error) {
      showError(error);
    } finally {
      submit.disabled = false;
    }
  };
  openDialog(dialog, form.elements.type);
}
