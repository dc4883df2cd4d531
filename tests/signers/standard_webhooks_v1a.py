"""Signs Standard Webhooks `v1a` (Ed25519) messages with `cryptography`, in the spec's key
formats: `whsk_<base64 of the 32-byte private seed>` and `whpk_<base64 of the 32-byte public
key>`. (The PyPI `standardwebhooks` package signs `v1` only.)

Reads a job from stdin:
    {"keys": int, "messages": [{"id": str, "timestamp": int, "body": str,
                                "keys": [index, ...], "secrets": [whsec_..., ...]}]}
generates `keys` fresh key pairs and prints
    {"public_keys": [whpk_...], "messages": [{"headers": {name: value}, "body": str}]}
with each message signed `v1a` by the listed keys and, when `secrets` are given, `v1` by the
reference library too, all in one `webhook-signature`. Used by tests/surface/signers.rs.
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# The sibling script (its directory is on sys.path when this one runs).
from webhooks_v1 import load_webhook, signed, v1_signatures

RAW = serialization.Encoding.Raw


def new_signing_key():
    """A fresh key as the sender stores it: `whsk_` + base64 of the seed."""
    seed = Ed25519PrivateKey.generate().private_bytes(
        RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return "whsk_" + base64.b64encode(seed).decode()


def load_signing_key(whsk):
    assert whsk.startswith("whsk_"), whsk
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(whsk[len("whsk_"):]))


def public_key(whsk):
    raw = load_signing_key(whsk).public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    return "whpk_" + base64.b64encode(raw).decode()


def sign(message, signing_keys):
    content = f'{message["id"]}.{message["timestamp"]}.{message["body"]}'.encode()
    signatures = [
        "v1a," + base64.b64encode(load_signing_key(signing_keys[i]).sign(content)).decode()
        for i in message["keys"]
    ]
    v1 = v1_signatures(load_webhook("standardwebhooks"), message)
    return signed("webhook", message, signatures + v1)


def main():
    job = json.load(sys.stdin)
    signing_keys = [new_signing_key() for _ in range(job["keys"])]
    json.dump(
        {
            "public_keys": [public_key(k) for k in signing_keys],
            "messages": [sign(m, signing_keys) for m in job["messages"]],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
