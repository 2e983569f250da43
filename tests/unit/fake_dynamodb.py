"""A scripted DynamoDB on 127.0.0.1 for the direct transports' fault tests.

`FakeDynamoDB` answers each POST with the next scripted `Answer` (then 200 `{}`), keeps
connections alive (HTTP/1.1) and records every request. An answer can also cut the
connection mid-response, or be served over TLS with a `trustme` CA. `Proxy` is a loopback
HTTP forward proxy that records the request lines it forwarded.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)  # a dict (JSON) or raw bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # send the headers and part of the body, then close
    crc32: int | None = None  # a wrong x-amz-crc32 to send instead of the right one
    hang_up: bool = False  # answer in full, then close the kept-alive connection unannounced

    def payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


def error(code: str, message: str = "", status: int = 400, **extra: Any) -> Answer:
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}
    return Answer(status, body)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def operation(self) -> str:
        return self.headers["X-Amz-Target"].split(".", 1)[1]


class FakeDynamoDB:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.answers: list[Answer] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with fake.lock:
                    fake.seen.append(Seen(self.path, dict(self.headers), json.loads(raw)))
                    answer = fake.answers.pop(0) if fake.answers else Answer()
                payload = answer.payload()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-amzn-RequestId", f"req-{len(fake.seen)}")
                crc = answer.crc32 if answer.crc32 is not None else zlib.crc32(payload)
                self.send_header("x-amz-crc32", str(crc))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if answer.drop:
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)
                if answer.hang_up:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def script(self, *answers: Answer) -> None:
        with self.lock:
            self.answers.extend(answers)

    def operations(self) -> list[str]:
        return [seen.operation for seen in self.seen]

    def __enter__(self) -> FakeDynamoDB:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    """A forward proxy for plain-HTTP targets: `POST http://host:port/ HTTP/1.1`."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy.lines.append(self.requestline)
                target = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream = http.client.HTTPConnection(target.hostname or "", target.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream.request("POST", target.path or "/", body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serving(tls: ssl.SSLContext | None = None) -> Iterator[FakeDynamoDB]:
    with FakeDynamoDB(tls) as fake:
        yield fake
