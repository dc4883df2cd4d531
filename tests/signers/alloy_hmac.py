"""Signs webhooks as Alloy's HMAC option is described: HMAC-SHA256 of the body bytes under the
shared secret, base64, sent as the whole `Authorization` value (no scheme, no timestamp).

Reads {"secret": str, "bodies": [str, ...]} from stdin and prints
{"messages": [{"headers": {"Authorization": ...}, "body": str}]}. Used by tests/surface/signers.rs.
"""

import base64
import hashlib
import hmac
import json
import sys


def sign(secret, body):
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return {"headers": {"Authorization": base64.b64encode(mac).decode()}, "body": body}


def main():
    job = json.load(sys.stdin)
    json.dump({"messages": [sign(job["secret"], b) for b in job["bodies"]]}, sys.stdout)


if __name__ == "__main__":
    main()
