// Signing in: the development form (the service mints a token) or OpenID Connect
// (authorization code with PKCE, S256). The token lives in sessionStorage only:
// never a cookie, so the API stays free of CSRF.

const TOKEN_KEY = "smartscheduler.token";
const FLOW_KEY = "smartscheduler.oidc";

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(size = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

/** The claims of a JWT, for display and routing only: the API verifies it. */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(escape(atob(part)));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export function sessionFromToken(token) {
  const claims = claimsOf(token);
  if (!claims || !claims.sub) return null;
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) return null;
  let roles = claims.roles ?? claims["cognito:groups"] ?? [];
  if (typeof roles === "string") roles = [roles];
  const role = ["Admin", "Dispatcher", "Contractor"].find((r) => roles.includes(r)) || null;
  return { token, sub: claims.sub, roles, role, name: claims.name || claims.email || claims.sub,
           expiresAt: claims.exp ? claims.exp * 1000 : null };
}

export function storedSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const session = sessionFromToken(token);
  if (!session) sessionStorage.removeItem(TOKEN_KEY);
  return session;
}

export function keepToken(token) { sessionStorage.setItem(TOKEN_KEY, token); }
export function forgetToken() { sessionStorage.removeItem(TOKEN_KEY); }

/** Development sign-in: the service mints a short-lived token for the role. */
export async function developmentSignIn(role, sub) {
  let response;
  try {
    response = await fetch("/console/dev-token", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(sub ? { role, sub } : { role }),
    });
  } catch {
    throw { problem: { title: "Network error", detail: "The service could not be reached." } };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw { problem: { title: body.title || `HTTP ${response.status}`,
                       detail: body.detail || "", code: body.code } };
  }
  return body.token;
}

async function discover(issuer) {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch {
    throw { problem: { title: "Sign-in provider unreachable",
                       detail: `The OpenID Connect discovery document at ${url} could not be read.` } };
  }
  if (!response.ok) {
    throw { problem: { title: "Sign-in provider error",
                       detail: `Discovery at ${url} answered ${response.status}.` } };
  }
  return response.json();
}

function redirectUri() { return `${location.origin}/console/callback`; }

/** Starts the authorization-code flow: off to the provider's sign-in page. */
export async function startOidc({ issuer, clientId }) {
  if (!crypto.subtle) {
    throw { problem: { title: "Sign-in needs HTTPS",
                       detail: "PKCE needs the browser's Web Crypto, which only a secure origin (https or localhost) has." } };
  }
  const metadata = await discover(issuer);
  const verifier = randomString(48);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = randomString(16);
  const nonce = randomString(16);
  sessionStorage.setItem(FLOW_KEY, JSON.stringify({
    verifier, state, nonce, tokenEndpoint: metadata.token_endpoint, clientId,
    returnTo: location.pathname.startsWith("/console/jobs/") ? location.pathname : "/console/",
  }));
  const params = new URLSearchParams({
    response_type: "code", client_id: clientId, redirect_uri: redirectUri(),
    scope: "openid profile email", state, nonce,
    code_challenge: base64url(new Uint8Array(digest)), code_challenge_method: "S256",
  });
  location.assign(`${metadata.authorization_endpoint}?${params}`);
}

/** Back from the provider: exchange the code (with the PKCE verifier) for tokens. */
export async function finishOidc(search) {
  const params = new URLSearchParams(search);
  const flow = JSON.parse(sessionStorage.getItem(FLOW_KEY) || "null");
  sessionStorage.removeItem(FLOW_KEY);
  if (params.get("error")) {
    throw { problem: { title: "Sign-in refused",
                       detail: params.get("error_description") || params.get("error") } };
  }
  if (!flow || !params.get("code") || params.get("state") !== flow.state) {
    throw { problem: { title: "Sign-in failed",
                       detail: "This sign-in answer does not match a sign-in started here; start again." } };
  }
  let response;
  try {
    response = await fetch(flow.tokenEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code", code: params.get("code"),
        redirect_uri: redirectUri(), client_id: flow.clientId, code_verifier: flow.verifier,
      }),
    });
  } catch {
    throw { problem: { title: "Sign-in provider unreachable",
                       detail: "The token endpoint could not be reached." } };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw { problem: { title: "Sign-in failed",
                       detail: body.error_description || body.error || `Token endpoint answered ${response.status}.` } };
  }
  const token = body.id_token || body.access_token;
  const claims = token && claimsOf(token);
  if (!claims) {
    throw { problem: { title: "Sign-in failed", detail: "The provider returned no usable token." } };
  }
  if (body.id_token && claims.nonce !== undefined && claims.nonce !== flow.nonce) {
    throw { problem: { title: "Sign-in failed", detail: "The token's nonce does not match." } };
  }
  return { token, returnTo: flow.returnTo };
}
