// Drives every Server API method of @authsignal/node that Passgate implements, against the
// server at AUTHSIGNAL_API_URL, and prints what each call returned as one JSON object.
import { Authsignal, AuthsignalError } from "@authsignal/node";

const authsignal = new Authsignal({
  apiSecretKey: process.env.AUTHSIGNAL_API_SECRET,
  apiUrl: process.env.AUTHSIGNAL_API_URL,
  retries: 0,
});
const out = {};
const userId = "node-user";

out.updateUser = await authsignal.updateUser({
  userId,
  attributes: { email: "node@example.com", username: "node-user", displayName: "Node User" },
});
out.enroll = await authsignal.enrollVerifiedAuthenticator({
  userId,
  attributes: { verificationMethod: "SMS", phoneNumber: "+6421222333" },
});
out.track = await authsignal.track({
  userId,
  action: "signIn",
  attributes: { ipAddress: "198.51.100.7", custom: { plan: "pro" } },
});
const { idempotencyKey, token } = out.track;
out.getAction = await authsignal.getAction({ userId, action: "signIn", idempotencyKey });
out.validatePending = await authsignal.validateChallenge({ token });
out.updateAction = await authsignal.updateAction({
  userId,
  action: "signIn",
  idempotencyKey,
  attributes: { state: "CHALLENGE_SUCCEEDED" },
});
out.validate = await authsignal.validateChallenge({ token, userId, action: "signIn" });
out.queryUserActions = await authsignal.queryUserActions({ userId, actionCodes: ["signIn"] });
out.queryUsers = await authsignal.queryUsers({ email: "node@example.com" });
out.getUser = await authsignal.getUser({ userId });
out.getAuthenticators = await authsignal.getAuthenticators({ userId });
await authsignal.deleteAuthenticator({
  userId,
  userAuthenticatorId: out.enroll.authenticator.userAuthenticatorId,
});
out.afterDeleteAuthenticator = await authsignal.getAuthenticators({ userId });
await authsignal.deleteUser({ userId });
out.afterDeleteUser = await authsignal.getUser({ userId });

const badKey = new Authsignal({
  apiSecretKey: "pg_sk_wrong",
  apiUrl: process.env.AUTHSIGNAL_API_URL,
  retries: 0,
});
try {
  await badKey.getUser({ userId });
  out.badKey = "no error";
} catch (error) {
  out.badKey = {
    isAuthsignalError: error instanceof AuthsignalError,
    statusCode: error.statusCode,
    errorCode: error.errorCode,
    errorDescription: error.errorDescription,
    message: error.message,
  };
}
console.log(JSON.stringify(out));
