"""dynaorm: a single-table-design ORM for Amazon DynamoDB."""

from dynaorm import errors
from dynaorm._async_session import AsyncSession, AsyncUnitOfWork
from dynaorm._bulk import BulkFailure, BulkResult
from dynaorm._collections import AsyncCollectionQuery, CollectionPage, CollectionQuery
from dynaorm._compiler import CompiledSchema, QueryPlan, schema_of
from dynaorm._conditions import Condition
from dynaorm._crypto import Encrypted, KmsKeyProvider, LocalKeyProvider
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._expressions import Path
from dynaorm._iam import iam_policy, tenant_tag_value
from dynaorm._query import AsyncQuery, AsyncScan, Page, Query, Scan
from dynaorm._schema import Collection, Index, Table
from dynaorm._session import CollectionResult, Session
from dynaorm._streams import StreamChange
from dynaorm._telemetry import TableCapacity, Telemetry, Usage
from dynaorm._transport import RequestEvent
from dynaorm._unit_of_work import UnitOfWork
from dynaorm._update import Update
from dynaorm.errors import DynaormError

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
