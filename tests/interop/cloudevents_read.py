"""Independent CloudEvents reader: reads topics with Python confluent-kafka and turns each record
into a CloudEvent with the CloudEvents Python SDK's Kafka binding in binary content mode
(`cloudevents.core.bindings.kafka.from_binary` over a `KafkaMessage(headers, key, value)`), as a
CloudEvents consumer would.

The SDK ships a JSON event format only; its `read_data` would turn a value that happens to be
UTF-8 into text, so the format used here keeps the data as the bytes received (Avro is binary,
and the test compares it with the record's value byte for byte).

Prints one JSON line per record: {"topic", "partition", "offset", "key", "value_hex", "headers",
"duplicate_headers", "cloudevent"}, where "cloudevent" is null for a record with no `ce_` header
(not a CloudEvent) and otherwise the event's attributes ("time" as the SDK parsed it, in ISO 8601)
and its data as hex ("data_hex"). Used by tests/kafka/cloudevents.rs.
"""
import argparse
import json
import sys

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from topic_reader import messages
from confluent_kafka import Consumer


class BytesData(JSONFormat):
    """The JSON format, but binary-mode data is kept as the bytes received."""

    def read_data(self, body, datacontenttype):
        return bytes(body)


def cloudevent(message):
    if not any(name.lower().startswith("ce_") for name in message.headers):
        return None
    event = from_binary(message, BytesData())
    attributes = dict(event.get_attributes())
    time = event.get_time()
    if time is not None:
        attributes["time"] = time.isoformat()
    data = event.get_data()
    if not isinstance(data, bytes):
        sys.exit(f"data is not bytes but {type(data)}")
    attributes["data_hex"] = data.hex()
    return attributes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", default="riskos-cloudevents")
    parser.add_argument("--topic", action="append", required=True)
    args = parser.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
    })
    for topic in args.topic:
        for msg in messages(consumer, topic):
            pairs = msg.headers() or []
            headers = {name: value for name, value in pairs}
            duplicates = sorted({n for n, _ in pairs if sum(1 for m, _ in pairs if m == n) > 1})
            message = KafkaMessage(headers=headers, key=msg.key(), value=msg.value())
            print(json.dumps({
                "topic": topic,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": msg.key().decode() if msg.key() is not None else None,
                "value_hex": msg.value().hex(),
                "headers": {k: v.decode() for k, v in headers.items()},
                "duplicate_headers": duplicates,
                "cloudevent": cloudevent(message),
            }))
        consumer.unassign()
    consumer.close()


if __name__ == "__main__":
    main()
