/*
 * Java interop decoder: reads the connector's topics with the Apache Kafka client and decodes
 * every value with Apache Avro, the libraries Flink, Spark and Kafka Streams applications run on.
 * Nothing here comes from this project or from Confluent.
 *
 *   scripts/java-interop.sh --bootstrap HOST:PORT (--registry URL | --schemas DIR) --topic T...
 *
 * --registry URL  Confluent wire format (0x00, 4-byte big-endian schema id, datum): the writer
 *                 schema is fetched once per id from GET URL/schemas/ids/{id} (java.net.http)
 *                 and the datum read with GenericDatumReader.
 * --schemas DIR   Avro single-object encoding (C3 01, 8-byte little-endian CRC-64-AVRO
 *                 fingerprint, datum): every DIR/*.avsc goes into a SchemaStore.Cache, and
 *                 Avro's BinaryMessageDecoder checks the header, finds the writer schema by its
 *                 fingerprint and reads the datum.
 *
 * Each topic is read from its beginning to the end offsets taken when it is assigned (partitions
 * assigned explicitly, no consumer group, nothing committed). One JSON line per record, the
 * shape tests/interop/decode_topics.py prints:
 *   {"topic", "partition", "offset", "key", "headers": {name: value}, "value": {...}}
 * Values are plain JSON: unions unwrapped, enums as their symbol, timestamp-millis as the epoch
 * milliseconds (a long), bytes/fixed as ISO-8859-1 strings (as Avro's JSON encoding does), and
 * riskos.json fields left as the JSON text they carry. Exits non-zero on any record it cannot
 * decode, or when a topic stops delivering before its end offsets.
 */
