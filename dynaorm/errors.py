"""The public error tree: every error dynaorm raises is a `DynaormError`.

```
DynaormError
├── DefinitionError            a class, template, index or table declaration is invalid
│   ├── KeyTemplateError       a key template is malformed or names an unusable field
│   ├── KeyCollisionError      two entities' primary keys could be equal
│   └── SchemaLockError        the schema lock is unreadable or disagrees with the classes
├── UnknownFieldError          a field path names no field (also an AttributeError)
├── KeyEncodingError           a slot value cannot be encoded, or a key breaks a limit
│   └── KeyDecodingError       a stored key does not match its template
├── ItemEncodingError          an attribute value cannot be stored in DynamoDB
│   └── ItemTooLarge           the item is over DynamoDB's 400 KB
├── DecryptionError            an encrypted attribute does not decrypt for its item
├── ItemDecodingError          a stored item does not fit its entity's fields
├── ExpressionError            a condition or update cannot be expressed
├── RequestError               DynamoDB refused or failed a request
│   ├── ConditionFailed        a condition expression was false
│   │   ├── ItemAlreadyExists  `create` found an item with the same key
│   │   ├── VersionConflict    the stored version is not the loaded one
│   │   ├── StaleEntity        values the write relied on changed since they were read
│   │   └── UniqueConstraintViolation  a unique value is taken
│   ├── TableNotFound          the table does not exist
│   ├── Throttled              throughput exceeded after the retry budget
│   ├── TransactionCanceled    a transaction was cancelled (per-action `reasons`)
│   ├── WriteOutcomeUnknown    a resent write failed and whether it landed cannot be told
│   └── ServiceError           any other error from the service or the network
├── TransactionTooLarge        a unit of work exceeds 100 actions or 4 MB
├── UnitOfWorkClosed           a unit of work was used after commit, rollback or failure
├── InvalidCursor              a pagination cursor was tampered with or is foreign
├── BatchIncomplete            a batch left requests undone: which, and why (per request)
├── MigrationError             the live table differs in a way `migrate` does not change
├── CheckpointMismatch         a migrate checkpoint belongs to another table or schema
└── PolicyError                an IAM policy cannot be generated as asked (tenant scope)
```

Every error carries a stable `code` and, where they apply, the `entity`, `key`,
`field` and `value` involved, so a handler can report them without parsing text.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BatchIncomplete",
    "CheckpointMismatch",
    "ConditionFailed",
    "DecryptionError",
    "DefinitionError",
    "DynaormError",
    "ExpressionError",
    "InvalidCursor",
    "ItemAlreadyExists",
    "ItemDecodingError",
    "ItemEncodingError",
    "ItemTooLarge",
    "KeyCollisionError",
    "KeyDecodingError",
    "KeyEncodingError",
    "KeyTemplateError",
    "MigrationError",
    "PolicyError",
    "RequestError",
    "SchemaLockError",
    "ServiceError",
    "StaleEntity",
    "TableNotFound",
    "Throttled",
    "TransactionCanceled",
    "TransactionTooLarge",
    "UniqueConstraintViolation",
    "UnitOfWorkClosed",
    "UnknownFieldError",
    "VersionConflict",
    "WriteOutcomeUnknown",
]

_UNSET: Any = object()


class DynaormError(Exception):
    """Root of every error dynaorm raises."""

    code: ClassVar[str] = "dynaorm"

    def __init__(
        self,
        message: str,
        *,
        entity: str | None = None,
        key: Any = None,
        field: str | None = None,
        value: Any = _UNSET,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.entity = entity
        self.key = key
        self.field = field
        self.value = None if value is _UNSET else value

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class DefinitionError(DynaormError):
    """An entity, index, template or table declaration is invalid."""

    code = "definition"


class KeyTemplateError(DefinitionError):
    """A key template is malformed or names a field that cannot fill a slot."""

    code = "key-template"


class KeyCollisionError(DefinitionError):
    """Two entities of one table could produce the same primary key."""

    code = "key-collision"

    def __init__(self, message: str, *, entities: tuple[str, str], example: Any) -> None:
        super().__init__(message, entity=entities[0], key=example)
        self.entities = entities
        self.example = example


class SchemaLockError(DefinitionError):
    """The schema lock is missing or unreadable, or places an index elsewhere than its
    declaration (a pin, a projection) allows."""

    code = "schema-lock"


class UnknownFieldError(DynaormError, AttributeError):
    """A field path names a field the entity does not have.

    It is also an `AttributeError`, so `hasattr(Post, "nope")` stays False.
    """

    code = "unknown-field"


class KeyEncodingError(DynaormError, ValueError):
    """A key slot value cannot be encoded, or a key breaks a DynamoDB limit."""

    code = "key-encoding"


class KeyDecodingError(KeyEncodingError):
    """A stored key does not match the template it should have been built from."""

    code = "key-decoding"


class ItemEncodingError(DynaormError, ValueError):
    """An attribute value cannot be stored in DynamoDB (range, precision, type)."""

    code = "item-encoding"


class ItemTooLarge(ItemEncodingError):
    """The item is larger than DynamoDB's 400 KB (409,600 bytes) limit."""

    code = "item-too-large"

    def __init__(self, message: str, *, entity: str | None, key: Any, size: int) -> None:
        super().__init__(message, entity=entity, key=key)
        self.size = size


class DecryptionError(DynaormError):
    """An encrypted attribute did not decrypt: altered, moved from another item or field,
    or wrapped by a key the provider cannot unwrap."""

    code = "decryption"


class ItemDecodingError(DynaormError, ValueError):
    """A stored item does not fit its entity (pydantic's error is the `__cause__`)."""

    code = "item-decoding"


