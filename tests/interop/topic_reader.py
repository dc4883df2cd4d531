"""Reads a topic from its beginning to the end offsets taken when it starts: what the interop
scripts (decode_topics.py, cloudevents_read.py, protected_consumer.py) share."""

import sys

from confluent_kafka import TopicPartition


def messages(consumer, topic):
    """Every message of `topic`, from its beginning to the end offsets taken now."""
    wanted = {}
    for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            wanted[p] = (low, high)
    consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in wanted.items()])
    remaining = sum(high - low for low, high in wanted.values())
    while remaining > 0:
        msg = consumer.poll(10)
        if msg is None:
            sys.exit(f"timed out reading {topic}")
        if msg.error():
            sys.exit(f"consume error: {msg.error()}")
        if msg.offset() < wanted[msg.partition()][1]:
            remaining -= 1
            yield msg
    consumer.unassign()
