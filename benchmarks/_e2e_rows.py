"""The rows of the end-to-end run: which library, configured how, on which database.

Raw botocore is always the first row (the floor of every ratio). Any other row is chosen
with `--rows` (default: all of them); a row asked for that cannot run (a library not
installed, a dynaorm API not merged yet) is reported with its reason and makes the run
exit 1: never silently dropped, never replaced by something else under its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.peers import BasePeer

__all__ = ["E2E_ROWS", "Row", "select"]

_DYNAORM = "benchmarks.peers.dynaorm_peer"
_ASYNC = "benchmarks.peers.dynaorm_async_peer"
_AIOBOTOCORE = "benchmarks.peers.aiobotocore_peer"
_PYDYNOX = "benchmarks.peers.pydynox_peer"


@dataclass(frozen=True)
class Row:
    """How to build one row's peer."""

    module: str
    key: str  # its access key id's suffix: its own DynamoDB Local database
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of Peer
    first: str = ""  # "items": Peer takes dynaorm's items first; "endpoint": the URL

    def build(self, endpoint: str, items: list[dict[str, Any]]) -> Callable[[], BasePeer]:
        """Import the peer's module (ImportError: not installed) and return its maker."""
        module = importlib.import_module(self.module)
        arguments = {"items": (items,), "endpoint": (endpoint,), "": ()}[self.first]
        return lambda: module.Peer(*arguments, **self.options)


E2E_ROWS = {
    "botocore": Row("benchmarks.peers.botocore_peer", "botocore", first="items"),
    "dynaorm": Row(_DYNAORM, "dynaorm"),
    "dynaorm-direct": Row(_DYNAORM, "dynaormdirect", {"transport": "direct"}),
    "dynaorm-botocore": Row(_DYNAORM, "dynaormbotocore", {"transport": "botocore"}),
    "dynaorm-async": Row(_ASYNC, "dynaormasync", {"concurrency": 1}),
    "dynaorm-async16": Row(_ASYNC, "dynaormasyncx", {"concurrency": 16}),
    "aiobotocore": Row(_AIOBOTOCORE, "aiobotocore", {"concurrency": 1}, first="items"),
    "aiobotocore16": Row(_AIOBOTOCORE, "aiobotocorex", {"concurrency": 16}, first="items"),
    "pydynox": Row(_PYDYNOX, "pydynox", first="endpoint"),
    # pydynox's default client is one per process: both pydynox rows use one database.
    "pydynox-async16": Row(
        "benchmarks.peers.pydynox_async_peer", "pydynox", {"concurrency": 16}, first="endpoint"
    ),
    "pynamodb": Row("benchmarks.peers.pynamodb_peer", "pynamodb"),
    "boto3": Row("benchmarks.peers.boto3_peer", "boto3"),
    "dyntastic": Row("benchmarks.peers.dyntastic_peer", "dyntastic"),
    "pydynantic": Row("benchmarks.peers.pydynantic_peer", "pydynantic"),
}


def select(names: list[str] | None) -> dict[str, Row]:
    """The rows asked for, raw botocore first; an unknown name ends the run."""
    chosen = names or list(E2E_ROWS)
    unknown = [name for name in chosen if name not in E2E_ROWS]
    if unknown:
        raise SystemExit(f"unknown --rows {unknown}; choose among {list(E2E_ROWS)}")
    return {name: E2E_ROWS[name] for name in dict.fromkeys(["botocore", *chosen])}
