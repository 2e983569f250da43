"""dynaorm: a single-table-design ORM for Amazon DynamoDB.

Declaring entities and compiling a schema import no I/O stack: the names that need one
(`Session` and what comes with a transport) are imported on first use, through the
module `__getattr__` below, so a Lambda function's cold start pays only for what it sends.
"""

from typing import TYPE_CHECKING, Any

from dynaorm import errors
from dynaorm._bulk import BulkFailure, BulkResult
from dynaorm._collections import (
    AsyncCollectionQuery,
    CollectionPage,
    CollectionQuery,
    CollectionResult,
)
from dynaorm._compiler import CompiledSchema, QueryPlan, schema_of
from dynaorm._conditions import Condition
from dynaorm._crypto import Encrypted, KmsKeyProvider, LocalKeyProvider
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._expressions import Path
from dynaorm._iam import iam_policy, tenant_tag_value
from dynaorm._query import AsyncQuery, AsyncScan, Page, Query, Scan
from dynaorm._schema import Collection, Index, Table
from dynaorm._streams import StreamChange
from dynaorm._telemetry import TableCapacity, Telemetry, Usage
from dynaorm._unit_of_work import UnitOfWork
from dynaorm._update import Update
from dynaorm.errors import DynaormError

if TYPE_CHECKING:
    from dynaorm._async_session import AsyncSession, AsyncUnitOfWork
    from dynaorm._reporting import RequestEvent
    from dynaorm._session import Session

__version__ = "0.1.0"

__all__ = [
    "AsyncCollectionQuery",
    "AsyncQuery",
    "AsyncScan",
    "AsyncSession",
    "AsyncUnitOfWork",
    "BulkFailure",
    "BulkResult",
    "Collection",
    "CollectionPage",
    "CollectionQuery",
    "CollectionResult",
    "CompiledSchema",
    "Condition",
    "DynaormError",
    "Encrypted",
    "Entity",
    "EntityIndex",
    "Index",
    "Key",
    "KmsKeyProvider",
    "LocalKeyProvider",
    "Page",
    "Path",
    "Query",
    "QueryPlan",
    "RequestEvent",
    "Scan",
    "Session",
    "StreamChange",
    "Table",
    "TableCapacity",
    "Telemetry",
    "UnitOfWork",
    "Update",
    "Usage",
    "__version__",
    "errors",
    "iam_policy",
    "schema_of",
    "tenant_tag_value",
]

# Public name -> the module that defines it, imported when the name is first asked for.
_LAZY = {
    "AsyncSession": "dynaorm._async_session",
    "AsyncUnitOfWork": "dynaorm._async_session",
    "RequestEvent": "dynaorm._reporting",
    "Session": "dynaorm._session",
}


def __getattr__(name: str) -> Any:
    """Import a lazy public name's module on first use and cache the name here."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dynaorm' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only reached on a lazy name's first use

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
