// The hosted challenge page: passkey sign-in or enrolment, or push approval, done by calling
// Passgate's own Client API (same origin) with the page's token. No dependencies, no build.
//
// Fallbacks. Behind "Try another way" and "I lost my device" (and shown when the preferred
// method fails) are the other methods the user has: codes by email, SMS or WhatsApp, an
// authenticator app, a recovery code, a security key, an email link. After "I lost my
// device" and one of the tenant's recovery methods, the page offers a new passkey with the
// verify's access token before it finishes, or instead a push device: the token is POSTed to
// the push enrolment page in a new tab (a QR code to scan), and Done here finishes. With a
// `remove:authenticators` token it lists the user's authenticators, each with a Remove button.
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
// The token the Client API calls carry: the page's, then a verify's access token.
let bearer = token;
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
  // Every button that starts something; Cancel and Close stay usable.
  for (const button of document.querySelectorAll("main button:not(#cancel):not(#close)")) {
    button.disabled = !enabled;
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
  stopLinkPolling();
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

// POST `body` as JSON (none: an empty POST, as the SDKs send to the challenge routes).
async function api(path, body, method = "POST") {
  const headers = { Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(data.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
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
    } else if (error.code === "delivery_not_configured") {
      say(text.delivery_not_configured, "error");
    } else {
      say(error.status === 400 ? text.passkey_refused : text.error_generic, "error");
    }
  } else if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
    say(text.passkey_canceled, "error");
    offerFallbacks();
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
    completed(verified.accessToken);
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
    completed(added.accessToken);
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
  offerFallbacks();
}

async function poll() {
  pollTimer = null;
  if (finished || !pushWait) return;
  try {
    const outcome = await api("/verify/push", { challengeId: pushWait.challengeId });
    if (outcome.isVerified && outcome.accessToken) return completed(outcome.accessToken);
    if (outcome.isConsumed) {
      const answeredEarly =
        Date.now() + clockSkew < pushWait.expiresAt * 1000 - EXPIRY_MARGIN_MS;
      if (!answeredEarly) return expired();
      if (!data.fallbacks.length) return fail("challenge_failed", text.push_declined);
      pushWait = null;
      say(text.push_declined, "error");
      return offerFallbacks();
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

// Fallback methods ----------------------------------------------------------------------

const CHALLENGE = {
  EMAIL_OTP: "/challenge/email-otp",
  SMS: "/challenge/sms",
  WHATSAPP: "/challenge/whatsapp",
};
const VERIFY = {
  EMAIL_OTP: "/verify/email-otp",
  SMS: "/verify/sms",
  WHATSAPP: "/verify/whatsapp",
  AUTHENTICATOR_APP: "/verify/totp",
  RECOVERY_CODE: "/verify/recovery-code",
};
let codeMethod = null;
let lostDevice = false;
let linkTimer = null;

function showFallbacks(lost) {
  lostDevice = lostDevice || lost;
  const section = element("fallbacks");
  if (!section) return;
  section.hidden = false;
  element("try-another")?.setAttribute("hidden", "");
  element("lost-device")?.setAttribute("hidden", "");
  reportHeight();
  section.querySelector("button")?.focus();
}

// The preferred method failed: the other ways, if the user has any, without a click.
function offerFallbacks() {
  const section = element("fallbacks");
  if (!section || finished) return;
  if (section.hidden) say(`${element("status").textContent} ${text.fallback_offered}`, "error");
  showFallbacks(false);
}

function askForCode(method) {
  codeMethod = method;
  element("code-label").textContent = text[`code_label_${method.toLowerCase()}`] || "";
  const input = element("code-input");
  input.value = "";
  input.inputMode = method === "RECOVERY_CODE" ? "text" : "numeric";
  element("code-resend").hidden = !(method in CHALLENGE);
  element("code-entry").hidden = false;
  reportHeight();
  input.focus();
}

async function sendCode(method) {
  await api(CHALLENGE[method]);
  say(text.code_sent);
  askForCode(method);
}

function useFallback(method) {
  return attempt(async () => {
    stopLinkPolling();
    element("code-entry").hidden = true;
    if (method in CHALLENGE) return sendCode(method);
    if (method in VERIFY) return askForCode(method);
    if (method === "SECURITY_KEY") return useSecurityKey();
    if (method === "EMAIL_MAGIC_LINK") return sendLink();
  });
}

function submitCode(event) {
  event.preventDefault();
  const code = element("code-input").value.trim();
  if (!code || !codeMethod) return;
  const method = codeMethod;
  return attempt(async () => {
    say(text.checking);
    const outcome = await api(VERIFY[method], { verificationCode: code });
    if (outcome.isVerified && outcome.accessToken) return verifiedWith(method, outcome);
    const exhausted = outcome.failureReason === "MAX_ATTEMPTS_EXCEEDED";
    say(exhausted ? text.code_max_attempts : text.code_invalid, "error");
    element("code-input").select();
  });
}

async function useSecurityKey() {
  const options = await api("/user-authenticators/security-key/authentication-options", {});
  say(text.security_key_waiting);
  const credential = await getPasskey(options);
  say(text.checking);
  verifiedWith("SECURITY_KEY", await api("/verify/security-key", credential));
}

// An email link: the user confirms on the link's page (any device); this page asks every
// second whether they have, and only it, holding the token, receives the access token.
async function sendLink() {
  await api("/challenge/email-magic-link");
  say(text.magic_link_sent);
  linkTimer = window.setTimeout(pollLink, POLL_MS);
}

function stopLinkPolling() {
  if (linkTimer !== null) window.clearTimeout(linkTimer);
  linkTimer = null;
}

async function pollLink() {
  linkTimer = null;
  if (finished) return;
  try {
    const outcome = await api("/verify/email-magic-link/finalize", {});
    if (outcome.isVerified && outcome.accessToken) {
      return verifiedWith("EMAIL_MAGIC_LINK", outcome);
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === FATAL_STATUS) return explain(error);
  }
  if (!finished) linkTimer = window.setTimeout(pollLink, POLL_MS);
}

// Confirmed. With a remove:authenticators token the user's authenticators come next, removed
// with the token the challenge answered; Done then finishes with it.
function completed(accessToken) {
  if (!data.manageAfter) return succeed(accessToken);
  bearer = accessToken;
  stopPolling();
  stopLinkPolling();
  for (const section of document.querySelectorAll("main section.method")) section.hidden = true;
  for (const id of ["try-another", "lost-device", "show-push"]) {
    element(id)?.setAttribute("hidden", "");
  }
  say(text.success, "ok");
  element("manage").hidden = false;
  const done = element("done");
  done.hidden = false;
  reportHeight();
  done.focus();
}

// Confirmed by a fallback method. After "I lost my device" and one of the tenant's recovery
// methods, a new passkey or a push device first (the verify's token lets one in); otherwise
// done.
function verifiedWith(method, outcome) {
  const passkeyHere = data.passkeysAvailable && passkeysSupported();
  const recovering =
    lostDevice && data.recoveryMethods.includes(method) && (passkeyHere || data.pushEnrolment);
  if (!recovering) return completed(outcome.accessToken);
  bearer = outcome.accessToken;
  for (const id of ["fallbacks", "code-entry", "passkey", "push", "enrol"]) {
    const section = element(id);
    if (section) section.hidden = true;
  }
  stopPolling();
  say("");
  element("recover-enrol").hidden = false;
  element("recover-passkey").hidden = !passkeyHere;
  const push = element("recover-push");
  if (push && !passkeyHere) {
    // The only way offered: its own words, and the main button.
    push.textContent = text.recover_push_only;
    push.classList.remove("secondary");
  }
  reportHeight();
  (passkeyHere ? element("recover-passkey") : push).focus();
}

// A push device instead: the form opens the push enrolment page in a new tab with the
// verify's token, which spends its leave to add an authenticator on the QR code. This page
// stays, to finish with the same token when the user comes back and presses Done.
function openPushEnrolment(event) {
  const form = event.currentTarget;
  if (finished || busy) {
    event.preventDefault();
    return;
  }
  form.elements.token.value = bearer;
  for (const id of ["recover-passkey", "recover-skip"]) element(id).hidden = true;
  say(text.recover_push_opened);
  const done = element("recover-done");
  done.hidden = false;
  // After the submission has taken the token: a second link could not be made with it.
  window.setTimeout(() => {
    form.elements.token.value = "";
    form.hidden = true;
    reportHeight();
    done.focus();
  });
}

// Removing authenticators --------------------------------------------------------------

function remove(button) {
  const id = button.dataset.id;
  return attempt(async () => {
    await api(`/user-authenticators/${encodeURIComponent(id)}`, undefined, "DELETE");
    button.closest("li").remove();
    element("manage-none").hidden = Boolean(document.querySelector("#authenticators li[data-id]"));
    say(text.removed, "ok");
    reportHeight();
  });
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
  element("try-another")?.addEventListener("click", () => showFallbacks(false));
  element("lost-device")?.addEventListener("click", () => showFallbacks(true));
  for (const button of document.querySelectorAll("button.fallback")) {
    button.addEventListener("click", () => useFallback(button.dataset.method));
  }
  element("code-form")?.addEventListener("submit", submitCode);
  element("code-resend")?.addEventListener("click", () => useFallback(codeMethod));
  element("recover-passkey")?.addEventListener("click", enrol);
  element("recover-skip")?.addEventListener("click", () => completed(bearer));
  element("recover-push-form")?.addEventListener("submit", openPushEnrolment);
  element("recover-done")?.addEventListener("click", () => completed(bearer));
  element("done")?.addEventListener("click", () => succeed(bearer));
  for (const button of document.querySelectorAll("button.remove")) {
    button.addEventListener("click", () => remove(button));
  }
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
