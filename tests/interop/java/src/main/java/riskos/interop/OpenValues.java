/*
 * Opens and checks the protected values of a values file with Protected.java (the code
 * docs/consumers.md shows): each encrypted value and each hash token, one JSON line each; the
 * same lines as tests/interop/open_values.py. Used by tests/api/consumers.rs.
 *
 *   OpenValues FILE
 */
package riskos.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class OpenValues {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern INDEX = Pattern.compile("\\[(\\d+)\\]");

  public static void main(String[] args) throws Exception {
    JsonNode values = JSON.readTree(Path.of(args[0]).toFile());
    Map<String, byte[]> hashKeys = keyring(values.get("hash_keys"));
    Map<String, byte[]> encryptionKeys = keyring(values.get("encryption_keys"));
    String topic = values.get("topic").asText(), key = values.get("key").asText();
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    for (JsonNode item : values.get("encrypted")) {
      String path = item.get("indexed_path").asText();
      ObjectNode line = JSON.createObjectNode().put("path", path);
      try {
        byte[] plain =
            Protected.decrypt(encryptionKeys, item.get("value").asText(), topic, key, atOf(path));
        line.put("opened", new String(plain, StandardCharsets.UTF_8));
      } catch (Exception error) { // every failure is reported, not thrown
        line.put("error", error.getClass().getSimpleName() + ": " + error.getMessage());
      }
      out.println(JSON.writeValueAsString(line));
    }
    for (JsonNode item : values.get("hashed")) {
      ObjectNode line = JSON.createObjectNode().put("value", item.get("value").asText());
      try {
        line.put(
            "matches",
            Protected.hashMatches(hashKeys, item.get("token").asText(), item.get("value")));
      } catch (Exception error) {
        line.put("error", error.getClass().getSimpleName() + ": " + error.getMessage());
      }
      out.println(JSON.writeValueAsString(line));
    }
  }

  private static Map<String, byte[]> keyring(JsonNode lines) {
    Map<String, byte[]> keys = new HashMap<>();
    for (JsonNode line : lines) {
      String[] kidKey = line.asText().split(":", 2);
      keys.put(kidKey[0], Base64.getDecoder().decode(kidKey[1]));
    }
    return keys;
  }

  /** `data.tags[1].name` to ["data", "tags", 1, "name"]. */
  private static List<Object> atOf(String path) {
    List<Object> at = new ArrayList<>();
    for (String part : path.split("\\.")) {
      int bracket = part.indexOf('[');
      at.add(bracket < 0 ? part : part.substring(0, bracket));
      Matcher index = INDEX.matcher(part);
      while (index.find()) {
        at.add(Integer.parseInt(index.group(1)));
      }
    }
    return at;
  }
}
