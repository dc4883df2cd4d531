"""Opens and checks the protected values of a values file with riskos_protect.py (the code
docs/consumers.md shows): each encrypted value and each hash token, one JSON line each.

    open_values.py FILE

FILE: {"hash_keys": [...], "encryption_keys": [...], "topic", "key",
       "encrypted": [{"indexed_path", "value", ...}], "hashed": [{"value", "token"}]}
(tests/protection/legacy-v1.json, or values tests/kafka/consumers.rs seals).
Prints {"path", "opened"} or {"path", "error"} per encrypted value, {"value", "matches"} or
{"value", "error"} per token. Used by tests/kafka/consumers.rs.
"""
import base64
import json
import re
import sys

from riskos_protect import decrypt, hash_matches


def keyring(lines):
    return {kid: base64.b64decode(key) for kid, key in (line.split(":", 1) for line in lines)}


def at_of(path):
    """`data.tags[1].name` -> ["data", "tags", 1, "name"]."""
    at = []
    for part in path.split("."):
        name, indexes = re.fullmatch(r"([^\[]*)((?:\[\d+\])*)", part).groups()
        at.append(name)
        at.extend(int(i) for i in re.findall(r"\d+", indexes))
    return at


def main():
    values = json.load(open(sys.argv[1], encoding="utf-8"))
    hash_keys, encryption_keys = keyring(values["hash_keys"]), keyring(values["encryption_keys"])
    for item in values["encrypted"]:
        path = item["indexed_path"]
        try:
            opened = decrypt(encryption_keys, item["value"], values["topic"], values["key"],
                             at_of(path)).decode()
            print(json.dumps({"path": path, "opened": opened}))
        except Exception as error:  # noqa: BLE001 - every failure is reported, not raised
            print(json.dumps({"path": path, "error": f"{type(error).__name__}: {error}"}))
    for item in values["hashed"]:
        try:
            matches = hash_matches(hash_keys, item["token"], item["value"])
            print(json.dumps({"value": item["value"], "matches": matches}))
        except Exception as error:  # noqa: BLE001
            print(json.dumps({"value": item["value"], "error": f"{type(error).__name__}: {error}"}))


if __name__ == "__main__":
    main()
