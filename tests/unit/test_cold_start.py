"""Cold start: what a fresh process imports to declare entities and to send its first get.

Each case runs a new `python -c` process (the test process has imported everything long
ago) and asks it which heavy packages ended up in `sys.modules`. A Lambda function pays
for every one of them on each cold start; none is needed to declare a schema, and on the
direct transport none is needed to send a GetItem with environment credentials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# Packages a cold start must not pay for (botocore and pynamodb are the expensive ones).
HEAVY = (
    "botocore",
    "pynamodb",
    "boto3",
    "moto",
    "cryptography",
    "opentelemetry",
    "aiohttp",
    "asyncio",
    "concurrent",  # concurrent.futures: thread pools for bulk and parallel scans
)

ROOT = Path(__file__).resolve().parents[2]

DECLARE = """
import datetime as dt
import json
import sys

from dynaorm import Entity, Index, Table, schema_of

app = Table("app")

class User(Entity, table=app, pk="USER#{user_id}", sk="PROFILE"):
    user_id: str
    email: str
    by_email = Index(pk="EMAIL#{email}")

class Post(Entity, table=app, pk="USER#{user_id}", sk="POST#{created_at}#{post_id}"):
    user_id: str
    post_id: str
    created_at: dt.datetime
    topic: str | None = None
    by_topic = Index(pk="TOPIC#{topic}", sk="{created_at}")

schema = schema_of(app)
"""

REPORT = """
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[1])))
print(json.dumps({"heavy": heavy, "result": result}))
"""


def _run(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` + REPORT in a fresh interpreter at the project root; its JSON verdict."""
    program = textwrap.dedent(code) + REPORT
    completed = subprocess.run(
        [sys.executable, "-c", program, json.dumps(HEAVY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    verdict: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return verdict


def test_declaring_and_compiling_imports_no_io_stack() -> None:
    verdict = _run(DECLARE + "result = sorted(i.name for i in schema.gsis)\n")

    assert verdict["result"], "the schema compiled no GSI: the case lost its point"
    assert verdict["heavy"] == []


def test_the_lazy_public_names_still_resolve_in_a_fresh_process() -> None:
    verdict = _run(
        "import json, sys\nimport dynaorm\n"
        "result = [dynaorm.Session.__name__, dynaorm.RequestEvent.__name__,"
        " dynaorm.AsyncSession.__name__, dynaorm.AsyncUnitOfWork.__name__,"
        " 'Session' in dir(dynaorm)]\n"
    )

    assert verdict["result"] == ["Session", "RequestEvent", "AsyncSession", "AsyncUnitOfWork", True]


# -- first GetItem on the direct transport ---------------------------------------------

ITEM = {
    "PK": {"S": "USER#u1"},
    "SK": {"S": "PROFILE"},
    "_type": {"S": "User"},
    "user_id": {"S": "u1"},
    "email": {"S": "a@example.com"},
}


class _Responder(BaseHTTPRequestHandler):
    """A loopback DynamoDB that answers every GetItem with ITEM and records the request."""

    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(
            {
                "target": self.headers.get("X-Amz-Target"),
                "authorization": self.headers.get("Authorization", ""),
                "body": json.loads(body),
            }
        )
        answer = json.dumps({"Item": ITEM}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def responder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Responder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_first_get_on_the_direct_transport_imports_no_botocore(
    responder: tuple[str, list[dict[str, Any]]],
) -> None:
    endpoint, seen = responder
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "DYNAMODB_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="AKIDCOLD",
        AWS_SECRET_ACCESS_KEY="cold-secret",
        AWS_REGION="eu-west-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    code = (
        DECLARE
        + "from dynaorm import Session\n"
        + f"session = Session(endpoint_url={endpoint!r})\n"  # direct is the default
        + "user = session.get(User, user_id='u1')\n"
        + "result = [type(user).__name__, user.email]\n"
    )

    verdict = _run(code, env)

    assert verdict["result"] == ["User", "a@example.com"]
    assert verdict["heavy"] == []
    assert [(request["target"], request["body"]) for request in seen] == [
        (
            "DynamoDB_20120810.GetItem",
            {
                "TableName": "app",
                "Key": {"PK": {"S": "USER#u1"}, "SK": {"S": "PROFILE"}},
                "ReturnConsumedCapacity": "TOTAL",  # what session.stats counts
            },
        )
    ]
    assert seen[0]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDCOLD/"), (
        "signed with the environment's credentials"
    )
    assert "/eu-west-1/dynamodb/aws4_request" in seen[0]["authorization"]
