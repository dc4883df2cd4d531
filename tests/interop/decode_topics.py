"""Independent decoder: reads topics with Python confluent-kafka and decodes every value with a
decoder we did not write:
- Confluent framing (`--registry URL`): confluent-kafka's AvroDeserializer, writer schema fetched
  from the registry by id;
- Avro single-object framing (`--schemas DIR`): fastavro, after checking the C3 01 marker and that
  the 8-byte fingerprint equals fastavro's own CRC-64-AVRO fingerprint of one of the .avsc files.

Prints one JSON line per record: {"topic", "partition", "offset", "key", "headers", "value"}.
Timestamps (timestamp-millis) are printed as epoch milliseconds. Used by tests/kafka/interop.rs.
"""
import argparse
import datetime
import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from topic_reader import messages
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    raise TypeError(f"cannot print {type(value)}")


class SingleObjectDecoder:
    def __init__(self, schema_dir):
        self.by_fingerprint = {}
        for path in pathlib.Path(schema_dir).glob("*.avsc"):
            parsed = parse_schema(json.loads(path.read_text()))
            # fastavro's hex is the spec's 64-bit Rabin fingerprint in wire (little-endian) order.
            wire = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
            self.by_fingerprint[wire] = parsed

    def __call__(self, payload, _ctx):
        if payload[:2] != b"\xc3\x01":
            sys.exit(f"not single-object encoded: {payload[:2]!r}")
        schema = self.by_fingerprint.get(payload[2:10])
        if schema is None:
            sys.exit(f"unknown fingerprint {payload[2:10].hex()}")
        return fastavro.schemaless_reader(io.BytesIO(payload[10:]), schema)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    framing = parser.add_mutually_exclusive_group(required=True)
    framing.add_argument("--registry")
    framing.add_argument("--schemas")
    parser.add_argument("--topic", action="append", required=True)
    args = parser.parse_args()

    if args.registry:
        deserializer = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    else:
        deserializer = SingleObjectDecoder(args.schemas)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "riskos-interop",
        "enable.auto.commit": False,
    })
    for topic in args.topic:
        for msg in messages(consumer, topic):
            value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
            print(json.dumps({
                "topic": topic,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": msg.key().decode() if msg.key() is not None else None,
                "headers": {k: v.decode() for k, v in (msg.headers() or [])},
                "value": value,
            }, default=to_json))
        consumer.unassign()
    consumer.close()


if __name__ == "__main__":
    main()