package riskos.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class Main {
  private static final Duration POLL_TIMEOUT = Duration.ofSeconds(10);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  /** Turns a record value into the decoded Avro datum. */
  interface ValueDecoder {
    GenericRecord decode(byte[] payload) throws IOException;
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = null;
    String registry = null;
    String schemas = null;
    List<String> topics = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      String value = i + 1 < args.length ? args[i + 1] : null;
      switch (args[i]) {
        case "--bootstrap" -> bootstrap = value;
        case "--registry" -> registry = value;
        case "--schemas" -> schemas = value;
        case "--topic" -> topics.add(value);
        default -> usage("unknown argument " + args[i]);
      }
      if (value == null) {
        usage(args[i] + " needs a value");
      }
      i++;
    }
    if (bootstrap == null || topics.isEmpty() || (registry == null) == (schemas == null)) {
      usage("--bootstrap, one of --registry/--schemas and at least one --topic are required");
    }
    ValueDecoder decoder =
        registry != null
            ? new ConfluentDecoder(registry)
            : new SingleObjectDecoder(Path.of(schemas));

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
    props.put(ConsumerConfig.CLIENT_ID_CONFIG, "riskos-java-interop");
    // A fetch left waiting at the end of one topic would hold up the next topic's first fetch
    // (one fetch in flight per broker) for the default 500 ms.
    props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "50");
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      for (String topic : topics) {
        readTopic(consumer, topic, decoder, out);
      }
    }
    out.flush();
  }

  /** Prints every record of `topic` up to the end offsets taken now. */
  private static void readTopic(
      KafkaConsumer<byte[], byte[]> consumer, String topic, ValueDecoder decoder, PrintStream out)
      throws IOException {
    List<TopicPartition> partitions = new ArrayList<>();
    for (PartitionInfo info : consumer.partitionsFor(topic)) {
      partitions.add(new TopicPartition(topic, info.partition()));
    }
    if (partitions.isEmpty()) {
      System.err.println("java-interop: topic " + topic + " does not exist; skipped");
      return;
    }
    Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
    consumer.assign(partitions); // replaces the previous topic's partitions
    consumer.seekToBeginning(partitions);
    while (!reachedEnd(consumer, end)) {
      var records = consumer.poll(POLL_TIMEOUT);
      if (records.isEmpty() && !reachedEnd(consumer, end)) {
        throw new IllegalStateException("timed out reading " + topic + ", end offsets " + end);
      }
      for (ConsumerRecord<byte[], byte[]> record : records) {
        TopicPartition tp = new TopicPartition(record.topic(), record.partition());
        if (record.offset() >= end.get(tp)) {
          continue; // written after we started
        }
        out.println(JSON.writeValueAsString(line(record, decoder)));
      }
    }
  }

  private static boolean reachedEnd(
      KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> end) {
    return end.entrySet().stream().allMatch(e -> consumer.position(e.getKey()) >= e.getValue());
  }

  private static ObjectNode line(ConsumerRecord<byte[], byte[]> record, ValueDecoder decoder)
      throws IOException {
    ObjectNode line = NODES.objectNode();
    line.put("topic", record.topic());
    line.put("partition", record.partition());
    line.put("offset", record.offset());
    line.put("key", record.key() == null ? null : utf8(record.key()));
    ObjectNode headers = line.putObject("headers");
    for (Header header : record.headers()) {
      headers.put(header.key(), header.value() == null ? null : utf8(header.value()));
    }
    GenericRecord value;
    try {
      value = decoder.decode(record.value());
    } catch (IOException | RuntimeException e) {
      throw new IOException(
          "cannot decode " + record.topic() + "/" + record.partition() + "@" + record.offset(), e);
    }
    line.set("value", toJson(value, value.getSchema()));
    return line;
  }

  /** Plain JSON for an Avro datum of `schema` (see the header comment for the mapping). */
  static JsonNode toJson(Object datum, Schema schema) {
    return switch (schema.getType()) {
      case NULL -> NODES.nullNode();
      case BOOLEAN -> NODES.booleanNode((Boolean) datum);
      case INT -> NODES.numberNode((Integer) datum);
      case LONG -> NODES.numberNode((Long) datum); // timestamp-millis stays the epoch ms
      case FLOAT -> NODES.numberNode((Float) datum);
      case DOUBLE -> NODES.numberNode((Double) datum);
      case STRING, ENUM -> NODES.textNode(datum.toString());
      case BYTES -> NODES.textNode(latin1(((ByteBuffer) datum).duplicate()));
      case FIXED -> NODES.textNode(latin1(ByteBuffer.wrap(((GenericFixed) datum).bytes())));
      case UNION -> {
        Schema branch = schema.getTypes().get(GenericData.get().resolveUnion(schema, datum));
        yield toJson(datum, branch);
      }
      case ARRAY -> {
        ArrayNode array = NODES.arrayNode();
        for (Object item : (Iterable<?>) datum) {
          array.add(toJson(item, schema.getElementType()));
        }
        yield array;
      }
      case MAP -> {
        ObjectNode map = NODES.objectNode();
        Schema values = schema.getValueType();
        ((Map<?, ?>) datum).forEach((k, v) -> map.set(k.toString(), toJson(v, values)));
        yield map;
      }
      case RECORD -> {
        ObjectNode object = NODES.objectNode();
        GenericRecord record = (GenericRecord) datum;
        for (Schema.Field field : schema.getFields()) {
          object.set(field.name(), toJson(record.get(field.pos()), field.schema()));
        }
        yield object;
      }
    };
  }

  /** Confluent framing; writer schemas fetched from the registry by id, cached. */
  static final class ConfluentDecoder implements ValueDecoder {
    private final String registry;
    private final HttpClient http = HttpClient.newHttpClient();
    private final Map<Integer, GenericDatumReader<GenericRecord>> readers = new HashMap<>();

    ConfluentDecoder(String registry) {
      this.registry = registry.replaceAll("/+$", "");
    }

    @Override
    public GenericRecord decode(byte[] payload) throws IOException {
      if (payload.length < 5 || payload[0] != 0) {
        throw new IOException("not Confluent-framed (no magic byte 0)");
      }
      int id = ByteBuffer.wrap(payload, 1, 4).order(ByteOrder.BIG_ENDIAN).getInt();
      GenericDatumReader<GenericRecord> reader = readers.get(id);
      if (reader == null) {
        reader = new GenericDatumReader<>(fetch(id));
        readers.put(id, reader);
      }
      BinaryDecoder in = DecoderFactory.get().binaryDecoder(payload, 5, payload.length - 5, null);
      GenericRecord value = reader.read(null, in);
      if (!in.isEnd()) {
        throw new IOException("bytes left over after the datum (schema id " + id + ")");
      }
      return value;
    }

    private Schema fetch(int id) throws IOException {
      HttpRequest request =
          HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id))
              .header("Accept", "application/vnd.schemaregistry.v1+json")
              .timeout(Duration.ofSeconds(10))
              .build();
      HttpResponse<String> response;
      try {
        response = http.send(request, HttpResponse.BodyHandlers.ofString());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException(e);
      }
      if (response.statusCode() != 200) {
        throw new IOException("registry: schema " + id + ": HTTP " + response.statusCode());
      }
      return new Schema.Parser().parse(JSON.readTree(response.body()).get("schema").asText());
    }
  }

  /** Single-object encoding; writer schemas found by fingerprint among DIR/*.avsc. */
  static final class SingleObjectDecoder implements ValueDecoder {
    private final SchemaStore.Cache store = new SchemaStore.Cache();
    /** One decoder per schema, reading with the schema it was written with. */
    private final Map<Long, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();

    SingleObjectDecoder(Path dir) throws IOException {
      List<Path> files;
      try (Stream<Path> list = Files.list(dir)) {
        files = list.filter(p -> p.toString().endsWith(".avsc")).sorted().toList();
      }
      if (files.isEmpty()) {
        throw new IOException("no .avsc files in " + dir);
      }
      for (Path file : files) {
        // A parser per file: every schema defines its own riskos.events.Envelope.
        Schema schema = new Schema.Parser().parse(file.toFile());
        store.addSchema(schema);
        decoders.put(
            SchemaNormalization.parsingFingerprint64(schema),
            new BinaryMessageDecoder<>(GenericData.get(), schema, store));
      }
    }

    @Override
    public GenericRecord decode(byte[] payload) throws IOException {
      if (payload.length < 10) {
        throw new IOException("too short for single-object encoding");
      }
      // The decoder checks the C3 01 marker and resolves the writer schema from `store`; the
      // fingerprint only picks which reader schema to resolve to (the same one here).
      long fingerprint = ByteBuffer.wrap(payload, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
      BinaryMessageDecoder<GenericRecord> decoder = decoders.get(fingerprint);
      if (decoder == null) {
        throw new IOException("unknown schema fingerprint " + Long.toHexString(fingerprint));
      }
      return decoder.decode(payload);
    }
  }

  private static String utf8(byte[] bytes) {
    return new String(bytes, StandardCharsets.UTF_8);
  }

  private static String latin1(ByteBuffer buffer) {
    byte[] bytes = new byte[buffer.remaining()];
    buffer.get(bytes);
    return new String(bytes, StandardCharsets.ISO_8859_1);
  }

  private static void usage(String problem) {
    System.err.println("java-interop: " + problem);
    System.err.println(
        "usage: --bootstrap HOST:PORT (--registry URL | --schemas DIR) --topic TOPIC...");
    System.exit(2);
  }
}
