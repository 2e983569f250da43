"""Planned actions -> request dicts, and responses or failed conditions -> outcomes.

Sans-I/O, the other half of `_planner.py`: `single_request` and `transaction_request` build
what is sent; `single_outcome` turns a failed condition into success (the write had
landed: its response was lost and the resent request failed its own condition) or into
the error that says what really failed; `transaction_error` does the same for a
cancelled TransactWriteItems. Both shells (a sync session today, an async one later)
send the requests and hand what came back to these functions.

Every conditional write asks for the stored item when its condition fails
(`ReturnValuesOnConditionCheckFailure=ALL_OLD`) and is explained by comparing that item
with the action's `Expect`: version first, then the values it relied on.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dynaorm._codec import AttributeValue, from_attribute_value
from dynaorm._compiler import schema_of
from dynaorm._items import entity_from_item
from dynaorm._writes import Action, Expect, stored_value
from dynaorm.errors import (
    ConditionFailed,
    DynaormError,
    ItemAlreadyExists,
    StaleEntity,
    TransactionCanceled,
    UniqueConstraintViolation,
    VersionConflict,
    WriteOutcomeUnknown,
)

__all__ = ["single_outcome", "single_request", "transaction_error", "transaction_request"]

_SINGLE_OPERATIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}

Item = dict[str, AttributeValue]


def single_request(action: Action) -> tuple[str, dict[str, Any]]:
    """The operation and request that send one action on its own."""
    params = dict(action.params)
    if action.operation == "Update":
        params["ReturnValues"] = "ALL_NEW"
    if "ConditionExpression" in params:
        params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return _SINGLE_OPERATIONS[action.operation], params


def transaction_request(actions: list[Action], token: str) -> dict[str, Any]:
    """One TransactWriteItems; a failed condition reports the stored item."""
    items = []
    for action in actions:
        params = action.params
        if "ConditionExpression" in params:
            params = {**params, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        items.append({action.operation: params})
    return {"TransactItems": items, "ClientRequestToken": token}


def single_outcome(
    action: Action, error: ConditionFailed
) -> Item | ConditionFailed | WriteOutcomeUnknown | None:
    """What a failed condition on a single write means.

    The stored item (as the write's own result) when an earlier attempt of this very
    request was applied and only its response was lost; None when a delete found nothing
    to delete (no error, as documented); otherwise the error naming what failed.
    """
    item: Item | None = error.stored
    expect = action.purpose.expect
    gone = action.operation == "Delete" and item is None and expect is not None
    if gone and expect is not None and (not expect.user or error.retries):
        return None  # deleted by this request's applied attempt, or never there
    if error.retries and expect is not None and _landed(action, expect, item):
        return item
    explained = explain(action, item, error)
    if error.retries and expect is not None and _moved_on(expect, item):
        return _unknown(action, explained, error.retries)
    return explained


def _moved_on(expect: Expect, item: Item | None) -> bool:
    """The item is gone or past the version a versioned write would have stored."""
    if expect.version is None:
        return False
    return item is None or _stored_version(expect, item) > expect.version + 1


def _unknown(action: Action, explained: ConditionFailed, retries: int) -> WriteOutcomeUnknown:
    """A resent versioned write found the item moved past the version it would store:
    an earlier attempt may have landed and been overwritten since. Not a conflict."""
    purpose = action.purpose
    unknown = WriteOutcomeUnknown(
        f"{purpose.entity} {purpose.key}: the response to this {action.operation} was "
        f"lost and it was resent {retries} time(s); the resend failed because the item "
        "changed since, so whether the first attempt was applied cannot be told "
        f"({explained.message})",
        operation=explained.operation,
        table=explained.table,
        entity=purpose.entity,
        key=purpose.key,
    )
    unknown.item = explained.item
    unknown.stored = explained.stored
    return unknown


def _landed(action: Action, expect: Expect, item: Item | None) -> bool:
    """The stored item is exactly what this action wrote (so an attempt of it landed)."""
    if item is None:
        return False
    if action.operation == "Put":
        return bool(item == action.params["Item"])
    if action.operation != "Update" or expect.sets is None or expect.version is None:
        return False
    info = expect.info
    if _stored_version(expect, item) != expect.version + 1:
        return False
    return all(
        item.get(info.attributes[name]) == stored_value(info, name, value)
        for name, value in expect.sets.items()
    )


def _stored_version(expect: Expect, item: Item | None) -> int:
    """The stored version; an item that is not there has version 0."""
    field = expect.info.version
    value = None if item is None or field is None else item.get(expect.info.attributes[field])
    return 0 if value is None else int(from_attribute_value(value))


def _differences(expect: Expect, item: Item | None) -> dict[str, tuple[Any, Any]]:
    info = expect.info
    found: dict[str, tuple[Any, Any]] = {}
    for name, value in expect.relied.items():
        stored = None if item is None else item.get(info.attributes[name])
        if stored != stored_value(info, name, value):
            found[name] = (value, None if stored is None else from_attribute_value(stored))
    return found


def explain(action: Action, item: Item | None, error: DynaormError | None) -> ConditionFailed:
    """The most specific error for a failed condition, given the stored item."""
    purpose = action.purpose
    context: dict[str, Any] = {
        "operation": getattr(error, "operation", None),
        "table": action.params.get("TableName"),
        "entity": purpose.entity,
        "key": purpose.key,
    }
    what = f"{purpose.entity} {purpose.key}"
    expect = purpose.expect
    result: ConditionFailed
    if purpose.kind == "guard":
        result = UniqueConstraintViolation(
            f"{purpose.entity}.{purpose.field} = {purpose.value!r} is already taken "
            f"(unique constraint); item {purpose.key}",
            field=purpose.field,
            value=purpose.value,
            **context,
        )
    elif purpose.kind == "guard-release":
        result = ConditionFailed(
            f"{what}: the guard of {purpose.entity}.{purpose.field} = {purpose.value!r} "
            "is not owned by this item, so it was not released",
            field=purpose.field,
            value=purpose.value,
            **context,
        )
    elif purpose.kind == "create" and (item or not (expect and expect.user)):
        result = ItemAlreadyExists(f"{what} already exists", **context)
    elif action.operation == "Update" and not item:
        result = ConditionFailed(
            f"{what} does not exist; update changes existing items only", **context
        )
    elif (
        expect is not None
        and expect.version is not None
        and (_stored_version(expect, item) != expect.version)
    ):
        result = VersionConflict(
            f"{what} was changed by someone else since it was loaded (version "
            f"{expect.version} expected, {_stored_version(expect, item)} stored)",
            **context,
        )
    else:
        result = _stale_or_failed(action, expect, item, context)
    result.item = _decoded(expect, item)
    result.stored = item
    return result


def _stale_or_failed(
    action: Action, expect: Expect | None, item: Item | None, context: dict[str, Any]
) -> ConditionFailed:
    what = f"{context['entity']} {context['key']}"
    differ = {} if expect is None else _differences(expect, item)
    if differ:
        return StaleEntity(
            f"{what} is stale: this {action.operation} relied on stored values that "
            f"changed since they were read: "
            + ", ".join(f"{k} was {v[0]!r}, is now {v[1]!r}" for k, v in differ.items())
            + "; read it again and retry",
            fields=differ,
            field=next(iter(differ)),
            **context,
        )
    if expect is not None and expect.absent and item:
        return StaleEntity(
            f"{what} is stale: it was stored by another writer since it was read; "
            "read it again and retry",
            fields={},
            **context,
        )
    return ConditionFailed(f"{what}: the condition of {action.operation} failed", **context)


def _decoded(expect: Expect | None, item: Item | None) -> Any:
    if not item or expect is None:
        return None
    try:
        return entity_from_item(schema_of(expect.info.table), item)
    except (DynaormError, ValidationError):
        return None  # an item another writer left invalid: explained, not decoded


def transaction_error(error: TransactionCanceled, actions: list[Action]) -> DynaormError:
    """The most specific error for a cancelled transaction of `actions` (in order).

    DynamoDB reports one reason per action, in the order sent; the first conditional
    failure decides the error (raised from `error`, its `__cause__`), whose `items[i]`
    holds the stored item of each failed action i as a decoded entity.
    """
    first: ConditionFailed | None = None
    for index, (action, reason) in enumerate(zip(actions, error.reasons, strict=False)):
        if reason and reason.get("Code") == "ConditionalCheckFailed":
            explained = explain(action, reason.get("Item"), error)
            explained.operation = "TransactWriteItems"
            error.items[index] = explained.item
            first = first or explained
    return error if first is None else first
