// The Express receiver customers write today, from the vendor guide's sample: parse the JSON,
// check event_id / event_type, drop duplicates with an in-memory seen set, answer 200 —
// extended the way a careful customer would: a bearer-token check, the request-token envelope's
// field names, and a kafkajs producer whose send is awaited before the reply, so a 200 means the
// broker acked (acks=-1, like the connector). One process, as in the sample. Idempotent, as the
// connector and the Flask peer are (kafkajs requires one request in flight per broker for it).
// Benchmark peer only.

import express from "express";
import { Kafka, logLevel } from "kafkajs";

const port = Number(process.env.PORT || 3000);
const topic = process.env.KAFKA_TOPIC || "riskos.webhooks";
const expectedAuth = `Bearer ${process.env.WEBHOOK_TOKEN}`;

const kafka = new Kafka({
  clientId: "riskos-express",
  brokers: [process.env.KAFKA_BOOTSTRAP],
  logLevel: logLevel.WARN,
});
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });

const app = express();
app.use(express.json({ type: "application/json" }));

// Replace with a real, persistent store:
const seen = new Set();

app.get("/healthz", (_req, res) => res.status(200).send("ok"));

app.post("/webhooks/riskos", async (req, res) => {
  if (req.get("authorization") !== expectedAuth) return res.status(401).send("Unauthorized");
  const body = req.body || {};
  const eventId = body.event_id ?? body.request_token;
  const eventType = body.event_type ?? body.type;
  if (!eventId || !eventType) return res.status(400).send("Bad Request");

  // Idempotency: drop duplicates
  if (seen.has(eventId)) return res.status(200).send("OK");

  try {
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: eventId, value: JSON.stringify(body), headers: { event_type: eventType } }],
    });
  } catch (error) {
    console.error(error);
    return res.status(503).send("Service Unavailable");
  }
  seen.add(eventId);
  return res.status(200).send("OK");
});

await producer.connect();
const server = app.listen(port, "127.0.0.1", () => console.log(`Listening on :${port}`));
process.on("SIGTERM", async () => {
  server.close();
  await producer.disconnect();
  process.exit(0);
});
