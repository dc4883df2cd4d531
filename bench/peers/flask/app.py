"""The Flask receiver customers write today, from the vendor guide's sample: parse the JSON,
check event_id / event_type, drop duplicates with an in-memory seen set, answer 200 — extended
the way a careful customer would: a bearer-token check, the request-token envelope's field
names, and a confluent-kafka producer whose delivery report (flush) is awaited before the
reply, so a 200 means the broker acked (acks=all, idempotent, like the connector).

Served by gunicorn sync workers (one producer per worker process). Benchmark peer only.
"""

import os

from confluent_kafka import Producer
from flask import Flask, request

app = Flask(__name__)
seen = set()  # replace with durable store

TOPIC = os.environ.get("KAFKA_TOPIC", "riskos.webhooks")
EXPECTED_AUTH = "Bearer " + os.environ["WEBHOOK_TOKEN"]
_producer = None


def producer():
    # Created lazily so each gunicorn worker (a forked process) gets its own.
    global _producer
    if _producer is None:
        _producer = Producer(
            {
                "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"],
                "acks": "all",
                "enable.idempotence": True,
            }
        )
    return _producer


@app.get("/healthz")
def healthz():
    return ("ok", 200)


@app.post("/webhooks/riskos")
def riskos():
    if request.headers.get("Authorization") != EXPECTED_AUTH:
        return ("Unauthorized", 401)
    payload = request.get_json(silent=True) or {}
    event_id = payload.get("event_id") or payload.get("request_token")
    event_type = payload.get("event_type") or payload.get("type")
    if not event_id or not event_type:
        return ("Bad Request", 400)
    if event_id in seen:
        return ("OK", 200)

    report = {}

    def delivered(err, _msg):
        report["error"] = err

    p = producer()
    try:
        p.produce(
            TOPIC,
            key=event_id,
            value=request.get_data(),
            headers=[("event_type", event_type)],
            on_delivery=delivered,
        )
    except BufferError:
        return ("Service Unavailable", 503)
    p.flush(5.0)  # wait for the broker's ack before answering
    if "error" not in report or report["error"] is not None:
        return ("Service Unavailable", 503)
    seen.add(event_id)
    return ("OK", 200)
