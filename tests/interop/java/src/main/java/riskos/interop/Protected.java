/* Open riskos-connector's protected values: docs/consumers.md, "Protected fields". */
package riskos.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;

/** AES-256-GCM and HMAC-SHA256 from the JDK (javax.crypto); Avro for the marks. */
final class Protected {
  /** Steps of a mark besides field names: every item of an array, every value of a map. */
  static final String ITEMS = "[]", VALUES = "{}";

  private static final ObjectMapper JSON =
      new ObjectMapper().configure(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS, true);

  /** A `riskos.protect` mark: the steps from the record to the value, its policy. */
  record Mark(List<String> steps, String policy, boolean jsonText) {}

  /** A protected value: its path (what it is bound to), the names and indexes reaching it. */
  record Found(String path, List<Object> at, String policy, String stored) {}

  /** A key file, one `kid:base64(32 bytes)` per line: kid to key. */
  static Map<String, byte[]> loadKeys(Path file) throws IOException {
    Map<String, byte[]> keys = new HashMap<>();
    for (String line : Files.readAllLines(file)) {
      if (!line.isBlank()) {
        String[] kidKey = line.strip().split(":", 2);
        keys.put(kidKey[0], Base64.getDecoder().decode(kidKey[1]));
      }
    }
    return keys;
  }

  /**
   * `e1.<kid>.<box>` to its plaintext. The box is nonce (12) + ciphertext + tag (16), sealed with
   * the record's topic, Kafka key and the field's path as associated data.
   */
  static byte[] decrypt(
      Map<String, byte[]> keys, String value, String topic, String key, String path)
      throws GeneralSecurityException {
    String[] parts = value.split("\\.", 3); // e1, kid, box
    if (parts.length != 3 || !parts[0].equals("e1") || !keys.containsKey(parts[1])) {
      throw new GeneralSecurityException("not an e1 value under a key held here: " + path);
    }
    byte[] sealed = Base64.getUrlDecoder().decode(parts[2]);
    Cipher aes = Cipher.getInstance("AES/GCM/NoPadding");
    aes.init(
        Cipher.DECRYPT_MODE,
        new SecretKeySpec(keys.get(parts[1]), "AES"),
        new GCMParameterSpec(128, sealed, 0, 12));
    aes.updateAAD((topic + "\0" + key + "\0" + path).getBytes(StandardCharsets.UTF_8));
    return aes.doFinal(sealed, 12, sealed.length - 12);
  }

  /**
   * The token `h1.<kid>.<mac>` of a JSON value: HMAC-SHA256 of a string's UTF-8 bytes, of
   * anything else's compact JSON text (keys sorted).
   */
  static String hashToken(Map<String, byte[]> keys, String kid, JsonNode value)
      throws GeneralSecurityException, IOException {
    byte[] text =
        value.isTextual()
            ? value.textValue().getBytes(StandardCharsets.UTF_8)
            : JSON.writeValueAsBytes(JSON.treeToValue(value, Object.class));
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(keys.get(kid), "HmacSHA256"));
    byte[] digest = mac.doFinal(text);
    return "h1." + kid + "." + Base64.getUrlEncoder().withoutPadding().encodeToString(digest);
  }

  /** True when `token` is the token of `value` under the key it names. */
  static boolean hashMatches(Map<String, byte[]> keys, String token, JsonNode value)
      throws GeneralSecurityException, IOException {
    String expected = hashToken(keys, token.split("\\.")[1], value);
    return MessageDigest.isEqual(
        token.getBytes(StandardCharsets.UTF_8), expected.getBytes(StandardCharsets.UTF_8));
  }

  /** The writer schema's `riskos.protect` marks. */
  static List<Mark> marks(Schema schema) {
    List<Mark> found = new ArrayList<>();
    visit(schema, List.of(), found, 0);
    return found;
  }

  private static void visit(Schema schema, List<String> steps, List<Mark> found, int depth) {
    if (depth > 32) {
      return;
    }
    switch (schema.getType()) {
      case UNION -> schema.getTypes().forEach(branch -> visit(branch, steps, found, depth));
      case ARRAY -> visit(schema.getElementType(), plus(steps, ITEMS), found, depth + 1);
      case MAP -> visit(schema.getValueType(), plus(steps, VALUES), found, depth + 1);
      case RECORD -> {
        for (Schema.Field field : schema.getFields()) {
          List<String> here = plus(steps, field.name());
          Object policy = field.getObjectProp("riskos.protect");
          if (policy == null) {
            visit(field.schema(), here, found, depth + 1);
            continue;
          }
          for (Schema type : branches(field.schema())) { // on an array or map: each item or value
            if (type.getType() == Schema.Type.ARRAY || type.getType() == Schema.Type.MAP) {
              here = plus(here, type.getType() == Schema.Type.ARRAY ? ITEMS : VALUES);
              break;
            }
          }
          boolean jsonText = field.getObjectProp("riskos.json") != null;
          found.add(new Mark(here, policy.toString(), jsonText));
        }
      }
      default -> {}
    }
  }

  /** Every protected value of a decoded record (a `riskos.json` field's text parsed first). */
  static List<Found> protectedValues(GenericRecord record) throws IOException {
    List<Found> found = new ArrayList<>();
    for (Mark mark : marks(record.getSchema())) {
      follow(record, mark, 0, "", List.of(), found);
    }
    return found;
  }

  private static void follow(
      Object value, Mark mark, int step, String path, List<Object> at, List<Found> found)
      throws IOException {
    if (value == null) {
      return;
    }
    if (step == mark.steps().size()) {
      String stored = value.toString();
      if (mark.jsonText()) {
        stored = JSON.readTree(stored).textValue(); // JSON text: the token or box in quotes
      }
      found.add(new Found(path, at, mark.policy(), stored));
      return;
    }
    String name = mark.steps().get(step);
    if (name.equals(ITEMS) && value instanceof List<?> items) {
      for (int i = 0; i < items.size(); i++) {
        follow(items.get(i), mark, step + 1, path + "[]", plus(at, i), found);
      }
    } else if (name.equals(VALUES) && value instanceof Map<?, ?> map) {
      for (Map.Entry<?, ?> entry : map.entrySet()) {
        String k = entry.getKey().toString();
        follow(entry.getValue(), mark, step + 1, path + "." + k, plus(at, k), found);
      }
    } else if (value instanceof GenericRecord record && record.hasField(name)) {
      String next = path.isEmpty() ? name : path + "." + name;
      follow(record.get(name), mark, step + 1, next, plus(at, name), found);
    }
  }

  /** The value at `at` (names and indexes) in a JSON document, e.g. the opened body. */
  static JsonNode valueAt(JsonNode document, List<Object> at) {
    JsonNode value = document;
    for (Object step : at) {
      value = step instanceof Integer i ? value.get(i) : value.get(step.toString());
    }
    return value;
  }

  private static List<Schema> branches(Schema type) {
    return type.getType() == Schema.Type.UNION ? type.getTypes() : List.of(type);
  }

  private static <T> List<T> plus(List<T> list, T item) {
    List<T> longer = new ArrayList<>(list);
    longer.add(item);
    return longer;
  }
}
