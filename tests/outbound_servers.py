"""Real servers for the outbound-message tests, bound to 127.0.0.1 on free ports.

`Mailbox` is an aiosmtpd SMTP server that keeps what it is sent and can be told to refuse
the next recipients with a reply of our choosing. `NotifyStub` is an HTTP server that speaks
the GOV.UK Notify API's documented JSON (POST /v2/notifications/email and /sms; 201 with the
notification's id, reference, content and template; errors as {"status_code", "errors"}),
checks the client's JSON Web Token as Notify does, and can be told to fail the next requests.
"""

from __future__ import annotations

import email
import json
import socket
import threading
import uuid
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from aiosmtpd.controller import Controller

SERVICE_ID = str(uuid.UUID(int=1))
SECRET = str(uuid.UUID(int=2))
API_KEY = f"test_key-{SERVICE_ID}-{SECRET}"


class Mailbox:
    """The aiosmtpd handler: delivered messages, and replies to give the next recipients."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refusals: list[str] = []
        self._lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, _: Any):
        with self._lock:
            if self.refusals:
                return self.refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_mailbox() -> tuple[Controller, Mailbox, int]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, mailbox, port


class NotifyStub:
    """What the stub was sent, and the failures it is to give next."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.failures: list[tuple[int, str, str]] = []  # status, error, message
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def sms(self) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path.endswith("/sms")]

    def emails(self) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path.endswith("/email")]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, error: str, message: str) -> None:
                errors = [{"error": error, "message": message}]
                self._answer(status, {"status_code": status, "errors": errors})

            def do_POST(self) -> None:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                try:
                    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
                except jwt.PyJWTError:
                    return self._error(403, "AuthError", "Invalid token: signature")
                if claims.get("iss") != SERVICE_ID:
                    return self._error(403, "AuthError", "Invalid token: iss")
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self.path not in ("/v2/notifications/email", "/v2/notifications/sms"):
                    return self._error(404, "NotFound", "Not found")
                if stub.failures:
                    return self._error(*stub.failures.pop(0))
                stub.requests.append((self.path, body))
                notification_id = str(uuid.uuid4())
                content = {"body": body.get("personalisation", {}).get("body", "")}
                if self.path.endswith("/email"):
                    content["subject"] = body.get("personalisation", {}).get("subject", "")
                    content["from_email"] = "service@notifications.service.gov.uk"
                else:
                    content["from_number"] = "GOVUK"
                return self._answer(
                    201,
                    {
                        "id": notification_id,
                        "reference": body.get("reference"),
                        "content": content,
                        "uri": f"{stub.url}/v2/notifications/{notification_id}",
                        "template": {
                            "id": body["template_id"],
                            "version": 1,
                            "uri": f"{stub.url}/v2/template/{body['template_id']}",
                        },
                    },
                )

        return Handler

    def start(self) -> NotifyStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
