"""`python -m benchmarks --cold`: a fresh process imports, declares and sends its first get.

What a Lambda function pays on a cold start before it has answered anything: the
interpreter, the library's imports, declaring the model, building the client and one
GetItem over HTTP to DynamoDB Local. Each row is one small program (below) run as
`python -c` in a new process; the time is that process's wall time, start to exit, read
by this process around `subprocess.run`.

How it stays fair:

- One DynamoDB Local for every row (started here, or `--endpoint`); each row has its own
  access key id, so its own database, holding a `bench` table with the item it reads,
  written beforehand in that library's own format.
- Credentials and region come from the environment (no profile, no IMDS: see
  `_environment` in __main__), as on Lambda.
- Every library runs from compiled bytecode, as an installed package does: the children
  may write `.pyc` files (into a temporary `PYTHONPYCACHEPREFIX`) even where the shell
  sets `PYTHONDONTWRITEBYTECODE`, and the untimed first run of each row writes them.
  Without this a project run from a source tree would pay for compiling every module in
  every process, and site-packages would not.
- Every program prints what it read; a row whose program fails or reads the wrong thing
  is reported as failed and never timed (exit status 1).
- Rounds interleave the rows in a shuffled order; medians are reported, and the ratio
  is the median over the rounds of the row's time over raw botocore's in the same round.
- "python" is the floor every row pays: an interpreter that imports nothing.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._data import POSTS, TABLE
from benchmarks._timing import Measured, interleaved, runnable

__all__ = ["COLD_ROWS", "run"]

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("botocore", "pynamodb", "aiohttp", "urllib3")
_TITLE = POSTS[0].title

# What each dynaorm program declares: the benchmark's two entities (peers/dynaorm_peer.py).
_DECLARE = """
import datetime as dt
from dynaorm import Entity, Table, schema_of

app = Table("bench")

class User(Entity, table=app, pk="USER#{{user_id}}", sk="PROFILE"):
    user_id: str
    email: str
    name: str

class Post(Entity, table=app, pk="USER#{{user_id}}", sk="POST#{{created_at}}#{{post_id}}"):
    user_id: str
    post_id: str
    title: str
    body: str
    created_at: dt.datetime
    likes: int = 0
    views: int = 0
    tags: set[str] = set()
    published: bool = False
    topic: str | None = None

schema_of(app)
"""

_DYNAORM = (
    _DECLARE
    + """
from dynaorm import Session

session = Session(endpoint_url=ENDPOINT{options})
post = session.get(Post, user_id="u1", created_at=dt.datetime.fromisoformat(CREATED),
                   post_id="p0000")
title = post.title
"""
)

_BOTOCORE = """
import botocore.session

client = botocore.session.get_session().create_client("dynamodb", endpoint_url=ENDPOINT)
item = client.get_item(TableName="bench", Key={"PK": {"S": "USER#u1"}, "SK": {"S": SK}})["Item"]
title = item["title"]["S"]
"""

_PYDYNOX = """
import os
from pydynox import DynamoDBClient, Model, ModelConfig, set_default_client
from pydynox.attributes import (BooleanAttribute, DatetimeAttribute, NumberAttribute,
                                StringAttribute, StringSetAttribute)

class Post(Model):
    model_config = ModelConfig(table="bench")
    pk = StringAttribute(partition_key=True, alias="PK")
    sk = StringAttribute(sort_key=True, alias="SK")
    kind = StringAttribute(alias="_type", default="Post")
    user_id = StringAttribute()
    post_id = StringAttribute()
    title = StringAttribute()
    body = StringAttribute()
    created_at = DatetimeAttribute()
    likes = NumberAttribute(default=0)
    views = NumberAttribute(default=0)
    tags = StringSetAttribute()
    published = BooleanAttribute(default=False)
    topic = StringAttribute()

