// The hosted challenge page: passkey sign-in or enrolment, or push approval, done by calling
// Passgate's own Client API (same origin) with the page's token. No dependencies, no build.
//
// Modes. Redirect (the default): on success the browser goes to the track's redirectUrl with
// `token=<access token>` added to its query; on failure or cancel with `error=<code>`.
// Popup (`mode=popup`; Authsignal's browser SDK uses it for its iframe overlay and for its
// window): the page posts JSON strings {"event": "AUTHSIGNAL_READY" | "AUTHSIGNAL_CLOSE_POPUP" |
// "AUTHSIGNAL_API_ERROR", ...} and raw {height} objects to the window that framed or opened it,
// addressed only to the tenant's own origins.
import { createPasskey, getPasskey, passkeysSupported } from "./webauthn.js";

const data = JSON.parse(document.getElementById("challenge-data").textContent);
const text = data.text || {};
const token = new URLSearchParams(window.location.search).get("token");
// The token leaves the address bar (and so the history, bookmarks and screenshots) at once.
window.history.replaceState(null, "", window.location.pathname);

const element = (id) => document.getElementById(id);
const STORAGE_KEY = "passgate.credentialIds";
const POLL_MS = 1000;
// A push challenge consumed this long before its expiry was answered, not left to expire.
const EXPIRY_MARGIN_MS = 1500;
// Token problems: the page cannot go on with this token.
const FATAL_STATUS = 401;

let finished = false;
let busy = false;

// The app's page ------------------------------------------------------------------------

const framed = window.parent !== window;
const host = data.popup ? (framed ? window.parent : window.opener) : null;

function targetOrigins() {
  // Chromium and Safari name the framing page's origin; elsewhere every tenant origin is
  // addressed, and the browser delivers only to the one the app's page really has.
  const ancestors = window.location.ancestorOrigins;
  if (framed && ancestors && ancestors.length > 0) {
    return data.origins.includes(ancestors[0]) ? [ancestors[0]] : [];
  }
  return data.origins;
}

function post(message) {
  if (!host) return;
  for (const origin of targetOrigins()) host.postMessage(message, origin);
}

function postEvent(event, fields = {}) {
  post(JSON.stringify({ event, ...fields }));
}

function reportHeight() {
  if (!host || !framed) return;
  const main = document.querySelector("main");
  post({ height: Math.ceil(main.getBoundingClientRect().height) });
}

// Showing state -------------------------------------------------------------------------

function say(message, tone = "") {
  const status = element("status");
  if (!status) return;
  status.textContent = message;
  status.className = `status ${tone}`.trim();
}

function setButtons(enabled) {
  for (const id of ["passkey-sign-in", "passkey-enrol", "push-send", "show-push"]) {
    const button = element(id);
    if (button) button.disabled = !enabled;
  }
}

function showClose() {
  element("cancel")?.setAttribute("hidden", "");
  const close = element("close");
  close.hidden = false;
  close.focus();
}

// Leaving -------------------------------------------------------------------------------

function redirectAllowed(url) {
  try {
    const parsed = new URL(url);
    return data.origins.includes(parsed.origin) && !parsed.username && !parsed.password;
  } catch {
    return false;
  }
}

function withQuery(url, params) {
  const hashAt = url.indexOf("#");
  const base = hashAt < 0 ? url : url.slice(0, hashAt);
  const fragment = hashAt < 0 ? "" : url.slice(hashAt);
  return `${base}${base.includes("?") ? "&" : "?"}${new URLSearchParams(params)}${fragment}`;
}

function leave(params, message) {
  if (!redirectAllowed(data.redirectUrl)) {
    say(text.redirect_refused, "error");
    return;
  }
  say(message);
  window.location.assign(withQuery(data.redirectUrl, params));
}

function finish() {
  finished = true;
  stopPolling();
  setButtons(false);
}

function succeed(accessToken) {
  finish();
  element("cancel").disabled = true;
  if (host) {
    say(text.success, "ok");
    postEvent("AUTHSIGNAL_CLOSE_POPUP", { token: accessToken });
  } else if (data.redirectUrl) {
    leave({ token: accessToken }, text.returning);
  } else {
    say(text.success_close, "ok");
  }
}

// A failure this page cannot recover from.
function fail(errorCode, message) {
  finish();
  say(message, "error");
  if (host) showClose();
  else if (data.redirectUrl) leave({ error: errorCode }, message);
}

function cancel() {
  finish();
  if (host) postEvent("AUTHSIGNAL_CLOSE_POPUP");
  else if (data.redirectUrl) leave({ error: "user_canceled" }, text.canceled);
  else say(text.canceled);
}

// The Client API --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, status, description) {
    super(description || code);
    this.code = code;
    this.status = status;
  }
}

async function api(path, body) {
  let response;
  try {
    response = await fetch(data.api + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError("network_error", 0);
  }
  const json = await response.json().catch(() => ({}));
  if (!response.ok || json.error) {
    throw new ApiError(json.errorCode || json.error || "network_error", response.status);
  }
  return json;
}

function explain(error) {
  if (error instanceof ApiError) {
    if (host && error.status) {
      postEvent("AUTHSIGNAL_API_ERROR", { errorCode: error.code, statusCode: error.status });
    }
    if (error.status === FATAL_STATUS) {
      fail(error.code, text[error.code] || text.invalid_token);
    } else if (error.code === "network_error") {
      say(text.network_error, "error");
    } else if (error.status === 429) {
      say(text.push_rate_limited, "error");
    } else {
      say(error.status === 400 ? text.passkey_refused : text.error_generic, "error");
    }
  } else if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
    say(text.passkey_canceled, "error");
  } else if (error && error.name === "InvalidStateError") {
    say(text.passkey_exists, "error");
  } else {
    say(text.error_generic, "error");
  }
}

