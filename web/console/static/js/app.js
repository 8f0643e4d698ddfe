// The console's entry point: session, routing, the live connection.

import { setToken, whenUnauthorized } from "./api.js";
import {
  developmentSignIn, finishOidc, forgetToken, keepToken, sessionFromToken, startOidc,
  storedSession,
} from "./auth.js";
import { renderBoard } from "./board.js";
import { renderContractor } from "./contractor.js";
import { renderJob } from "./job.js";
import { LiveStream } from "./live.js";
import { clearAlerts, h, notice, showProblem } from "./ui.js";

const config = JSON.parse(document.getElementById("console-config").textContent);
const main = document.getElementById("main");
const sessionBar = document.getElementById("session");

let session = null;
let live = null;
let page = null;  // the current page's controller: {onEvent, dispose}
let pendingMessage = null;
let wasLive = false;  // this session's stream has been live before

function setLiveState(state) {
  const box = document.getElementById("live");
  box.dataset.state = state;
  document.getElementById("live-text").textContent =
    state === "live" ? "Live" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
  if (state !== "live") return;
  // Back after a drop: a stream that resumes from Last-Event-ID replays what was
  // missed; one with no event to resume from cannot, so the page reloads itself.
  // (The first connect needs neither: the page has just loaded.)
  if (wasLive && live && live.lastId === null && page && page.onLiveState) {
    page.onLiveState(state);
  }
  wasLive = true;
}

function signOut(message) {
  forgetToken();
  setToken(null);
  session = null;
  if (live) live.stop();
  live = null;
  pendingMessage = message || null;
  navigate("/console/", { replace: true });
}

whenUnauthorized((problem) => signOut({ title: "Signed out",
  detail: `Your session ended (${problem.detail || "the token was refused"}). Sign in again.` }));

document.getElementById("sign-out").addEventListener("click", () => signOut(null));

function startSession(token) {
  session = sessionFromToken(token);
  if (!session) return false;
  keepToken(token);
  setToken(token);
  document.getElementById("who").textContent = `${session.name} · ${session.role || "no role"}`;
  sessionBar.hidden = false;
  live = new LiveStream({
    token,
    onEvent: (event) => { if (page && page.onEvent) page.onEvent(event); },
    onState: setLiveState,
    onUnauthorized: (problem) => signOut({ title: "Signed out",
      detail: `The event stream refused the token (${problem.detail || "unauthorized"}). `
        + "Sign in again." }),
  });
  wasLive = false;
  setLiveState("connecting");
  live.start();
  return true;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route(true);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey ||
      event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => route(true));

function dispose() {
  if (page && page.dispose) page.dispose();
  page = null;
  clearAlerts();
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

function renderSignIn() {
  sessionBar.hidden = true;
  document.title = "Sign in · SmartScheduler";
  const card = h("section", { class: "signin card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", { class: "muted" }, "The dispatcher console of SmartScheduler."));
  if (config.devSignIn) {
    const role = h("select", { id: "signin-role", name: "role" },
      ["Dispatcher", "Admin", "Contractor"].map((r) => h("option", { value: r }, r)));
    const user = h("input", { id: "signin-user", name: "sub", autocomplete: "off",
      spellcheck: "false", "aria-describedby": "signin-user-hint" });
    const form = h("form", { class: "stack", novalidate: true },
      h("div", { class: "field" }, h("label", { for: "signin-role" }, "Role"), role),
      h("div", { class: "field" }, h("label", { for: "signin-user" }, "User id"), user,
        h("p", { class: "hint", id: "signin-user-hint" },
          "Optional. A contractor's user id is their contractor id, a UUID.")),
      h("button", { type: "submit", class: "button primary" }, "Sign in"),
      h("p", { class: "hint dev-note" },
        "Development sign-in: the service mints a short-lived token for this role. "
        + "It is off in production, where you sign in with SSO."));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const token = await developmentSignIn(role.value, user.value.trim());
        clearAlerts();
        if (startSession(token)) navigate("/console/", { replace: true });
      } catch (error) {
        showProblem(error.problem || { title: "Sign-in failed", detail: String(error) });
      } finally {
        button.disabled = false;
      }
    });
    card.append(form);
  } else if (config.oidc) {
    const button = h("button", { type: "button", class: "button primary" }, "Sign in with SSO");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await startOidc(config.oidc);
      } catch (error) {
        showProblem(error.problem || { title: "Sign-in failed", detail: String(error) });
        button.disabled = false;
      }
    });
    card.append(h("div", { class: "stack" }, button,
      h("p", { class: "hint" }, "You will be sent to your organisation's sign-in page.")));
  } else {
    card.append(h("p", {}, "No sign-in is configured: set SMARTSCHEDULER_OIDC_ISSUER and "
      + "SMARTSCHEDULER_OIDC_CLIENT_ID, or run in development."));
  }
  main.replaceChildren(card);
  if (pendingMessage) {
    showProblem(pendingMessage);
    pendingMessage = null;
  }
}

async function callback() {
  main.replaceChildren(h("p", { class: "loading" }, "Signing in…"));
  try {
    const { token, returnTo } = await finishOidc(location.search);
    if (!startSession(token)) throw { problem: { title: "Sign-in failed",
      detail: "The provider's token has no subject or has expired." } };
    navigate(returnTo || "/console/", { replace: true });
  } catch (error) {
    history.replaceState(null, "", "/console/");
    pendingMessage = error.problem || { title: "Sign-in failed", detail: String(error) };
    renderSignIn();
  }
}

function route(moveFocus) {
  dispose();
  const path = location.pathname;
  if (path === "/console/callback") { callback(); return; }
  if (!session) {
    const stored = storedSession();
    if (!stored || !startSession(stored.token)) { renderSignIn(); return; }
  }
  const ctx = { session, main, navigate, notice, config };
  const jobMatch = path.match(/^\/console\/jobs\/([^/]+)$/);
  if (session.role === "Contractor" || !session.role) {
    if (path !== "/console/") { history.replaceState(null, "", "/console/"); }
    page = renderContractor(ctx);
  } else if (jobMatch) {
    page = renderJob(ctx, decodeURIComponent(jobMatch[1]),
                     new URLSearchParams(location.search).get("version"));
  } else {
    page = renderBoard(ctx, new URLSearchParams(location.search));
  }
  if (moveFocus) Promise.resolve(page && page.ready).then(focusHeading, focusHeading);
}

route(false);