class ExpressionError(DynaormError, ValueError):
    """A condition, filter or update cannot be turned into an expression."""

    code = "expression"


class RequestError(DynaormError):
    """DynamoDB refused or failed a request."""

    code = "request"

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
        field: str | None = None,
        value: Any = _UNSET,
    ) -> None:
        super().__init__(message, entity=entity, key=key, field=field, value=value)
        self.operation = operation
        self.table = table


class ConditionFailed(RequestError):
    """A condition expression evaluated to false.

    `item`: the stored item as a decoded entity (DynamoDB returns it with
    `ReturnValuesOnConditionCheckFailure=ALL_OLD`), or None when nothing is stored, the
    item is not an entity (a unique guard) or it no longer decodes; never a raw dict.
    `stored`: that item as DynamoDB returned it (attribute values), or None.
    `retries`: how many times the request was resent before this answer (a resent write
    may fail its own condition because an earlier attempt of it was applied).
    """

    code = "condition-failed"
    item: Any = None
    stored: dict[str, Any] | None = None
    retries: int = 0


class ItemAlreadyExists(ConditionFailed):
    """`create` found an item with the same primary key."""

    code = "item-already-exists"


class VersionConflict(ConditionFailed):
    """The stored version differs from the version that was loaded."""

    code = "version-conflict"


class StaleEntity(ConditionFailed):
    """Stored values a write relied on (to rebuild an index key, or to move a unique
    guard) changed since they were read; `fields` maps each such field to
    (the value relied on, the stored value)."""

    code = "stale-entity"

    def __init__(self, message: str, *, fields: dict[str, tuple[Any, Any]], **context: Any):
        super().__init__(message, **context)
        self.fields = fields


class UniqueConstraintViolation(ConditionFailed):
    """A value declared unique is already taken by another item."""

    code = "unique-violation"


class TableNotFound(RequestError):
    """The table (with its prefix) does not exist at the endpoint."""

    code = "table-not-found"


class Throttled(RequestError):
    """DynamoDB kept throttling after the retry budget was spent."""

    code = "throttled"


class TransactionCanceled(RequestError):
    """A transaction was cancelled; `reasons[i]` explains action i (None if it was fine).

    `items[i]`: the item stored under action i when its condition failed, as a decoded
    entity (None otherwise, or before dynaorm matched the reasons to its actions).
    """

    code = "transaction-canceled"

    def __init__(self, message: str, *, reasons: list[Any], **context: Any) -> None:
        super().__init__(message, **context)
        self.reasons = reasons
        self.items: list[Any] = [None] * len(reasons)


class WriteOutcomeUnknown(RequestError):
    """A write's response was lost, its resend failed its condition, and the stored item
    has moved on since: the first attempt may or may not have been applied. Unlike a
    `VersionConflict`, retrying blindly may apply the change twice; check the stored
    item for a marker of this write first. `item` is the stored item as a decoded entity,
    if any; `stored` the same item as DynamoDB returned it."""

    code = "write-outcome-unknown"
    item: Any = None
    stored: dict[str, Any] | None = None


class ServiceError(RequestError):
    """Any other error reported by DynamoDB or the network, with its AWS error code."""

    code = "service"

    def __init__(self, message: str, *, aws_code: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.aws_code = aws_code


class TransactionTooLarge(DynaormError):
    """A unit of work holds more than 100 actions or 4 MB; nothing was sent."""

    code = "transaction-too-large"


class UnitOfWorkClosed(DynaormError):
    """A unit of work was used after it committed, rolled back or failed to commit."""

    code = "unit-of-work-closed"


class InvalidCursor(DynaormError, ValueError):
    """A pagination cursor is malformed, tampered with, or belongs to another query."""

    code = "invalid-cursor"


class BatchIncomplete(DynaormError):
    """A batch finished with requests not done: what was done and what was not, and why.

    `unprocessed` holds exactly the entities or keys (as given) that were not written or
    read, in the order given, and `reasons[i]` is the `RequestError` that explains
    `unprocessed[i]`: the error of its chunk's last attempt, or a `Throttled` when DynamoDB
    handed it back unprocessed on every attempt. For `batch_write`, `written` holds every
    other entity or key: `written` + `unprocessed` is everything submitted. For
    `batch_get`, `items` holds the entities that were read, in key order; a key in
    neither list was read and has no item. `operation` names the DynamoDB operation.
    """

    code = "batch-incomplete"

    def __init__(
        self,
        message: str,
        *,
        unprocessed: list[Any],
        reasons: list[Any] | None = None,
        written: list[Any] | None = None,
        items: list[Any] | None = None,
        operation: str | None = None,
    ) -> None:
        names = {_entity_name(target) for target in unprocessed}
        super().__init__(message, entity=", ".join(sorted(n for n in names if n)) or None)
        self.unprocessed = unprocessed
        self.reasons = reasons if reasons is not None else [None] * len(unprocessed)
        self.written = written if written is not None else []
        self.items = items if items is not None else []
        self.operation = operation


def _entity_name(target: Any) -> str | None:
    """The entity class name of an entity or a key, for messages and `.entity`."""
    entity = getattr(target, "entity", None)
    if isinstance(entity, type):  # a Key names its entity class
        return entity.__name__
    return type(target).__name__ if hasattr(type(target), "__dynaorm__") else None


class MigrationError(DynaormError):
    """The live table differs from the schema in a way `migrate` does not change."""

    code = "migration"


class CheckpointMismatch(DynaormError):
    """A checkpoint file, or a shared backfill run joined with `--run`, belongs to a run on
    another table, schema or segment count."""

    code = "checkpoint-mismatch"


class PolicyError(DynaormError):
    """An IAM policy cannot be generated as asked: a tenant condition cannot cover an item."""

    code = "iam-policy"