set_default_client(DynamoDBClient(
    region=os.environ["AWS_DEFAULT_REGION"], endpoint_url=ENDPOINT,
    access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
))
title = Post.sync_get(pk="USER#u1", sk=SK).title
"""

_REPORT = """
import sys as _sys
print(_json.dumps({"title": title, "heavy": sorted(
    {name.split(".")[0] for name in _sys.modules} & set(HEAVY))}))
"""


_TITLE_LINE = "title = TITLE\n"


@dataclass(frozen=True)
class ColdRow:
    """One library's cold-start program and what its table holds."""

    name: str
    program: str  # Python source; reads ENDPOINT, SK, CREATED, HEAVY; sets `title`
    data: str  # who writes its item: "dynaorm", "pydynox" or "" (none: the floor)
    needs: str = ""  # a module that must exist for the row to make sense ("" none)


COLD_ROWS = {
    "python": ColdRow("python", _TITLE_LINE, ""),
    "dynaorm-declare": ColdRow(
        "dynaorm, declare only", _DECLARE.replace("{{", "{").replace("}}", "}") + _TITLE_LINE, ""
    ),
    "dynaorm-direct": ColdRow(
        "dynaorm direct",
        _DYNAORM.format(options=", transport='direct'"),
        "dynaorm",
        needs="dynaorm._direct",
    ),
    "dynaorm-botocore": ColdRow(
        "dynaorm botocore",
        _DYNAORM.format(options=", transport='botocore'"),
        "dynaorm",
        needs="dynaorm._direct",
    ),
    "dynaorm-default": ColdRow("dynaorm default", _DYNAORM.format(options=""), "dynaorm"),
    "botocore": ColdRow("botocore (raw)", _BOTOCORE, "dynaorm"),
    "pydynox": ColdRow("pydynox", _PYDYNOX, "pydynox"),
}


