"""Signs Standard Webhooks `v1` messages with the reference library (PyPI `standardwebhooks`).

Reads a job from stdin:
    {"messages": [{"id": str, "timestamp": int, "body": str, "secrets": [whsec_..., ...]}]}
and prints {"messages": [{"headers": {name: value}, "body": str}]}: each message signed once
per secret (a sender rotating its secret signs with both), the signatures space-separated in
`webhook-signature`, as the library's own `sign` writes them. Used by tests/signers.rs.
"""

import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook


def v1_signatures(message):
    """One `v1,<base64>` per secret of the message, by the reference library."""
    when = datetime.fromtimestamp(message["timestamp"], tz=timezone.utc)
    return [
        Webhook(secret).sign(msg_id=message["id"], timestamp=when, data=message["body"])
        for secret in message.get("secrets", [])
    ]


def signed(message, signatures):
    """The message as the sender posts it: its `webhook-*` headers and body."""
    return {
        "headers": {
            "webhook-id": message["id"],
            "webhook-timestamp": str(message["timestamp"]),
            "webhook-signature": " ".join(signatures),
        },
        "body": message["body"],
    }


def main():
    job = json.load(sys.stdin)
    json.dump({"messages": [signed(m, v1_signatures(m)) for m in job["messages"]]}, sys.stdout)


if __name__ == "__main__":
    main()
