#!/usr/bin/env python3
"""A real SMTP server for the email reaction's integration tests.

Starts an aiosmtpd Controller on 127.0.0.1, on the port given as the first
argument or on a free one (port 0), and prints the port it listens on as the
first line of stdout. Then, for every message it accepts, prints one JSON line
with the envelope, the raw data and the message as parsed by Python's own
`email` package (headers decoded from RFC 2047, bodies from their transfer
encoding), so the Rust tests check the wire result with an independent parser.

Runs until stdin closes or the process is killed.

Requires aiosmtpd: pip install aiosmtpd
"""

import email
import email.policy
import json
import sys

from aiosmtpd.controller import Controller


class Recorder:
    """Accepts every message and prints what it received."""

    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "raw": raw.decode("utf-8", errors="replace"),
            "message": describe(email.message_from_bytes(raw, policy=email.policy.default)),
        }
        print(json.dumps(record), flush=True)
        return f"250 2.0.0 Ok: queued as sink-{self.count}"


def describe(message):
    """The parts of a parsed message the tests look at."""
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        parts.append({
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "content": part.get_content(),
        })
    return {
        "headers": {name.lower(): str(value) for name, value in message.items()},
        "content_type": message.get_content_type(),
        "parts": parts,
    }


class FreePortController(Controller):
    """A Controller that may bind port 0 and learns the port it was given."""

    def _trigger_server(self):
        # The base class connects to self.port to finish starting; with port 0
        # that must first become the port the kernel chose.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    controller = FreePortController(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    print(controller.port, flush=True)
    try:
        # The test holds stdin open; its end (or a kill) stops the server.
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
