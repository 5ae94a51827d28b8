// WebAuthn JSON <-> browser objects, for the hosted pages and the console. No dependencies.

export function base64urlToBuffer(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

export function bufferToBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list || []).map((item) => ({ ...item, id: base64urlToBuffer(item.id) }));
}

export function creationOptions(json) {
  return {
    ...json,
    challenge: base64urlToBuffer(json.challenge),
    user: { ...json.user, id: base64urlToBuffer(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

export function requestOptions(json) {
  return {
    ...json,
    challenge: base64urlToBuffer(json.challenge),
    allowCredentials: descriptors(json.allowCredentials),
  };
}

// The fields every PublicKeyCredential has in its JSON form, with its response's own fields.
function credentialJSON(credential, response) {
  return {
    id: credential.id,
    rawId: bufferToBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: { clientDataJSON: bufferToBase64url(credential.response.clientDataJSON), ...response },
  };
}

export function registrationJSON(credential) {
  const response = credential.response;
  return credentialJSON(credential, {
    attestationObject: bufferToBase64url(response.attestationObject),
    transports: response.getTransports ? response.getTransports() : [],
  });
}

export function authenticationJSON(credential) {
  const response = credential.response;
  return credentialJSON(credential, {
    authenticatorData: bufferToBase64url(response.authenticatorData),
    signature: bufferToBase64url(response.signature),
    userHandle: response.userHandle ? bufferToBase64url(response.userHandle) : undefined,
  });
}

export async function createPasskey(optionsJSON) {
  const credential = await navigator.credentials.create({ publicKey: creationOptions(optionsJSON) });
  return registrationJSON(credential);
}

export async function getPasskey(optionsJSON, mediation) {
  const request = { publicKey: requestOptions(optionsJSON) };
  if (mediation) request.mediation = mediation;
  const credential = await navigator.credentials.get(request);
  return authenticationJSON(credential);
}

export function passkeysSupported() {
  return Boolean(window.PublicKeyCredential && navigator.credentials);
}
