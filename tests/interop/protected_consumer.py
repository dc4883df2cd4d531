"""A consumer holding the keys: reads topics with confluent-kafka (Confluent framing, writer
schema from the registry by id), finds the protected fields from the writer schema's
`riskos.protect` marks (riskos_protect.py), opens every encrypted value and the encrypted body
in `raw`, and checks every hash token against the value the opened body carries there.

    protected_consumer.py --bootstrap HOST:PORT --registry URL --hash-keys FILE
                          --encryption-keys FILE --topic T...

Prints one JSON line per record: {"topic", "partition", "offset", "key", "value" (the record as
stored), "raw" (the opened body), "fields": [{"path", "at", "policy", "stored", "value" (an
opened value) | "matches_body" (a hash token)}]}. Exits non-zero on a value it cannot open.
Used by tests/kafka/consumers.rs; the marked part is in docs/consumers.md.
"""
import argparse
import datetime
import json

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from topic_reader import messages
from riskos_protect import decrypt, hash_matches, load_keys, protected_values, value_at

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    raise TypeError(f"cannot print {type(value)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--hash-keys", required=True)
    parser.add_argument("--encryption-keys", required=True)
    parser.add_argument("--topic", action="append", required=True)
    args = parser.parse_args()
    hash_keys = load_keys(args.hash_keys)
    encryption_keys = load_keys(args.encryption_keys)
    registry = SchemaRegistryClient({"url": args.registry})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "riskos-protected",
                         "enable.auto.commit": False})
    for topic in args.topic:
        for msg in messages(consumer, topic):
            record = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
            # [consumers.md] begin
            key = msg.key().decode()
            # The writer schema (its id is bytes 1-4 of the value) says what is protected.
            schema_id = int.from_bytes(msg.value()[1:5], "big")
            schema = json.loads(registry.get_schema(schema_id).schema_str)
            body = record["raw"]
            if body.startswith(("e2.", "e1.")):  # the body, encrypted whole (raw = "encrypt")
                body = decrypt(encryption_keys, body, topic, key, ["raw"]).decode()
            sent = json.loads(body) if body else None  # None: raw = "drop"
            fields = []
            for path, at, policy, stored in protected_values(schema, record):
                field = {"path": path, "at": at, "policy": policy, "stored": stored}
                if policy == "encrypt":
                    field["value"] = json.loads(decrypt(encryption_keys, stored, topic, key, at))
                elif policy == "hash" and sent is not None:
                    guess = value_at(sent, at)  # here: the body's value
                    field["matches_body"] = hash_matches(hash_keys, stored, guess)
                fields.append(field)
            # [consumers.md] end
            print(json.dumps({
                "topic": topic, "partition": msg.partition(), "offset": msg.offset(),
                "key": key, "value": record, "raw": body, "fields": fields,
            }, default=to_json, ensure_ascii=False))
    consumer.close()


if __name__ == "__main__":
    main()
