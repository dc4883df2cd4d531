"""Open riskos-connector's protected values: docs/consumers.md, "Protected fields".

Needs `cryptography` (AES-GCM); HMAC-SHA256 is in the standard library.
"""
import base64
import hashlib
import hmac
import json
from collections import namedtuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def load_keys(path):
    """A key file, one `kid:base64(32 bytes)` per line -> {kid: key}."""
    lines = open(path, encoding="utf-8").read().split()
    return {kid: base64.b64decode(key) for kid, key in (line.split(":", 1) for line in lines)}


def decrypt(keys, value, topic, key, path):
    """`e1.<kid>.<box>` -> its plaintext bytes. The box is nonce (12) + ciphertext + tag (16),
    sealed with the record's topic, Kafka key and the field's path as associated data."""
    version, kid, box = value.split(".", 2)
    if version != "e1":
        raise ValueError(f"not an encrypted value: {path}")
    sealed = base64.urlsafe_b64decode(box + "=" * (-len(box) % 4))
    aad = f"{topic}\0{key}\0{path}".encode()
    return AESGCM(keys[kid]).decrypt(sealed[:12], sealed[12:], aad)


def hash_token(keys, kid, value):
    """The token `h1.<kid>.<mac>` of a JSON value: HMAC-SHA256 of a string's UTF-8 bytes, of
    anything else's compact JSON text (keys sorted)."""
    text = value if isinstance(value, str) else json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    mac = hmac.new(keys[kid], text.encode(), hashlib.sha256).digest()
    return f"h1.{kid}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def hash_matches(keys, token, value):
    """True when `token` is the token of `value` under the key it names."""
    return hmac.compare_digest(token, hash_token(keys, token.split(".")[1], value))


# A `riskos.protect` mark. A step is a field name, "[]" (every item of an array) or "{}" (every
# value of a map); json_text: a `riskos.json` field (JSON text).
Mark = namedtuple("Mark", "steps policy json_text")


def marks(schema):
    """The writer schema's `riskos.protect` marks."""
    named, found = {}, []

    def visit(t, steps, depth):
        t = named.get(t) if isinstance(t, str) else t
        if isinstance(t, list):  # a union: every branch
            for branch in t:
                visit(branch, steps, depth)
        elif isinstance(t, dict) and depth < 32:
            if "name" in t:
                named[t["name"]] = named[f"{t.get('namespace', '')}.{t['name']}".lstrip(".")] = t
            if t["type"] == "record":
                for field in t["fields"]:
                    here = steps + [field["name"]]
                    if "riskos.protect" in field:  # on an array or map: each item or value
                        kinds = [b.get("type") for b in branches(field["type"])]
                        here += ["[]"] if "array" in kinds else ["{}"] if "map" in kinds else []
                        found.append(Mark(here, field["riskos.protect"], "riskos.json" in field))
                    else:
                        visit(field["type"], here, depth + 1)
            elif t["type"] == "array":
                visit(t["items"], steps + ["[]"], depth + 1)
            elif t["type"] == "map":
                visit(t["values"], steps + ["{}"], depth + 1)

    visit(schema, [], 0)
    return found


def branches(t):
    """The complex types of a field type, a union's included."""
    return [b for b in (t if isinstance(t, list) else [t]) if isinstance(b, dict)]


def protected_values(schema, record):
    """Every protected value of a decoded record: (path, at, policy, stored). `path` is what
    the value is bound to (`data.matches[].name`, a map's value under its key); `at` the keys
    and indexes that reach it; a `riskos.json` field's text is parsed first."""
    def follow(value, steps, path, at, mark):
        if value is None:
            return
        if not steps:
            yield path, at, mark.policy, json.loads(value) if mark.json_text else value
        elif steps[0] == "[]" and isinstance(value, list):
            for i, item in enumerate(value):
                yield from follow(item, steps[1:], path + "[]", at + [i], mark)
        elif steps[0] == "{}" and isinstance(value, dict):
            for name, item in value.items():
                yield from follow(item, steps[1:], f"{path}.{name}", at + [name], mark)
        elif isinstance(value, dict):
            name = steps[0]
            yield from follow(value.get(name), steps[1:], f"{path}.{name}".lstrip("."),
                              at + [name], mark)

    for mark in marks(schema):
        yield from follow(record, mark.steps, "", [], mark)


def value_at(document, at):
    """The value at `at` (names and indexes) in a JSON document, e.g. the opened body."""
    for step in at:
        document = document[step]
    return document
