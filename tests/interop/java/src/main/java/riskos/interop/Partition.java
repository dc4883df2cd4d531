/*
 * The partition Apache Kafka's Java producer picks for a key, computed by kafka-clients itself:
 * the connector's partitioning by entity must agree with it (tests/api/partitioning.rs).
 *
 *   JAVA_INTEROP_MAIN=riskos.interop.Partition scripts/java-interop.sh PARTITIONS VALUE...
 *
 * One JSON line per VALUE (its UTF-8 bytes as the key):
 *   {"value", "murmur2": Utils.murmur2(bytes),
 *    "partition": BuiltInPartitioner.partitionForKey(bytes, PARTITIONS),
 *    "utils_partition": Utils.toPositive(Utils.murmur2(bytes)) % PARTITIONS}
 * partitionForKey is what KafkaProducer calls for a record with a key and no partition.
 */
package riskos.interop;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public final class Partition {
  private Partition() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: Partition PARTITIONS VALUE...");
      System.exit(2);
    }
    int partitions = Integer.parseInt(args[0]);
    ObjectMapper json = new ObjectMapper();
    for (int i = 1; i < args.length; i++) {
      byte[] bytes = args[i].getBytes(StandardCharsets.UTF_8);
      ObjectNode line = json.createObjectNode();
      line.put("value", args[i]);
      line.put("murmur2", Utils.murmur2(bytes));
      line.put("partition", BuiltInPartitioner.partitionForKey(bytes, partitions));
      line.put("utils_partition", Utils.toPositive(Utils.murmur2(bytes)) % partitions);
      System.out.println(json.writeValueAsString(line));
    }
  }
}
