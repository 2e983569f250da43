"""Checking requests against IAM policies, written apart from dynaorm's policy generator.

`needs()` says which IAM permissions one DynamoDB request needs, after the DynamoDB docs:
every API call is authorized as the action of its own name on the table (or, with
`IndexName`, the index) ARN, except transactions, whose Put/Update/Delete/Get actions
need PutItem/UpdateItem/DeleteItem/GetItem and whose ConditionCheck needs
ConditionCheckItem (developerguide/transaction-apis-iam.html). `allows()` evaluates a
policy the way IAM does for the parts dynaorm's policies use: Allow statements,
`*`/`?` wildcards in Action and Resource, and `ForAllValues:StringLike` plus `Null` on
`dynamodb:LeadingKeys` with `${aws:PrincipalTag/...}` variables. Anything else in a
policy raises, so a check can never pass by ignoring what it does not understand.

`AccessLog` is the suite-wide recorder: a transport listener that keeps every permission
the integration tests' requests needed, with the test that sent it.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dynaorm import Table, schema_of

ACCOUNT = "123456789012"
REGION = "us-east-1"
_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_FIXED = {"${*}": "*", "${?}": "?", "${$}": "$"}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Need:
    """One permission a request needs: an action on a table or index of it."""

    action: str  # "dynamodb:GetItem"
    table: str | None  # physical table name; None for account-wide calls (ListTables)
    index: str | None = None
    leading_keys: tuple[str, ...] = ()

    def arn(self, region: str = REGION, account: str = ACCOUNT) -> str:
        if self.table is None:
            return "*"
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{self.table}"
        return f"{arn}/index/{self.index}" if self.index else arn


KeyNames = Callable[[str, str | None], str | None]
"""(physical table, index or None) -> the partition key attribute, None if unknown."""


def needs(operation: str, params: Mapping[str, Any], key_name: KeyNames) -> list[Need]:
    """Every permission `operation` with `params` needs."""
    if operation in ("BatchGetItem", "BatchWriteItem"):
        found = []
        for table, body in params["RequestItems"].items():
            pk = key_name(table, None)
            if operation == "BatchGetItem":
                values = [_value(key, pk) for key in body["Keys"]]
            else:
                values = [
                    _value(r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"], pk)
                    for r in body
                ]
            found.append(Need(f"dynamodb:{operation}", table, None, _present(values)))
        return found
    if operation in ("TransactWriteItems", "TransactGetItems"):
        found = []
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
            pk = key_name(body["TableName"], None)
            value = _value(body.get("Key") or body.get("Item"), pk)
            found.append(
                Need(f"dynamodb:{_TRANSACT[kind]}", body["TableName"], None, _present([value]))
            )
        return found
    table = params.get("TableName")
    index = params.get("IndexName")
    leading: list[str | None] = []
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        leading = [_value(params["Key"], key_name(table, None))]
    elif operation == "PutItem":
        leading = [_value(params["Item"], key_name(table, None))]
    elif operation == "Query":
        leading = [_query_partition(params, key_name(table, index))]
    return [Need(f"dynamodb:{operation}", table, index, _present(leading))]


def _value(item: Mapping[str, Any] | None, attribute: str | None) -> str | None:
    if item is None or attribute is None or attribute not in item:
        return None
    return str(next(iter(item[attribute].values())))


def _present(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(v for v in values if v is not None)


def _query_partition(params: Mapping[str, Any], attribute: str | None) -> str | None:
    condition = params["KeyConditionExpression"]
    for placeholder, name in params["ExpressionAttributeNames"].items():
        match = re.search(re.escape(placeholder) + r" = (:\w+)", condition)
        if name == attribute and match:
            value = params["ExpressionAttributeValues"][match.group(1)]
            return str(next(iter(value.values())))
    return None


# -- evaluating a policy --------------------------------------------------------------------


def allows(policy: Mapping[str, Any], need: Need, tags: Mapping[str, str] | None = None) -> bool:
    """Whether an Allow statement of `policy` grants `need` to a principal with `tags`."""
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or set(statement) - {
            "Sid",
            "Effect",
            "Action",
            "Resource",
            "Condition",
        }:
            raise NotImplementedError(f"statement outside what this checker evaluates: {statement}")
        if not any(_like(pattern, need.action) for pattern in _listed(statement["Action"])):
            continue
        if not any(_like(pattern, need.arn()) for pattern in _listed(statement["Resource"])):
            continue
        if _conditions_hold(statement.get("Condition", {}), need, tags or {}):
            return True
    return False


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _conditions_hold(conditions: Mapping[str, Any], need: Need, tags: Mapping[str, str]) -> bool:
    for operator, keys in conditions.items():
        ((key, expected),) = keys.items()
        if key != "dynamodb:LeadingKeys":
            raise NotImplementedError(f"condition key {key}")
        if operator == "Null":
            present = bool(need.leading_keys)
            if expected != ("false" if present else "true"):
                return False
        elif operator == "ForAllValues:StringLike":
            patterns = [_substitute(p, tags) for p in _listed(expected)]
            if not all(
                any(p is not None and _like(p, value) for p in patterns)
                for value in need.leading_keys
            ):
                return False
        else:
            raise NotImplementedError(f"condition operator {operator}")
    return True


def _substitute(pattern: str, tags: Mapping[str, str]) -> list[tuple[str, bool]] | None:
    """The pattern as (text, is_literal) pieces; None when a variable cannot be resolved
    (IAM then never matches the condition)."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in _VARIABLE.finditer(pattern):
        pieces.append((pattern[position : match.start()], False))
        variable = match.group(0)
        if variable in _FIXED:
            pieces.append((_FIXED[variable], True))
        elif match.group(1).startswith("aws:PrincipalTag/"):
            value = tags.get(match.group(1).removeprefix("aws:PrincipalTag/"))
            if value is None:
                return None
            pieces.append((value, True))
        else:
            raise NotImplementedError(f"policy variable {variable}")
        position = match.end()
    pieces.append((pattern[position:], False))
    return pieces


def _like(pattern: str | list[tuple[str, bool]], value: str) -> bool:
    """IAM's StringLike / ARN matching: `*` any run of characters, `?` exactly one."""
    pieces = [(pattern, False)] if isinstance(pattern, str) else pattern
    regex = "".join(
        re.escape(text)
        if is_literal
        else "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
        for text, is_literal in pieces
    )
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


# -- the suite-wide recorder ------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A permission one test's request needed, and the table prefix of its session."""

    need: Need
    prefix: str
    test: str


class AccessLog:
    """Every permission the integration tests' requests needed, suite-wide."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[Sent] = []
        self.test = "?"

    def listener(self, prefix: str) -> Callable[..., None]:
        def listen(operation: str, params: dict[str, Any], response: Any, error: Any) -> None:
            found = needs(operation, params, lambda table, index: None)
            with self._lock:
                self.sent += [Sent(need, prefix, self.test) for need in found]

        return listen


def declared_tables(name: str) -> list[Table]:
    """Every `Table` of that logical name held by a loaded module (tests, examples)."""
    found: dict[int, Table] = {}
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, Table) and value.name == name:
                found[id(value)] = value
    return list(found.values())


def key_names_of(tables: Mapping[str, Table]) -> KeyNames:
    """A `KeyNames` for physical table names mapped to their declarations."""

    def key_name(table: str, index: str | None) -> str | None:
        declared = tables.get(table)
        if declared is None:
            return None
        if index is None:
            return declared.partition_key
        gsis = {gsi.name: gsi.pk_attribute for gsi in schema_of(declared).gsis}
        return gsis.get(index)

    return key_name
