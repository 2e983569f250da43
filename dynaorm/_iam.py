"""Least-privilege IAM policies derived from a table's compiled schema.

Which IAM actions each request needs follows the DynamoDB documentation: the actions of
a transaction are authorized as the item actions they contain (PutItem, UpdateItem,
DeleteItem, GetItem) and a transaction's ConditionCheck as `dynamodb:ConditionCheckItem`
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html);
a Query on a global secondary index is authorized on the index ARN.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any, Literal

from dynaorm._compiler import schema_of
from dynaorm._keys import KeyTemplate, LiteralSegment, SlotSegment
from dynaorm._schema import Table
from dynaorm._slots import SEPARATOR, SlotCodec
from dynaorm.errors import PolicyError

__all__ = ["Access", "iam_policy", "tenant_patterns", "tenant_tag_value"]

Access = Literal["read-write", "read-only", "admin"]

# What a Session sends at run time (get, queries, scans, batches, transactions, health).
_READ_ACTIONS = ("GetItem", "BatchGetItem", "Query", "Scan")
_WRITE_ACTIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "ConditionCheckItem")
_STATUS_ACTIONS = ("DescribeTable",)
# What create_table, diff and migrate send: the control plane, then the backfill's scan
# and conditional updates (a backfill re-reads an item whose update lost a race).
_ADMIN_ACTIONS = (
    "CreateTable",
    "UpdateTable",
    "DescribeTable",
    "DescribeTimeToLive",
    "UpdateTimeToLive",
    "Scan",
    "GetItem",
    "UpdateItem",
)
# A tenant-scoped principal cannot Scan: a Scan names no partition key, and
# `ForAllValues` conditions hold when the request carries no key at all.
_TENANT_EXCLUDED = frozenset({"Scan"})
# Characters IAM accepts in a tag value (letters, digits, spaces and `_ . : / = + - @`).
_TAG_PUNCTUATION = frozenset(" _.:/=+-@")
_REGION = re.compile(r"[a-z0-9*-]+")
_ACCOUNT = re.compile(r"[0-9]{12}|\*")
_PARTITION = re.compile(r"aws(-[a-z]+)*")
# StringLike wildcards, written as IAM's fixed-value policy variables when meant literally.
_LIKE_ESCAPES = {"*": "${*}", "?": "${?}", "$": "${$}"}


def iam_policy(
    table: Table,
    *,
    access: Access = "read-write",
    region: str = "*",
    account: str = "*",
    partition: str = "aws",
    table_prefix: str | None = None,
    tenant_slot: str | None = None,
    tenant_tag: str | None = None,
) -> dict[str, Any]:
    """An IAM policy document granting exactly what dynaorm sends for `table`.

    `access`: "read-write" (the runtime policy of an application), "read-only" (gets,
    queries and scans), or "admin" (create_table, diff and migrate, kept apart from the
    runtime policy). The table ARN uses the physical name: `table_prefix` (default
    `DYNAMODB_TABLE_PREFIX`, as sessions use) then the declared name; every GSI of the
    compiled schema gets its index ARN, for Query only.

    `tenant_slot`: a slot field that starts every partition key of the table; item
    actions are then allowed only on partitions whose encoded tenant segment equals the
    principal tag `tenant_tag` (default: the slot's name) through `dynamodb:LeadingKeys`.
    Raises `PolicyError` when such a condition cannot cover every item dynaorm writes.
    """
    for option, value, shape in (
        ("region", region, _REGION),
        ("account", account, _ACCOUNT),
        ("partition", partition, _PARTITION),
    ):
        if not shape.fullmatch(value):
            raise PolicyError(
                f"{option}={value!r} cannot go into an ARN", field=option, value=value
            )
    schema = schema_of(table)
    prefix = os.environ.get("DYNAMODB_TABLE_PREFIX", "") if table_prefix is None else table_prefix
    table_arn = f"arn:{partition}:dynamodb:{region}:{account}:table/{prefix}{table.name}"
    index_arns = [f"{table_arn}/index/{gsi.name}" for gsi in schema.gsis]
    if access == "admin":
        if tenant_slot is not None:
            raise PolicyError(
                f"Table {table.name!r}: the admin policy creates, scans and backfills the "
                "whole table; a tenant condition cannot apply to it",
                field=tenant_slot,
            )
        return _document([_statement("DynaormAdmin", _ADMIN_ACTIONS, [table_arn])])
    if access not in ("read-write", "read-only"):
        raise PolicyError(
            f"access={access!r}: expected 'read-write', 'read-only' or 'admin'", value=access
        )
    items = _READ_ACTIONS + (_WRITE_ACTIONS if access == "read-write" else ())
    condition = None
    if tenant_slot is not None:
        patterns = tenant_patterns(table, tenant_slot, tenant_tag or tenant_slot)
        condition = {
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": patterns},
            # ForAllValues also holds when a request carries no partition key at all.
            "Null": {"dynamodb:LeadingKeys": "false"},
        }
        items = tuple(a for a in items if a not in _TENANT_EXCLUDED)
    statements = [_statement("DynaormItems", items, [table_arn], condition)]
    if index_arns:
        statements.append(_statement("DynaormIndexQueries", ["Query"], index_arns, condition))
    statements.append(_statement("DynaormTableStatus", _STATUS_ACTIONS, [table_arn]))
    return _document(statements)


def tenant_patterns(table: Table, slot: str, tag: str) -> list[str]:
    """The `dynamodb:LeadingKeys` patterns matching every partition key of `table` whose
    tenant segment is the encoded value held in principal tag `tag`."""
    if not tag or len(tag) > 128 or not all(_tag_character(c) for c in tag):
        raise PolicyError(
            f"tenant tag {tag!r} is not an IAM tag key (1-128 letters, digits, spaces and "
            "_ . : / = + - @)",
            field=slot,
            value=tag,
        )
    entities = table.entities
    if not entities:
        raise PolicyError(f"Table {table.name!r} declares no entity to scope", field=slot)
    variable = "${aws:PrincipalTag/" + tag + "}"
    patterns: set[str] = set()
    codecs: dict[str, SlotCodec] = {}
    for entity in entities:
        info = entity.__dynaorm__
        if info.unique:
            raise PolicyError(
                f"{info.name}: unique={[list(u) for u in info.unique]} writes guard items "
                f"whose partition key (UNIQUE#{info.name}#...) holds no {slot!r}, so a "
                "tenant condition would refuse them; declare tenant-scoped entities without "
                "unique= (or on a table of their own), or leave out the tenant condition",
                entity=info.name,
                field=slot,
            )
        templates = [("pk", info.pk)] + [
            (f"index {name!r}", index.pk) for name, index in info.indexes.items()
        ]
        for role, template in templates:
            head, codec = _tenant_head(info.name, role, template, slot)
            codecs[f"{info.name} {role}"] = codec
            tail = len(template.segments) > len(head) + 1
            pattern = SEPARATOR.join([*(_like_literal(text) for text in head), variable])
            patterns.add(pattern + SEPARATOR + "*" if tail else pattern)
    if len({(c.kind, c.value_kind, c.enum) for c in codecs.values()}) > 1:
        kinds = ", ".join(f"{where}: {codec}" for where, codec in sorted(codecs.items()))
        raise PolicyError(
            f"Table {table.name!r}: slot {slot!r} is encoded differently across partition "
            f"keys ({kinds}); one principal tag cannot match them all",
            field=slot,
        )
    return sorted(patterns)


def _tenant_head(
    entity: str, role: str, template: KeyTemplate, slot: str
) -> tuple[list[str], SlotCodec]:
    """The literal segments before the tenant slot, and the slot's codec."""
    head: list[str] = []
    for segment in template.segments:
        if isinstance(segment, LiteralSegment):
            head.append(segment.text)
            continue
        if isinstance(segment, SlotSegment) and segment.field == slot:
            return head, segment.codec
        break
    raise PolicyError(
        f"{entity}: {role} partition key {template.source!r} does not start with the tenant "
        f"slot {{{slot}}} (only literal segments may come before it), so a "
        "dynamodb:LeadingKeys condition on the tenant cannot cover its items",
        entity=entity,
        key=template.source,
        field=slot,
    )


def tenant_tag_value(table: Table, slot: str, value: Any) -> str:
    """The principal tag value for tenant `value`: the slot value as keys encode it.

    Raises `PolicyError` when the encoded value holds characters an IAM tag cannot (the
    `$` escapes of characters at or below `$`, among others).
    """
    for entity in table.entities:
        for segment in entity.__dynaorm__.pk.segments:
            if isinstance(segment, SlotSegment) and segment.field == slot:
                encoded = segment.codec.encode(value)
                bad = sorted({c for c in encoded if not _tag_character(c)})
                if bad or not encoded:
                    raise PolicyError(
                        f"tenant {value!r} encodes as {encoded!r} in {entity.__name__}'s "
                        f"partition key; an IAM tag value cannot hold {bad or 'an empty value'}",
                        entity=entity.__name__,
                        field=slot,
                        value=value,
                    )
                return encoded
    raise PolicyError(f"no partition key of table {table.name!r} has slot {slot!r}", field=slot)


def _tag_character(char: str) -> bool:
    return char.isalnum() or char in _TAG_PUNCTUATION


def _like_literal(text: str) -> str:
    return "".join(_LIKE_ESCAPES.get(char, char) for char in text)


def _statement(
    sid: str,
    actions: Iterable[str],
    resources: list[str],
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(f"dynamodb:{action}" for action in set(actions)),
        "Resource": resources,
    }
    if condition is not None:
        statement["Condition"] = condition
    return statement


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}
