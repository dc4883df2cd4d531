/*
 * A consumer holding the keys (the Java twin of tests/interop/protected_consumer.py): reads
 * topics with the Apache Kafka client, decodes values with Apache Avro (Confluent framing, the
 * writer schema from the registry by id, as Main does), finds the protected fields from the
 * writer schema's `riskos.protect` marks (Protected.java), opens every encrypted value and the
 * encrypted body in `raw`, and checks every hash token against the value the opened body
 * carries there.
 *
 *   JAVA_INTEROP_MAIN=riskos.interop.ProtectedConsumer scripts/java-interop.sh
 *       --bootstrap HOST:PORT --registry URL --hash-keys FILE --encryption-keys FILE --topic T...
 *
 * Prints the JSON lines protected_consumer.py prints. Exits non-zero on a value it cannot open.
 * Used by tests/api/consumers.rs; the marked part is in docs/consumers.md.
 */
package riskos.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class ProtectedConsumer {
  private static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] args) throws Exception {
    Map<String, String> options = new HashMap<>();
    List<String> topics = new ArrayList<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--topic")) {
        topics.add(args[i + 1]);
      } else {
        options.put(args[i], args[i + 1]);
      }
    }
    List<String> required =
        List.of("--bootstrap", "--registry", "--hash-keys", "--encryption-keys");
    if (args.length % 2 != 0 || topics.isEmpty() || !options.keySet().containsAll(required)) {
      System.err.println(
          "usage: --bootstrap HOST:PORT --registry URL --hash-keys FILE --encryption-keys FILE"
              + " --topic TOPIC...");
      System.exit(2);
    }
    Map<String, byte[]> hashKeys = Protected.loadKeys(Path.of(options.get("--hash-keys")));
    Map<String, byte[]> encryptionKeys =
        Protected.loadKeys(Path.of(options.get("--encryption-keys")));
    Main.ConfluentDecoder decoder = new Main.ConfluentDecoder(options.get("--registry"));

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, options.get("--bootstrap"));
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
    props.put(ConsumerConfig.CLIENT_ID_CONFIG, "riskos-java-protected");
    props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "50");
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      for (String topic : topics) {
        for (ConsumerRecord<byte[], byte[]> record : records(consumer, topic)) {
          GenericRecord value = decoder.decode(record.value());
          ObjectNode line = JSON.createObjectNode();
          line.put("topic", topic).put("partition", record.partition());
          line.put("offset", record.offset());
          line.set("value", Main.toJson(value, value.getSchema()));
          ArrayNode fields = line.putArray("fields");
          // [consumers.md] begin
          String key = new String(record.key(), StandardCharsets.UTF_8);
          // value.getSchema() is the writer schema: its marks say what is protected.
          String body = value.get("raw").toString();
          if (body.startsWith("e2.") || body.startsWith("e1.")) { // raw = "encrypt": the body
            byte[] plain = Protected.decrypt(encryptionKeys, body, topic, key, List.of("raw"));
            body = new String(plain, StandardCharsets.UTF_8);
          }
          JsonNode sent = body.isEmpty() ? null : JSON.readTree(body); // empty: raw = "drop"
          for (Protected.Found found : Protected.protectedValues(value)) {
            ObjectNode field = fields.addObject().put("path", found.path());
            field.set("at", JSON.valueToTree(found.at()));
            field.put("policy", found.policy()).put("stored", found.stored());
            if (found.policy().equals("encrypt")) {
              byte[] plain =
                  Protected.decrypt(encryptionKeys, found.stored(), topic, key, found.at());
              field.set("value", JSON.readTree(plain));
            } else if (found.policy().equals("hash") && sent != null) {
              JsonNode guess = Protected.valueAt(sent, found.at()); // here: the body's value
              field.put("matches_body", Protected.hashMatches(hashKeys, found.stored(), guess));
            }
          }
          // [consumers.md] end
          line.put("key", key).put("raw", body);
          out.println(JSON.writeValueAsString(line));
        }
      }
    }
    out.flush();
  }

  /** Every record of `topic`, from its beginning to the end offsets taken now. */
  private static List<ConsumerRecord<byte[], byte[]>> records(
      KafkaConsumer<byte[], byte[]> consumer, String topic) {
    List<TopicPartition> partitions = new ArrayList<>();
    for (PartitionInfo info : consumer.partitionsFor(topic)) {
      partitions.add(new TopicPartition(topic, info.partition()));
    }
    Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
    consumer.assign(partitions);
    consumer.seekToBeginning(partitions);
    List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
    while (!reachedEnd(consumer, end)) {
      var polled = consumer.poll(Duration.ofSeconds(10));
      if (polled.isEmpty() && !reachedEnd(consumer, end)) {
        throw new IllegalStateException("timed out reading " + topic + ", end offsets " + end);
      }
      for (ConsumerRecord<byte[], byte[]> record : polled) {
        if (record.offset() < end.get(new TopicPartition(topic, record.partition()))) {
          records.add(record);
        }
      }
    }
    return records;
  }

  private static boolean reachedEnd(
      KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> end) {
    return end.entrySet().stream().allMatch(e -> consumer.position(e.getKey()) >= e.getValue());
  }
}
