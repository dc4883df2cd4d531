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
import java.util.Arrays;
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

  /** A protected value: its path, the names and indexes reaching it (what it is bound to). */
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
   * A key's fingerprint, as tokens and boxes name it: base64url of the first 6 bytes of
   * SHA-256("riskos-connector key fingerprint" NUL key).
   */
  static String fingerprint(byte[] key) throws GeneralSecurityException {
    MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
    sha256.update("riskos-connector key fingerprint\0".getBytes(StandardCharsets.UTF_8));
    byte[] digest = sha256.digest(key);
    return Base64.getUrlEncoder().withoutPadding().encodeToString(Arrays.copyOf(digest, 6));
  }

  /**
   * The key `kid`, checked against the fingerprint a value names (null: the first formats,
   * which name none). Another key under the same id is an error, not a silent mismatch.
   */
  static byte[] heldKey(Map<String, byte[]> keys, String kid, String fp)
      throws GeneralSecurityException {
    byte[] key = keys.get(kid);
    if (key == null) {
      throw new GeneralSecurityException("key `" + kid + "` is not held here");
    }
    if (fp != null && !fingerprint(key).equals(fp)) {
      throw new GeneralSecurityException(
          "key `" + kid + "` held here is not the key `" + kid + "` (" + fp + ") of the value");
    }
    return key;
  }

  /**
   * The path a value at `at` (names and indexes) is bound to: `data.tags[1].name`; the first
   * format (e1) bound `[]` for every index.
   */
  static String pathOf(List<Object> at, boolean indexes) {
    StringBuilder path = new StringBuilder();
    for (Object step : at) {
      if (step instanceof Integer i) {
        path.append(indexes ? "[" + i + "]" : "[]");
      } else {
        path.append(path.length() == 0 ? "" : ".").append(step);
      }
    }
    return path.toString();
  }

  /**
   * `e2.<kid>.<fp>.<box>` (or the first format's `e1.<kid>.<box>`) to its plaintext, for the
   * record's topic and Kafka key and the value's place `at` (names and indexes). e2: box = salt
   * (32) + ciphertext + tag (16), the value's AES-256-GCM key = HKDF-Expand-SHA256(the key, info
   * "riskos-connector e2" + salt, 32 bytes), the nonce 12 zero bytes. e1: box = nonce (12) +
   * ciphertext + tag (16) under the key itself.
   */
  static byte[] decrypt(
      Map<String, byte[]> keys, String value, String topic, String key, List<Object> at)
      throws GeneralSecurityException {
    String[] parts = value.split("\\.", 4); // e2, kid, fp, box  or  e1, kid, box
    byte[] aes, nonce, sealed;
    String path;
    if (parts.length == 4 && parts[0].equals("e2")) {
      byte[] box = Base64.getUrlDecoder().decode(parts[3]);
      aes = hkdfExpandSha256(heldKey(keys, parts[1], parts[2]), Arrays.copyOf(box, 32));
      nonce = new byte[12];
      sealed = Arrays.copyOfRange(box, 32, box.length);
      path = pathOf(at, true);
    } else if (parts.length == 3 && parts[0].equals("e1")) {
      byte[] box = Base64.getUrlDecoder().decode(parts[2]);
      aes = heldKey(keys, parts[1], null);
      nonce = Arrays.copyOf(box, 12);
      sealed = Arrays.copyOfRange(box, 12, box.length);
      path = pathOf(at, false);
    } else {
      throw new GeneralSecurityException("not an encrypted value: " + pathOf(at, true));
    }
    Cipher gcm = Cipher.getInstance("AES/GCM/NoPadding");
    gcm.init(Cipher.DECRYPT_MODE, new SecretKeySpec(aes, "AES"), new GCMParameterSpec(128, nonce));
    gcm.updateAAD((topic + "\0" + key + "\0" + path).getBytes(StandardCharsets.UTF_8));
    return gcm.doFinal(sealed);
  }

  /**
   * HKDF-Expand-SHA256 (RFC 5869) of `key` with info "riskos-connector e2" + `salt`, 32 bytes: one
   * block, HMAC-SHA256(key, info + 0x01).
   */
  private static byte[] hkdfExpandSha256(byte[] key, byte[] salt)
      throws GeneralSecurityException {
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(key, "HmacSHA256"));
    mac.update("riskos-connector e2".getBytes(StandardCharsets.UTF_8));
    mac.update(salt);
    mac.update((byte) 1);
    return mac.doFinal();
  }

  /**
   * The token `h2.<kid>.<fp>.<mac>` (or, with version "h1", the first format's `h1.<kid>.<mac>`)
   * of a JSON value: HMAC-SHA256 of a string's UTF-8 bytes, of anything else's compact JSON text
   * (keys sorted).
   */
  static String hashToken(Map<String, byte[]> keys, String kid, JsonNode value, String version)
      throws GeneralSecurityException, IOException {
    byte[] text =
        value.isTextual()
            ? value.textValue().getBytes(StandardCharsets.UTF_8)
            : JSON.writeValueAsBytes(JSON.treeToValue(value, Object.class));
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(keys.get(kid), "HmacSHA256"));
    String digest = Base64.getUrlEncoder().withoutPadding().encodeToString(mac.doFinal(text));
    return version.equals("h1")
        ? "h1." + kid + "." + digest
        : "h2." + kid + "." + fingerprint(keys.get(kid)) + "." + digest;
  }

  /**
   * True when `token` is the token of `value` under the key it names (an error when that key is
   * not held, or is another key under the same id).
   */
  static boolean hashMatches(Map<String, byte[]> keys, String token, JsonNode value)
      throws GeneralSecurityException, IOException {
    String[] parts = token.split("\\.");
    heldKey(keys, parts[1], parts[0].equals("h2") ? parts[2] : null);
    String expected = hashToken(keys, parts[1], value, parts[0]);
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
        follow(items.get(i), mark, step + 1, path + "[" + i + "]", plus(at, i), found);
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