class _Peer:
    """One row as `_timing.runnable` sees it: `cold()` runs its program once, checked."""

    unsupported: dict[str, str] = {}

    def __init__(self, key: str, row: ColdRow, endpoint: str, sort_key: str, cache: str) -> None:
        self.name = row.name
        self.row = row
        self.env = {**os.environ, "AWS_ACCESS_KEY_ID": _access_key(key)}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = cache
        self.source = "\n".join(
            [
                "import json as _json",
                f"ENDPOINT = {endpoint!r}",
                f"SK = {sort_key!r}",
                f"CREATED = {POSTS[0].created_at.isoformat()!r}",
                f"TITLE = {_TITLE!r}",
                f"HEAVY = {HEAVY!r}",
                row.program,
                _REPORT,
            ]
        )
        self.heavy: list[str] = []
        self.cpu: list[float] = []  # user + system seconds of each timed process

    def cold(self) -> str:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(
            [sys.executable, "-c", self.source],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines() or ["(no output)"]
            raise RuntimeError(f"exit {completed.returncode}: {lines[-1]}")
        verdict = json.loads(completed.stdout.strip().splitlines()[-1])
        if verdict["title"] != _TITLE:
            raise AssertionError(f"read {verdict['title']!r}, not {_TITLE!r}")
        self.heavy = verdict["heavy"]
        return str(verdict["title"])


def _access_key(key: str) -> str:
    """The row's access key id: its own DynamoDB Local database (letters only)."""
    return "cold" + key.replace("-", "")


def _load_data(endpoint: str, rows: dict[str, ColdRow]) -> dict[str, str]:
    """Each row's own database: a fresh `bench` table holding the post it reads.

    Returns each row's sort key of that post, in its library's own format.
    """
    from benchmarks import _e2e  # noqa: PLC0415 - shares the table set-up of --e2e

    sort_keys: dict[str, str] = {}
    for key, row in rows.items():
        if not row.data:
            sort_keys[key] = ""
            continue
        client = _e2e.raw_client(endpoint, _access_key(key))
        _e2e.create_table(client)
        if row.data == "pydynox":
            from benchmarks.peers import pydynox_peer  # noqa: PLC0415

            _e2e.use_key(_access_key(key))
            post = pydynox_peer.Peer(endpoint).posts[0]
            post.sync_save(full_replace=True)
            sort_keys[key] = str(post.sk)
        else:
            item = _dynaorm_item()
            client.put_item(TableName=TABLE, Item=item)
            sort_keys[key] = item["SK"]["S"]
        client.close()
    return sort_keys


def _dynaorm_item() -> dict[str, Any]:
    """The first post as dynaorm stores it (raw botocore reads the same item)."""
    from benchmarks.peers.dynaorm_peer import Post, _fields  # noqa: PLC0415
    from dynaorm._items import entity_to_item  # noqa: PLC0415

    return entity_to_item(Post(**_fields(POSTS[0])))


def _select(names: list[str] | None) -> dict[str, ColdRow]:
    chosen = names or list(COLD_ROWS)
    unknown = [name for name in chosen if name not in COLD_ROWS]
    if unknown:
        raise SystemExit(f"unknown --rows {unknown}; choose among {list(COLD_ROWS)}")
    return {name: COLD_ROWS[name] for name in chosen}


def _missing(row: ColdRow) -> str | None:
    import importlib.util  # noqa: PLC0415

    if row.needs and importlib.util.find_spec(row.needs) is None:
        return f"failed: this dynaorm has no {row.needs} (needs the direct transport merged)"
    return None


def run(
    *,
    quick: bool,
    rounds: int | None,
    endpoint: str | None,
    rows: list[str] | None,
    machine: Callable[[], list[str]],
) -> int:
    """Print the cold-start table; 1 when a row asked for could not run."""
    from benchmarks import _e2e  # noqa: PLC0415

    rounds = rounds or (3 if quick else 15)
    chosen = _select(rows)
    with _e2e.server(endpoint) as (url, description), tempfile.TemporaryDirectory() as cache:
        sort_keys = _load_data(url, chosen)
        peers = [_Peer(key, row, url, sort_keys[key], cache) for key, row in chosen.items()]
        missing = {peer.name: _missing(peer.row) for peer in peers}
        runnable_peers = [peer for peer in peers if missing[peer.name] is None]
        functions, results = runnable(runnable_peers, "cold", _prepare)
        floor = COLD_ROWS["botocore"].name
        results.update(interleaved(functions, dict.fromkeys(functions, 1), rounds, floor))
        results.update({name: reason for name, reason in missing.items() if reason})
        print("\n".join(machine()))
        print(description)
        print(
            f"cold start: {rounds} rounds of one fresh process per row (median wall time;"
            f" ratio: median over the rounds of the time over {floor}'s in the same round)\n"
        )
        print("\n".join(_table(peers, results)))
    return 1 if any(isinstance(value, str) for value in results.values()) else 0


def _prepare(peer: _Peer, workload: str) -> Callable[[], Any]:
    peer.cold()  # the warm-up run: checks the row works and fills the OS's file cache
    peer.cpu.clear()
    return peer.cold


def _table(peers: list[_Peer], results: dict[str, Measured | str]) -> list[str]:
    lines = [
        "| row | wall time | ratio | CPU time | heavy packages loaded |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for peer in peers:
        value = results[peer.name]
        if isinstance(value, Measured):
            ratio = f"{value.ratio:.2f}x" if value.ratio is not None else "-"
            heavy = ", ".join(peer.heavy) or "none of " + "/".join(HEAVY)
            cpu = statistics.median(peer.cpu) * 1e3
            lines.append(
                f"| {peer.name} | {value.seconds * 1e3:,.0f} ms | {ratio} | {cpu:,.0f} ms"
                f" | {heavy} |"
            )
        else:
            lines.append(f"| {peer.name} | failed | | | |")
            notes.append(f"- {peer.name}: {value}")
    return lines + notes
