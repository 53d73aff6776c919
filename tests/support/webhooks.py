"""A webhook receiver on loopback: records every delivery and answers 204, or what it is told —
fail the first N, hold the answer (so that a delivery is in flight when a process dies), trickle
it, whatever a policy decides. A real receiver drops repeats by their Idempotency-Key:
``processed()`` is what such a receiver would have acted on."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Every authority a transfer KZ→UZ or an assistance request FR→KZ (treatyflow.samples) notifies.
AUTHORITIES = ("kz-gpo", "uz-gpo", "kz-penal", "uz-penal", "fr-moj", "kz-court", "kz-afm", "kz-police")


@dataclass
class Delivery:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # what the receiver answers (decided on arrival)
    arrived: float  # time.monotonic()
    answered: bool | None = None  # None while held; True once the answer was written

    @property
    def key(self) -> str:
        """Its Idempotency-Key."""
        return self.headers.get("idempotency-key", "")

    @property
    def attempt(self) -> int:
        """Its X-Treatyflow-Attempt."""
        return int(self.headers.get("x-treatyflow-attempt", "0"))

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    @property
    def subject(self) -> str:
        return self.event["subject"]

    @property
    def notice(self) -> tuple[str, str, str]:
        """What the notice says, without its id: (event, recipient, stage)."""
        data = self.event["data"]
        return data["event"], data["recipient"], data["stage"]


# a delivery → (status, seconds to hold the answer; negative: the answer trickles in over that long)
Policy = Callable[[Delivery], "tuple[int, float]"]


class Receiver:
    """A webhook receiver on 127.0.0.1 (an ephemeral port) that records every request and answers
    it after ``hold`` seconds with 204 — or what ``policy`` decides, or ``status`` to the next
    ``fail_first`` requests. ``keep_alive``: HTTP/1.1, connections stay open between requests
    (HTTP/1.0 otherwise: each answer closes its connection)."""

    def __init__(self, hold: float = 0.0, *, keep_alive: bool = False) -> None:
        self.hold = hold
        self.policy: Policy | None = None
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.failures_left = 0
        self.failure_status = 500
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                delivery = Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body, 204,
                                    time.monotonic())
                hold = receiver.answer(delivery)
                if hold < 0:  # trickle the answer, one byte a second: no read ever waits long
                    self.trickle(delivery.status, -hold, delivery)
                    return
                if hold:
                    time.sleep(hold)
                try:
                    self.send_response(delivery.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.wfile.flush()
                    delivery.answered = True
                except OSError:  # the sender is gone (killed while we held the answer)
                    delivery.answered = False
                    self.close_connection = True

            def trickle(self, status: int, seconds: float, delivery: Delivery) -> None:
                answer = f"HTTP/1.1 {status} OK\r\nContent-Length: 0\r\nX-Slow: {'x' * int(seconds)}\r\n\r\n".encode()
                try:
                    for i in range(len(answer)):
                        self.wfile.write(answer[i:i + 1])
                        self.wfile.flush()
                        if answer[i:i + 1] == b"x":
                            time.sleep(1.0)
                    delivery.answered = True
                except OSError:
                    delivery.answered = False
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many notices at once: never refuse a connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def answer(self, delivery: Delivery) -> float:
        """Record ``delivery`` with the status it is answered; the seconds to hold the answer."""
        with self.lock:
            if self.policy is not None:
                delivery.status, hold = self.policy(delivery)
            elif self.failures_left > 0:
                self.failures_left -= 1
                delivery.status, hold = self.failure_status, self.hold
            else:
                hold = self.hold
            self.deliveries.append(delivery)
        return hold

    def url(self, path: str = "/hooks") -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def webhooks_file(self, path: Path, authorities: Iterable[str] = AUTHORITIES) -> Path:
        """A TREATYFLOW_WEBHOOKS_FILE registering each authority under its own path."""
        path.write_text(json.dumps({a: {"url": self.url(f"/{a}"), "secret": f"{a}-webhook-secret-0123456789"}
                                    for a in authorities}))
        return path

    def fail_first(self, n: int, status: int = 500) -> None:
        with self.lock:
            self.failures_left, self.failure_status = n, status

    def received(self, subject: str | None = None) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if subject is None or d.subject == subject]

    def delivered(self) -> list[Delivery]:
        return [d for d in self.received() if 200 <= d.status < 300]

    def in_flight(self, subject: str | None = None) -> list[Delivery]:
        return [d for d in self.received(subject) if d.answered is None]

    def by_key(self, subject: str | None = None) -> dict[str, list[Delivery]]:
        keys: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.received(subject):
            keys[d.key].append(d)
        return dict(keys)

    def processed(self, subject: str | None = None) -> dict[str, Delivery]:
        """The notices an idempotent receiver acted on: the first accepted delivery of each key."""
        seen: dict[str, Delivery] = {}
        for d in self.received(subject):
            if 200 <= d.status < 300 and d.key not in seen:
                seen[d.key] = d
        return seen

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def signed_with(delivery: Delivery, secret: str) -> bool:
    """Verifies the signature header the way a receiver would, independently of the sender's code."""
    expected = "sha256=" + hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, delivery.headers.get("x-treatyflow-signature", ""))
