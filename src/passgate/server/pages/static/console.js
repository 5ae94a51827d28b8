// The console's passkey ceremonies: sign in, enrol from a one-time link, add a passkey.
// Loaded as a module on every console page; it acts on the buttons a page has.
import { createPasskey, getPasskey, passkeysSupported } from "./webauthn.js";

const status = document.getElementById("status");

function show(message, isError) {
  if (!status) return;
  status.textContent = message;
  status.className = isError ? "status field-error" : "status";
}

async function call(path, body) {
  const headers = { "Content-Type": "application/json" };
  const csrf = document.querySelector('meta[name="csrf-token"]');
  if (csrf) headers["X-CSRF-Token"] = csrf.content;
  const response = await fetch(path, {
    method: "POST",
    headers,
    credentials: "same-origin",
    body: JSON.stringify(body || {}),
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(reply.errorDescription || `The server answered ${response.status}.`);
  }
  return reply;
}

function explain(error) {
  if (error && error.name === "NotAllowedError") {
    return "The passkey prompt was cancelled or timed out. Try again.";
  }
  if (error && error.name === "InvalidStateError") {
    return "This device already holds a passkey of yours.";
  }
  return (error && error.message) || "Something went wrong. Try again.";
}

async function ceremony(button, path, create, extra) {
  button.disabled = true;
  show(create ? "Follow your device's prompt to create the passkey…" : "Follow your device's prompt…");
  try {
    const started = await call(`${path}/options`, extra);
    const credential = create
      ? await createPasskey(started.options)
      : await getPasskey(started.options);
    const finished = await call(`${path}/finish`, {
      challengeId: started.challengeId,
      credential,
      ...extra,
    });
    show("Done.");
    window.location.assign(finished.redirect);
  } catch (error) {
    show(explain(error), true);
    button.disabled = false;
  }
}

function wire(id, path, create, extra) {
  const button = document.getElementById(id);
  if (!button) return;
  if (!passkeysSupported()) {
    button.disabled = true;
    show("This browser does not support passkeys.", true);
    return;
  }
  button.addEventListener("click", () => ceremony(button, path, create, extra(button)));
}

wire("sign-in", "/admin/sign-in", false, (button) => ({ next: button.dataset.next }));
wire("enrol", "/admin/enrol", true, (button) => ({ token: button.dataset.token }));
wire("add-passkey", "/admin/account/passkeys", true, () => ({}));
