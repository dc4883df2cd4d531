"""Signs messages as Svix does by default, with Svix's own library (PyPI `svix`).

Reads a job from stdin:
    {"messages": [{"id": str, "timestamp": int, "body": str, "secrets": [whsec_..., ...]}]}
and prints {"messages": [{"headers": {name: value}, "body": str}]}: each message signed once
per secret by `svix.webhooks.Webhook.sign`, the signatures space-separated, under the header
names Svix sends unless its customer pays for white-labelled ones: `svix-id`,
`svix-timestamp`, `svix-signature`. Used by tests/signers.rs.
"""

import json
import sys
from datetime import datetime, timezone

from svix.webhooks import Webhook


def v1_signatures(message):
    """One `v1,<base64>` per secret of the message, by Svix's library."""
    when = datetime.fromtimestamp(message["timestamp"], tz=timezone.utc)
    return [
        Webhook(secret).sign(msg_id=message["id"], timestamp=when, data=message["body"])
        for secret in message.get("secrets", [])
    ]


def signed(message, signatures):
    """The message as a default Svix sender posts it: its `svix-*` headers and body."""
    return {
        "headers": {
            "svix-id": message["id"],
            "svix-timestamp": str(message["timestamp"]),
            "svix-signature": " ".join(signatures),
        },
        "body": message["body"],
    }


def main():
    job = json.load(sys.stdin)
    json.dump({"messages": [signed(m, v1_signatures(m)) for m in job["messages"]]}, sys.stdout)


if __name__ == "__main__":
    main()
