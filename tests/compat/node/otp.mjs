// A backend's own one-time code with @authsignal/node: challenge, then (once the test has
// read the delivered code and written it on stdin) verify, getChallenge, claimChallenge and
// validateChallenge, each answer printed as JSON, one object per line.
import { Authsignal } from "@authsignal/node";
import readline from "node:readline";

const authsignal = new Authsignal({
  apiSecretKey: process.env.AUTHSIGNAL_API_SECRET,
  apiUrl: process.env.AUTHSIGNAL_API_URL,
  retries: 0,
});
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const started = await authsignal.challenge({
  verificationMethod: "EMAIL_OTP",
  email: process.env.OTP_EMAIL,
  action: "signUp",
});
console.log(JSON.stringify({ started }));
const code = (await lines.next()).value.trim();
const wrong = String((Number(code) + 1) % 1000000).padStart(6, "0");
const { challengeId } = started;
const out = {};
out.wrong = await authsignal.verify({ challengeId, verificationCode: wrong });
out.verified = await authsignal.verify({ challengeId, verificationCode: code });
out.found = await authsignal.getChallenge({ challengeId });
out.claimed = await authsignal.claimChallenge({ challengeId, userId: "node-otp" });
out.validated = await authsignal.validateChallenge({ token: out.claimed.token });
console.log(JSON.stringify(out));
process.exit(0);
