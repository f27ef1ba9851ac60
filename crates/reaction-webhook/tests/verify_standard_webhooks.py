"""Verifies a captured webhook request with the `standardwebhooks` package, an
implementation of the Standard Webhooks specification independent of ours.

Reads one JSON object on stdin:
  {"secret": "whsec_..." or "<raw secret>", "secret_is_raw": bool,
   "headers": {"webhook-id": ..., ...}, "body_base64": "..."}
A raw secret is given to the library as bytes, used as the HMAC key unchanged;
a `whsec_` secret is given as a string, which the library base64-decodes.

Exit status: 0 verified, 1 rejected (reason on stderr), 2 the package is missing.
Install it with: python3 -m pip install standardwebhooks
"""

import base64
import json
import sys

try:
    from standardwebhooks import Webhook
except ImportError:
    sys.stderr.write(
        "the Python package `standardwebhooks` is missing: "
        "install it with `python3 -m pip install standardwebhooks`\n"
    )
    sys.exit(2)


def main() -> int:
    request = json.load(sys.stdin)
    secret = request["secret"]
    key = secret.encode() if request["secret_is_raw"] else secret
    body = base64.b64decode(request["body_base64"])
    try:
        Webhook(key).verify(body, request["headers"], json_parse=False)
    except Exception as error:  # the library raises several types
        sys.stderr.write(f"rejected: {type(error).__name__}: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
