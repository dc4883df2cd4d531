"""Independent decoder: reads topics with Python confluent-kafka and decodes every value with
confluent-kafka's AvroDeserializer (writer schema fetched from the registry by id).

Prints one JSON line per record: {"topic", "partition", "offset", "key", "headers", "value"}.
Timestamps (timestamp-millis) are printed as epoch milliseconds. Used by tests/api/interop.rs.
"""
import argparse
import datetime
import json
import sys

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    raise TypeError(f"cannot print {type(value)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", action="append", required=True)
    args = parser.parse_args()

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "riskos-interop",
        "enable.auto.commit": False,
    })
    for topic in args.topic:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        wanted = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                wanted[p] = (low, high)
        if not wanted:
            continue
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in wanted.items()])
        remaining = sum(high - low for low, high in wanted.values())
        while remaining > 0:
            msg = consumer.poll(10)
            if msg is None:
                sys.exit(f"timed out reading {topic}")
            if msg.error():
                sys.exit(f"consume error: {msg.error()}")
            if msg.offset() >= wanted[msg.partition()][1]:
                continue
            remaining -= 1
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
