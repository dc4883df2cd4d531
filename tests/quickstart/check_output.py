"""Asserts on the quickstart's output: every sample was answered 200 and every sample appears,
decoded, among the printed records with its raw body intact."""
import json
import pathlib
import sys

output = pathlib.Path(sys.argv[1]).read_text()
fixtures = sorted(pathlib.Path(__file__).parents[1].joinpath("fixtures").glob("*.json"))
statuses = [l.split()[:2] for l in output.splitlines() if l[:3].isdigit() and ".json" in l]
records = [json.loads(l) for l in output.splitlines() if l.startswith("{")]
failures = []
if len(statuses) != len(fixtures) or any(s != "200" for s, _ in statuses):
    failures.append(f"expected {len(fixtures)} replies of 200, got {statuses}")
for fixture in fixtures:
    raw = fixture.read_text()
    if not any(r["value"].get("raw") == raw for r in records if isinstance(r.get("value"), dict)):
        failures.append(f"{fixture.name}: no decoded record with its raw body")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"quickstart: {len(fixtures)} samples accepted and decoded")
