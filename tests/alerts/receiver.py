"""A webhook receiver for the alerting tests: a real HTTP server in its own process.

Every request is appended to a JSON-lines log with its headers, its body, whether the
`standardwebhooks` library (the Standard Webhooks reference implementation, from PyPI) accepts
its signature, and the status answered. The first `--fail-first` requests are answered 500, to
exercise the sender's retries.

    python receiver.py --port 9000 --log requests.jsonl --secret whsec_... [--fail-first 2]
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()

    verifier = Webhook(args.secret)
    lock = threading.Lock()
    state = {"seen": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verifier.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            with lock:
                state["seen"] += 1
                status = 500 if state["seen"] <= args.fail_first else 200
                record = {
                    "id": headers.get("webhook-id"),
                    "timestamp": headers.get("webhook-timestamp"),
                    "signature": headers.get("webhook-signature"),
                    "lease_token": headers.get("vigil-lease-token"),
                    "verified": verified,
                    "answered": status,
                    "body": json.loads(body.decode("utf-8")),
                    "raw": body.decode("utf-8"),
                }
                with open(args.log, "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
