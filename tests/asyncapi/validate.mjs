// Parses AsyncAPI documents with the AsyncAPI parser and exits 1, printing the diagnostics,
// when any has error severity. The parser's 3.x ruleset does not validate multi-format
// schemas, so every Avro one (`schemaFormat` application/vnd.apache.avro…) is also checked
// with the AsyncAPI Avro schema parser's own validation.
// Usage: node tests/asyncapi/validate.mjs FILE...   (setup: npm ci --prefix tests/asyncapi)
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs FILE...");
  process.exit(2);
}

const avro = AvroSchemaParser();
const parser = new Parser();
parser.registerSchemaParser(avro);

// Every multi-format schema object with an Avro format, with its path.
function* avroSchemas(node, path = []) {
  if (node === null || typeof node !== "object") return;
  if (typeof node.schemaFormat === "string" && node.schemaFormat.startsWith("application/vnd.apache.avro")) {
    yield { path, schemaFormat: node.schemaFormat, schema: node.schema };
    return;
  }
  for (const [key, value] of Object.entries(node)) yield* avroSchemas(value, [...path, key]);
}

const severity = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([k, v]) => [v, k]));
let failed = false;
for (const file of files) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  let avroCount = 0;
  for (const item of avroSchemas(JSON.parse(text))) {
    avroCount += 1;
    const results = await avro.validate({
      asyncapi: {},
      data: item.schema,
      meta: {},
      path: [...item.path, "schema"],
      schemaFormat: item.schemaFormat,
      defaultSchemaFormat: "application/vnd.aai.asyncapi;version=3.0.0",
    });
    for (const r of results ?? []) {
      const d = { severity: DiagnosticSeverity.Error, code: "avro-schema", path: r.path ?? item.path, message: r.message };
      diagnostics.push(d);
      errors.push(d);
    }
  }
  for (const d of diagnostics) {
    const at = d.path && d.path.length ? ` at ${d.path.join("/")}` : "";
    console.log(`${file}: ${severity[d.severity] ?? d.severity} ${d.code}${at}: ${d.message}`);
  }
  if (errors.length > 0 || !document) {
    failed = true;
    console.log(`${file}: INVALID (${errors.length} error(s))`);
  } else {
    const channels = document.channels().length;
    const operations = document.operations().length;
    console.log(`${file}: valid AsyncAPI ${document.version()} (${channels} channels, ${operations} operations, ${avroCount} Avro schemas)`);
  }
}
process.exit(failed ? 1 : 0);
