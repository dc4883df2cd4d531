"""Open riskos-connector's protected values: docs/consumers.md, "Protected fields".

Needs `cryptography` (AES-GCM, HKDF-Expand); HMAC-SHA256 and SHA-256 are in the standard library.
"""
import base64
import hashlib
import hmac
import json
from collections import namedtuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand


def load_keys(path):
    """A key file, one `kid:base64(32 bytes)` per line -> {kid: key}."""
    lines = open(path, encoding="utf-8").read().split()
    return {kid: base64.b64decode(key) for kid, key in (line.split(":", 1) for line in lines)}


def fingerprint(key):
    """A key's fingerprint, as tokens and boxes name it: base64url of the first 6 bytes of
    SHA-256("riskos-connector key fingerprint" NUL key)."""
    digest = hashlib.sha256(b"riskos-connector key fingerprint\0" + key).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode()


def held_key(keys, kid, fp):
    """The key `kid`, checked against the fingerprint a value names (None: the first formats,
    which name none). Another key under the same id is an error, not a silent mismatch."""
    if kid not in keys:
        raise KeyError(f"key `{kid}` is not held here")
    if fp is not None and fingerprint(keys[kid]) != fp:
        raise KeyError(f"key `{kid}` held here is not the key `{kid}` ({fp}) the value was made under")
    return keys[kid]


def path_of(at, indexes=True):
    """The path a value at `at` (names and indexes) is bound to: `data.tags[1].name`; the first
    format (e1) bound `[]` for every index."""
    path = ""
    for step in at:
        if isinstance(step, int):
            path += f"[{step}]" if indexes else "[]"
        else:
            path += f".{step}" if path else step
    return path


def decrypt(keys, value, topic, key, at):
    """`e2.<kid>.<fp>.<box>` (or the first format's `e1.<kid>.<box>`) -> its plaintext bytes,
    for the record's topic and Kafka key and the value's place `at` (names and indexes, e.g.
    ["raw"], ["data", "tags", 1, "name"]). e2: box = salt (32) + ciphertext + tag (16), the
    value's AES-256-GCM key = HKDF-Expand-SHA256(the key, info "riskos-connector e2" + salt,
    32 bytes), the nonce 12 zero bytes. e1: box = nonce (12) + ciphertext + tag (16) under the
    key itself."""
    version, rest = value.split(".", 1)
    if version == "e2":
        kid, fp, box = rest.split(".", 2)
        sealed = base64.urlsafe_b64decode(box + "=" * (-len(box) % 4))
        aes = HKDFExpand(algorithm=SHA256(), length=32,
                         info=b"riskos-connector e2" + sealed[:32]).derive(held_key(keys, kid, fp))
        nonce, sealed, path = bytes(12), sealed[32:], path_of(at)
    elif version == "e1":
        kid, box = rest.split(".", 1)
        sealed = base64.urlsafe_b64decode(box + "=" * (-len(box) % 4))
        aes, nonce, sealed = held_key(keys, kid, None), sealed[:12], sealed[12:]
        path = path_of(at, indexes=False)
    else:
        raise ValueError(f"not an encrypted value: {path_of(at)}")
    aad = f"{topic}\0{key}\0{path}".encode()
    return AESGCM(aes).decrypt(nonce, sealed, aad)


def hash_token(keys, kid, value, version="h2"):
    """The token `h2.<kid>.<fp>.<mac>` (or the first format's `h1.<kid>.<mac>`) of a JSON
    value: HMAC-SHA256 of a string's UTF-8 bytes, of anything else's compact JSON text (keys
    sorted)."""
    text = value if isinstance(value, str) else json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    mac = base64.urlsafe_b64encode(hmac.new(keys[kid], text.encode(), hashlib.sha256).digest())
    mac = mac.rstrip(b"=").decode()
    return f"h1.{kid}.{mac}" if version == "h1" else f"h2.{kid}.{fingerprint(keys[kid])}.{mac}"


def hash_matches(keys, token, value):
    """True when `token` is the token of `value` under the key it names (an error when that
    key is not held, or is another key under the same id)."""
    version, kid, *rest = token.split(".")
    held_key(keys, kid, rest[0] if version == "h2" else None)
    return hmac.compare_digest(token, hash_token(keys, kid, value, version))


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
    """Every protected value of a decoded record: (path, at, policy, stored). `at` is the
    names and indexes that reach it, `path` the same written out (`data.matches[2].name`, a
    map's value under its key); a `riskos.json` field's text is parsed first."""
    def follow(value, steps, path, at, mark):
        if value is None:
            return
        if not steps:
            yield path, at, mark.policy, json.loads(value) if mark.json_text else value
        elif steps[0] == "[]" and isinstance(value, list):
            for i, item in enumerate(value):
                yield from follow(item, steps[1:], f"{path}[{i}]", at + [i], mark)
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
