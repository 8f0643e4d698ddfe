// Small DOM helpers: elements, dates, alerts, notices and dialogs.

/** h("a", {href: "/"}, "text", child) builds an element; false/null children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit" });

export function when(iso) { return iso ? fullFormat.format(new Date(iso)) : ""; }

/** "Mon, Mar 3, 09:00 – 11:00" (the end's date only when it differs). */
export function windowText(start, end) {
  if (!start || !end) return "";
  const a = new Date(start);
  const b = new Date(end);
  const sameDay = a.toDateString() === b.toDateString();
  return `${dateFormat.format(a)} – ${sameDay ? timeFormat.format(b) : dateFormat.format(b)}`;
}

/** An ISO instant as the value of an <input type="datetime-local"> (local time). */
export function toLocalInput(value) {
  const d = value instanceof Date ? value : new Date(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value as an ISO instant with Z (the API refuses naive times). */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}`, ...attrs }, status);
}

const LIVE_ASSIGNMENTS = new Set(["Pending", "Confirmed", "InProgress"]);
export function liveAssignments(job) {
  return (job.assignments || []).filter((a) => LIVE_ASSIGNMENTS.has(a.status));
}

// ---- alerts: one role=alert at a time, in the open dialog or atop the page ----

function alertHost() {
  const open = [...document.querySelectorAll("dialog[open]")].pop();
  return open ? open.querySelector(".dialog-alerts") : document.getElementById("page-alerts");
}

export function clearAlerts() {
  for (const node of document.querySelectorAll(".alert")) node.remove();
}

/**
 * Shows a problem ({title, detail}) as the one alert on the page; `lead` is a
 * sentence of our own put before it (e.g. why a 412 happened).
 */
export function showProblem(problem, lead) {
  clearAlerts();
  const host = alertHost();
  const box = h("div", { class: "alert", role: "alert" },
    h("div", { class: "alert-text" },
      lead ? h("p", { class: "alert-lead" }, lead) : null,
      h("p", {}, h("strong", {}, problem.title || "Error"),
        problem.detail ? ` — ${problem.detail}` : ""),
      problem.code ? h("p", { class: "alert-code" }, `code: ${problem.code}`,
        problem.requestId ? ` · request ${problem.requestId}` : "") : null),
    h("button", { type: "button", class: "alert-close", "aria-label": "Dismiss message",
                  onclick: () => box.remove() }, "×"));
  host.append(box);
  return box;
}

export function showError(error, lead) {
  if (error && error.problem) return showProblem(error.problem, lead);
  console.warn(error);  // eslint-disable-line no-console
  return showProblem({ title: "Unexpected error", detail: String(error && error.message || error) },
                     lead);
}

// ---- notices: live news in the one role=status region ----

export function notice(text) {
  const host = document.getElementById("notices");
  const item = h("div", { class: "notice" },
    h("span", {}, text),
    h("button", { type: "button", class: "notice-close", "aria-label": "Dismiss notice",
                  onclick: () => item.remove() }, "×"));
  host.append(item);
  while (host.children.length > 4) host.firstElementChild.remove();
  setTimeout(() => item.remove(), 30000);
}

// ---- dialogs: native <dialog>, focus moved in and given back ----

const openers = new WeakMap();

/**
 * A dialog made from its <template> and put in the page, not yet shown: a
 * dialog exists in the page only while it is open, so its fields never stand
 * beside the page's own (a "Region" filter and the new job's "Region").
 */
export function mountDialog(id) {
  const old = document.getElementById(id);
  if (old) old.remove();
  const template = document.getElementById(`${id}-template`);
  const dialog = template.content.firstElementChild.cloneNode(true);
  document.body.append(dialog);
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => closeDialog(dialog));
  }
  dialog.addEventListener("close", () => {
    restoreFocus(dialog);
    dialog.remove();
  });
  return dialog;
}

export function openDialog(dialog, focusTarget) {
  openers.set(dialog, document.activeElement);
  dialog.showModal();
  (focusTarget || dialog.querySelector("input, select, textarea, button")).focus();
}

export function closeDialog(dialog) {
  if (dialog && dialog.open) dialog.close();
}

function restoreFocus(dialog) {
  const opener = openers.get(dialog);
  openers.delete(dialog);
  let target = opener && opener.isConnected && !opener.disabled ? opener : null;
  if (!target && opener && opener.id) {
    const again = document.getElementById(opener.id);  // the page was re-rendered
    if (again && !again.disabled) target = again;
  }
  if (!target) target = document.querySelector("main h1") || document.getElementById("main");
  if (target.tagName === "H1") target.setAttribute("tabindex", "-1");
  target.focus();
}
