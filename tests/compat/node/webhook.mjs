// Verifies a webhook the way Authsignal's Node SDK does: reads the raw body from stdin, the
// secret and the x-signature-v2 header from the environment, and prints the event as JSON,
// or {"error": message} when constructEvent refuses it.
import { Authsignal } from "@authsignal/node";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const payload = Buffer.concat(chunks).toString("utf8");
const authsignal = new Authsignal({ apiSecretKey: process.env.WEBHOOK_SECRET, retries: 0 });
try {
  const event = authsignal.webhook.constructEvent(payload, process.env.WEBHOOK_SIGNATURE);
  console.log(JSON.stringify({ event }));
} catch (error) {
  console.log(JSON.stringify({ error: error.message }));
}
