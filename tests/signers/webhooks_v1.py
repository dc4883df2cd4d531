"""Signs `v1` messages with a sender's own library: `standardwebhooks` (the Standard Webhooks
reference library, PyPI `standardwebhooks`) or `svix` (Svix's own library, PyPI `svix`).

    python webhooks_v1.py standardwebhooks|svix < job

Reads a job from stdin:
    {"messages": [{"id": str, "timestamp": int, "body": str, "secrets": [whsec_..., ...]}]}
and prints {"messages": [{"headers": {name: value}, "body": str}]}: each message signed once
per secret (a sender rotating its secret signs with both) by the library's `Webhook.sign`, the
signatures space-separated, under the header names that sender uses: `webhook-id`,
`webhook-timestamp`, `webhook-signature` for Standard Webhooks; for Svix the names it sends
unless its customer pays for white-labelled ones: `svix-id`, `svix-timestamp`,
`svix-signature`. Used by tests/surface/signers.rs.
"""

import json
import sys
from datetime import datetime, timezone

# The library and the prefix of its header names.
SENDERS = {"standardwebhooks": "webhook", "svix": "svix"}


def load_webhook(sender):
    """The sender's own library's `Webhook`."""
    if sender == "svix":
        from svix.webhooks import Webhook
    else:
        from standardwebhooks.webhooks import Webhook
    return Webhook


def v1_signatures(webhook, message):
    """One `v1,<base64>` per secret of the message, by the sender's library."""
    when = datetime.fromtimestamp(message["timestamp"], tz=timezone.utc)
    return [
        webhook(secret).sign(msg_id=message["id"], timestamp=when, data=message["body"])
        for secret in message.get("secrets", [])
    ]


def signed(prefix, message, signatures):
    """The message as the sender posts it: its `<prefix>-*` headers and body."""
    return {
        "headers": {
            f"{prefix}-id": message["id"],
            f"{prefix}-timestamp": str(message["timestamp"]),
            f"{prefix}-signature": " ".join(signatures),
        },
        "body": message["body"],
    }


def main():
    sender = sys.argv[1] if len(sys.argv) > 1 else ""
    if sender not in SENDERS:
        sys.exit(f"usage: webhooks_v1.py {'|'.join(SENDERS)} < job")
    webhook, prefix = load_webhook(sender), SENDERS[sender]
    job = json.load(sys.stdin)
    messages = [signed(prefix, m, v1_signatures(webhook, m)) for m in job["messages"]]
    json.dump({"messages": messages}, sys.stdout)


if __name__ == "__main__":
    main()
