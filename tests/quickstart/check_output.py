"""Asserts on the quickstart's output: every sample was answered 200, and every sample appears,
decoded, among the printed records with its raw body intact (the quickstart runs with
protection keys: `raw` is stored encrypted and `tail --reveal` opens it). Field protection is
checked against the schemas' `riskos.protect` marks: every encrypted value was opened to what
the sample sent (no `e2.` value is left anywhere), every hashed value is an `h2.` token, never
the value sent, and every dropped value is null."""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).parents[2]
output = pathlib.Path(sys.argv[1]).read_text()
fixtures = sorted(ROOT.joinpath("tests", "fixtures").glob("*.json"))
statuses = [l.split()[:2] for l in output.splitlines() if l[:3].isdigit() and ".json" in l]
records = [json.loads(l) for l in output.splitlines() if l.startswith("{")]
failures = []
if len(statuses) != len(fixtures) or any(s != "200" for s, _ in statuses):
    failures.append(f"expected {len(fixtures)} replies of 200, got {statuses}")


def protected_paths(schema):
    """[(steps, policy)] of a schema's marks: steps are ("field", name), ("items",), ("values",)."""
    named = {}
    out = []

    def descend(node, steps):
        if isinstance(node, list):
            for variant in node:
                descend(variant, steps)
        elif isinstance(node, str):
            if node in named and len(steps) < 32:  # a named type used again (bounded depth)
                descend(named[node], steps)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind == "record":
                named.setdefault(node["name"], node)
                for field in node["fields"]:
                    collect(field, steps + [("field", field["name"])])
            elif kind == "array":
                descend(node["items"], steps + [("items",)])
            elif kind == "map":
                descend(node["values"], steps + [("values",)])
            elif isinstance(kind, (dict, list)):
                descend(kind, steps)

    def collect(field, steps):
        policy = field.get("riskos.protect")
        if policy is None:
            descend(field["type"], steps)
            return
        # On an array (or map) field the policy applies to each item (value).
        types = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for t in types:
            if isinstance(t, dict) and t.get("type") in ("array", "map"):
                steps = steps + [("items",) if t["type"] == "array" else ("values",)]
                break
        out.append((steps, policy))

    for field in schema["fields"]:
        if field["name"] in ("data", "description"):
            collect(field, [("field", field["name"])])
    return out


def pairs(sent, stored, steps):
    """(sent value, stored value) at every place `steps` reaches in both."""
    if not steps:
        yield sent, stored
        return
    step, rest = steps[0], steps[1:]
    if step[0] == "field" and isinstance(sent, dict) and isinstance(stored, dict):
        if step[1] in sent:
            yield from pairs(sent[step[1]], stored.get(step[1]), rest)
    elif step[0] == "items" and isinstance(sent, list) and isinstance(stored, list):
        for a, b in zip(sent, stored):
            yield from pairs(a, b, rest)
    elif step[0] == "values" and isinstance(sent, dict) and isinstance(stored, dict):
        for key, a in sent.items():
            yield from pairs(a, stored.get(key), rest)


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from strings(item)


schemas = {}
fallback = None
for path in ROOT.joinpath("schemas").glob("*.avsc"):
    schema = json.loads(path.read_text())
    if schema.get("riskos.event_type") == "*":
        fallback = schema
    else:
        schemas[schema["riskos.event_type"]] = schema

values = [r["value"] for r in records if isinstance(r.get("value"), dict)]
for value in values:
    left = [s for s in strings(value) if s.startswith(("e2.", "e1."))]
    if left:
        failures.append(f"{value.get('event_type')}: {len(left)} encrypted value(s) not opened by tail --reveal")

checked = {"hash": 0, "encrypt": 0, "drop": 0}
for fixture in fixtures:
    raw = fixture.read_text()
    found = [v for v in values if v.get("raw") == raw]
    if not found:
        failures.append(f"{fixture.name}: no decoded record with its raw body")
        continue
    record, sent = found[0], json.loads(raw)
    if "request_token" in sent:  # the request-token envelope's description
        sent = {**sent, "description": sent.get("description")}
    schema = schemas.get(record["event_type"], fallback)
    for steps, policy in protected_paths(schema):
        where = ".".join(s[1] if s[0] == "field" else "[]" for s in steps)
        for given, stored in pairs(sent, record, steps):
            if given is None:
                continue
            if policy == "hash":
                ok = isinstance(stored, str) and stored.startswith("h2.") and stored != given
            elif policy == "encrypt":
                ok = stored == given
            else:
                ok = stored is None
            if not ok:
                failures.append(f"{fixture.name}: {where} ({policy}) is {stored!r}")
            checked[policy] += 1
for policy, count in checked.items():
    if not count:
        failures.append(f"no {policy} field was checked: the samples or the schemas changed")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print(
    f"quickstart: {len(fixtures)} samples accepted and decoded; "
    f"{checked['encrypt']} encrypted values opened, {checked['hash']} hashed, {checked['drop']} dropped"
)