async function attempt(steps) {
  if (busy || finished) return;
  busy = true;
  setButtons(false);
  try {
    await steps();
  } catch (error) {
    explain(error);
  } finally {
    busy = false;
    if (!finished) setButtons(true);
  }
}

// Passkeys ------------------------------------------------------------------------------

function rememberedIds() {
  try {
    const ids = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(ids) ? ids : [];
  } catch {
    return [];
  }
}

function remember(credentialId) {
  try {
    const ids = [credentialId, ...rememberedIds().filter((id) => id !== credentialId)];
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(ids.slice(0, 20)));
  } catch {
    // Storage may be off; the page then simply offers every method.
  }
}

function signIn() {
  return attempt(async () => {
    const started = await api("/user-authenticators/passkey/authentication-options", {});
    say(text.passkey_waiting);
    const credential = await getPasskey(started.options);
    say(text.checking);
    const verified = await api("/verify/passkey", {
      challengeId: started.challengeId,
      authenticationCredential: credential,
    });
    remember(credential.id);
    succeed(verified.accessToken);
  });
}

function enrol() {
  return attempt(async () => {
    const started = await api("/user-authenticators/passkey/registration-options", {});
    say(text.passkey_waiting);
    const credential = await createPasskey(started.options);
    say(text.checking);
    const added = await api("/user-authenticators/passkey", {
      challengeId: started.challengeId,
      registrationCredential: credential,
    });
    remember(credential.id);
    succeed(added.accessToken);
  });
}

// Push ----------------------------------------------------------------------------------

// Server time minus this browser's, so expiry times from the server read right here.
const clockSkew = data.serverTime - Date.now();
let pushWait = null;
let pollTimer = null;

function stopPolling() {
  if (pollTimer !== null) window.clearTimeout(pollTimer);
  pollTimer = null;
}

function waitForDevice(wait) {
  pushWait = wait;
  element("verification-code").textContent = wait.verificationCode || "";
  element("push-code").hidden = !wait.verificationCode;
  element("push-no-code").hidden = Boolean(wait.verificationCode);
  element("push-send").hidden = true;
  say(text.push_waiting);
  stopPolling();
  pollTimer = window.setTimeout(poll, POLL_MS);
  reportHeight();
}

function expired() {
  pushWait = null;
  element("push-code").hidden = true;
  element("push-no-code").hidden = true;
  const again = element("push-send");
  again.textContent = text.push_send_again;
  again.hidden = false;
  say(text.push_expired, "error");
}

async function poll() {
  pollTimer = null;
  if (finished || !pushWait) return;
  try {
    const outcome = await api("/verify/push", { challengeId: pushWait.challengeId });
    if (outcome.isVerified && outcome.accessToken) return succeed(outcome.accessToken);
    if (outcome.isConsumed) {
      const answeredEarly =
        Date.now() + clockSkew < pushWait.expiresAt * 1000 - EXPIRY_MARGIN_MS;
      return answeredEarly ? fail("challenge_failed", text.push_declined) : expired();
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === FATAL_STATUS) return explain(error);
    // Anything else (a network blip) is retried on the next tick.
  }
  if (!finished) pollTimer = window.setTimeout(poll, POLL_MS);
}

function sendPush() {
  return attempt(async () => {
    const started = await api("/challenge/push", { action: data.actionCode });
    waitForDevice({
      challengeId: started.challengeId,
      verificationCode: started.verificationCode || null,
      expiresAt: started.expiresAt,
    });
  });
}

function showPush() {
  element("push").hidden = false;
  element("show-push").hidden = true;
  reportHeight();
  (element("push-send").hidden ? element("cancel") : element("push-send")).focus();
}

// Start ---------------------------------------------------------------------------------

function startChallenge() {
  const offers = data.offers;
  if ((offers.signIn || offers.enrol) && !passkeysSupported()) {
    element("passkey").hidden = element("enrol").hidden = true;
    say(text.passkeys_unsupported, "error");
  }
  const usedHere = data.credentialIds.some((id) => rememberedIds().includes(id));
  if (offers.push && offers.signIn && usedHere) {
    // A passkey of this user's was used in this browser: lead with it, push one click away.
    element("push").hidden = true;
    element("show-push").hidden = false;
  }
  if (offers.push && data.push) waitForDevice(data.push);
  element("passkey-sign-in").addEventListener("click", signIn);
  element("passkey-enrol").addEventListener("click", enrol);
  element("push-send").addEventListener("click", sendPush);
  element("show-push").addEventListener("click", showPush);
  element("cancel").addEventListener("click", cancel);
  // Keyboard users start on the main action; with none (waiting for the device) nothing is
  // focused, so a stray Enter cannot cancel.
  const primary = [...document.querySelectorAll("main button:not(.secondary)")].find(
    (button) => !button.closest("[hidden]"),
  );
  primary?.focus();
}

element("close")?.addEventListener("click", () => postEvent("AUTHSIGNAL_CLOSE_POPUP"));
if (data.kind === "challenge") startChallenge();
else if (host) showClose();
if (host) {
  reportHeight();
  if (framed && window.ResizeObserver) {
    new ResizeObserver(reportHeight).observe(document.querySelector("main"));
  }
  postEvent("AUTHSIGNAL_READY");
  if (data.kind === "refusal") {
    postEvent("AUTHSIGNAL_API_ERROR", { errorCode: data.errorCode, statusCode: data.statusCode });
  }
}
