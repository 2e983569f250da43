"""Pure builders of write requests: puts, updates, deletes, version checks, unique guards.

Each builder returns the parameters of one action (the body of a PutItem request or of
one TransactWriteItems entry) plus `Purpose`, which says what a failed condition on that
action means, so a cancellation reason maps back to the entity and field involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from dynaorm._codec import AttributeValue, item_size, to_attribute_value
from dynaorm._compiler import CompiledSchema, index_attributes
from dynaorm._conditions import Condition, and_, build_condition
from dynaorm._crypto import seal
from dynaorm._entity import Entity, EntityInfo, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._fields import check_removable, reads_back_empty, validate_at
from dynaorm._items import entity_to_item_sized, ttl_seconds
from dynaorm._keys import KeyTemplate
from dynaorm._update import Update
from dynaorm.errors import (
    ExpressionError,
    KeyEncodingError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Action",
    "Expect",
    "FieldChanges",
    "Purpose",
    "build_update",
    "coerce_field",
    "delete_action",
    "derived_key_update",
    "guard_actions",
    "owned_by",
    "put_action",
    "stored_value",
    "unique_values",
    "update_action",
    "version_condition",
]

GUARD_SORT_KEY = "UNIQUE"
GUARD_TYPE = "dynaorm.unique"


class Expect(NamedTuple):
    """What a write relied on, to explain a failed condition from the stored item.

    `version`: the stored version required; `relied`: field -> value the stored item
    must still hold; `absent`: no item may be stored; `user`: a caller's condition is
    part of it; `sets`: the write's whole effect as field values (an update that only
    sets and removes fields), to recognise its own earlier, applied attempt.
    """

    info: EntityInfo
    version: int | None
    relied: dict[str, Any]
    absent: bool = False
    user: bool = False
    sets: dict[str, Any] | None = None


# Purpose and Action are NamedTuples rather than frozen dataclasses: as immutable, and
# built several times per item written, where a frozen dataclass's __init__ costs 3x.
class Purpose(NamedTuple):
    """What a failed condition on an action means."""

    kind: str  # "create", "write", "guard", "guard-release", "check"
    entity: str
    key: tuple[str, str]
    field: str | None = None
    value: Any = None
    expect: Expect | None = None


class Action(NamedTuple):
    """One write: its operation ("Put", "Update", "Delete", "ConditionCheck") and body."""

    operation: str
    params: dict[str, Any]
    purpose: Purpose
    # At least the bytes of item data it carries, as the 4 MB transaction limit counts
    # them, when known without counting (a Put built from an entity); None: count.
    size: int | None = None


def _finish(params: dict[str, Any], ph: Placeholders, condition: Condition | None) -> None:
    if condition is not None:
        params["ConditionExpression"] = build_condition(condition, ph)
    params.update(ph.to_request())


def _key_tuple(key: Key) -> tuple[str, str]:
    return (key.pk, key.sk)


def version_condition(info: EntityInfo, loaded: int) -> Condition:
    """The stored version must be the loaded one; version 0 means never stored."""
    if loaded == 0:
        return Path(info.table.partition_key).not_exists()
    return info.paths[str(info.version)] == loaded


def put_action(
    entity: Entity,
    table_name: str,
    *,
    must_not_exist: bool = False,
    condition: Condition | None = None,
    schema: CompiledSchema | None = None,
    known: Key | None = None,
) -> Action:
    """A Put of the whole item; `must_not_exist` adds attribute_not_exists (create).

    `known`: the entity's key as computed earlier, reused if its fields are unchanged.
    """
    info = type(entity).__dynaorm__
    table = info.table
    item, size = entity_to_item_sized(entity, schema, known)
    params: dict[str, Any] = {"TableName": table_name, "Item": item}
    if must_not_exist and condition is None:
        # The common create: the expression Placeholders would build, without building it.
        params["ConditionExpression"] = "attribute_not_exists(#n0)"
        params["ExpressionAttributeNames"] = {"#n0": table.partition_key}
    elif must_not_exist or condition is not None:
        ph = Placeholders()
        if must_not_exist:
            condition = and_(Path(table.partition_key).not_exists(), condition)
        _finish(params, ph, condition)
        size += item_size(params.get("ExpressionAttributeValues", {}))
    key = (item[table.partition_key]["S"], item[table.sort_key]["S"])
    kind = "create" if must_not_exist else "write"
    return Action("Put", params, Purpose(kind, info.name, key), size)


def delete_action(key: Key, table_name: str, *, condition: Condition | None = None) -> Action:
    info = key.entity.__dynaorm__
    params: dict[str, Any] = {"TableName": table_name, "Key": key.to_dynamodb()}
    _finish(params, Placeholders(), condition)
    return Action("Delete", params, Purpose("write", info.name, _key_tuple(key)))


@lru_cache(maxsize=4096)
def _adapter(info_cls: type[Entity], name: str) -> TypeAdapter[Any]:
    annotation: Any = info_cls.model_fields[name].annotation
    return TypeAdapter(annotation)


def coerce_field(info: EntityInfo, name: str, value: Any) -> Any:
    """Validate one field value the way the model would, so keys encode the real type."""
    if name not in info.paths:
        raise ExpressionError(
            f"{info.name} has no field {name!r}; fields: {sorted(info.paths)}",
            entity=info.name,
            field=name,
        )
    try:
        return _adapter(info.cls, name).validate_python(value)
    except ValidationError as e:
        raise ExpressionError(
            f"{info.name}.{name}: {value!r} is not a valid value: {e.errors()[0]['msg']}",
            entity=info.name,
            field=name,
            value=value,
        ) from e


def _stored(info: EntityInfo, name: str, value: Any) -> Any:
    """A validated field value as model_dump(mode='python') would hand it to the codec."""
    return _adapter(info.cls, name).dump_python(value, mode="python", by_alias=True)


@dataclass(frozen=True)
class FieldChanges:
    """An update request in field terms, as `session.update` receives it."""

    assign: Mapping[str | Path, Any]
    add: Mapping[str | Path, Any]
    remove: Iterable[str | Path]
    append: Mapping[str | Path, Any]
    delete: Mapping[str | Path, Any]
    if_not_exists: Mapping[str | Path, Any]

    def named(self, info: EntityInfo) -> FieldChanges:
        """These changes with each `Path` to a whole field replaced by the field's name.

        `set={User.email: x}` must meet the key, version and unique-guard rules that
        `set={"email": x}` meets, and those rules look at field names.
        """
        fields = {path.segments: name for name, path in info.paths.items()}

        def name_of(target: str | Path) -> str | Path:
            if isinstance(target, Path):
                return fields.get(target.segments, target)
            return target

        def rename(group: Mapping[str | Path, Any]) -> dict[str | Path, Any]:
            renamed = {name_of(target): value for target, value in group.items()}
            if len(renamed) < len(group):
                raise ExpressionError(
                    f"{info.name}: a field is given both by name and by path in one group "
                    f"of this update: {sorted(map(str, renamed))}",
                    entity=info.name,
                )
            return renamed

        return FieldChanges(
            rename(self.assign),
            rename(self.add),
            [name_of(target) for target in self.remove],
            rename(self.append),
            rename(self.delete),
            rename(self.if_not_exists),
        )

    def touched_fields(self) -> set[str]:
        names: set[str] = set()
        for group in (self.assign, self.add, self.append, self.delete, self.if_not_exists):
            names.update(k for k in group if isinstance(k, str))
        names.update(k for k in self.remove if isinstance(k, str))
        return names


def _path(info: EntityInfo, target: str | Path) -> Path:
    if isinstance(target, Path):
        return target
    path = info.paths.get(target)
    if path is None:
        raise ExpressionError(
            f"{info.name} has no field {target!r}; fields: {sorted(info.paths)}",
            entity=info.name,
            field=target,
        )
    return path


def build_update(
    info: EntityInfo, changes: FieldChanges, key: Key | None = None
) -> tuple[Update, dict[str, Any]]:
    """The update expression and the new values of plainly set fields (validated).

    `key` is the item's key: an `Encrypted()` field set by the update is sealed for it.
    """
    update = Update()
    new_values: dict[str, Any] = {}
    steps: list[tuple[Mapping[str | Path, Any], Callable[[Update, Path, Any], Update]]] = [
        (changes.assign, Update.set),
        (changes.if_not_exists, Update.set_if_not_exists),
        (changes.append, Update.append),
        (changes.add, Update.add),
        (changes.delete, Update.delete),
    ]
    for group, method in steps:
        for target, given in group.items():
            path = _path(info, target)
            if path.encrypted:
                whole = group is changes.assign or group is changes.if_not_exists
                if not (isinstance(target, str) and whole):
                    raise _ciphertext_error(path, method.__name__)
                value = coerce_field(info, target, given)
                if group is changes.assign:
                    new_values[target] = value
                if value is None:
                    update = update.remove(path)
                    continue
                update = method(update, path, _sealed(info, target, value, key))
                continue
            if not (isinstance(target, str) and group is changes.assign):
                # Typed paths (map values, list elements, model attributes) validate too.
                update = method(update, path, validate_at(path, given))
                continue
            new_values[target] = coerce_field(info, target, given)
            if new_values[target] is None and target in info.omit_none:
                update = update.remove(path)  # stored as absent
                continue
            value = _stored(info, target, new_values[target])
            if target == info.ttl:
                value = ttl_seconds(info.name, target, new_values[target])
            if isinstance(value, set | frozenset) and not value and reads_back_empty(info, target):
                update = update.remove(path)  # no empty set in DynamoDB: absent reads empty
                continue
            update = method(update, path, value)
    names = {attribute: name for name, attribute in info.attributes.items()}
    for target in changes.remove:
        path = _path(info, target)
        name = target if isinstance(target, str) else None
        if name is None and len(path.segments) == 1:
            name = names.get(str(path.segments[0]))
        if name is not None:
            check_removable(info, name)  # an item without a required field is unreadable
            new_values[name] = set() if reads_back_empty(info, name) else None
        update = update.remove(path)
    return update, new_values


def _ciphertext_error(path: Path, operation: str) -> ExpressionError:
    return ExpressionError(
        f"{path.describe()} is Encrypted(): DynamoDB holds only its ciphertext, so an update "
        f"cannot {operation} a part of it; set the whole field instead",
        entity=path.entity,
        field=path.dotted,
    )


def _sealed(info: EntityInfo, name: str, value: Any, key: Key | None) -> bytes:
    if key is None:
        raise ExpressionError(
            f"{info.name}.{name} is Encrypted(): an update of it needs the item's key",
            entity=info.name,
            field=name,
        )
    table = info.table
    return seal(info, name, value, {table.partition_key: key.pk, table.sort_key: key.sk})


def derived_key_update(
    schema: CompiledSchema,
    info: EntityInfo,
    touched: set[str],
    new_values: Mapping[str, Any],
    current: Mapping[str, Any] | None,
) -> tuple[dict[str, str], list[str]]:
    """GSI key attributes to set and to remove after the given fields change.

    Refuses changes to primary-key fields (DynamoDB keys are immutable: delete and
    create instead) and changes that would leave an index key half-built because the
    other fields of its templates are unknown or changed other than by a plain set.
    """
    key_fields = set(info.pk.fields + info.sk.fields)
    if touched & key_fields:
        raise KeyEncodingError(
            f"{info.name}: {sorted(touched & key_fields)} are primary-key fields; an "
            "update cannot change a key (delete and create the item, or use a unit of "
            "work, which does that for you)",
            entity=info.name,
            field=sorted(touched & key_fields)[0],
        )
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for placed in schema.entities[info.name].indexes.values():
        fields = set(placed.index.fields)
        if not fields & touched:
            continue
        unknown = sorted(f for f in fields if f not in new_values and current is None)
        computed = sorted(f for f in fields & touched if f not in new_values)
        if unknown or computed:
            raise KeyEncodingError(
                f"{info.name}: this update changes {sorted(fields & touched)}, which "
                f"index {placed.index.name} is built from, but the new values of "
                f"{unknown or computed} are not known; pass the entity (not a key) and "
                "set those fields with set=",
                entity=info.name,
                field=(unknown or computed)[0],
            )
        values = {**(current or {}), **new_values}
        attributes = index_attributes(placed, values)
        if attributes:
            to_set.update(attributes)
        else:
            to_remove.extend((placed.pk_attribute, placed.sk_attribute))
    return to_set, to_remove


def update_action(
    key: Key,
    table_name: str,
    update: Update,
    *,
    condition: Condition | None = None,
) -> Action:
    info = key.entity.__dynaorm__
    ph = Placeholders()
    # The item must exist: an update must never create a half-item with only the
    # changed attributes.
    condition = and_(Path(info.table.partition_key).exists(), condition)
    params: dict[str, Any] = {
        "TableName": table_name,
        "Key": key.to_dynamodb(),
        "UpdateExpression": update.serialize(ph),
    }
    _finish(params, ph, condition)
    return Action("Update", params, Purpose("write", info.name, _key_tuple(key)))


# -- unique guards ----------------------------------------------------------------------


@lru_cache(maxsize=1024)
def guard_template(info_cls: type[Entity], group: tuple[str, ...]) -> KeyTemplate:
    """`UNIQUE#<type>#<fields>#{value}...`: the partition key of a guard item."""
    info = info_cls.__dynaorm__
    annotations = {name: info_cls.model_fields[name].annotation for name in group}
    slots = "#".join("{" + name + "}" for name in group)
    source = f"UNIQUE#{info.name}#{'+'.join(group)}#{slots}"
    return KeyTemplate.parse(source, annotations, entity=info.name, role="unique", max_bytes=2048)


def guard_key(
    info: EntityInfo, group: tuple[str, ...], values: Mapping[str, Any]
) -> dict[str, Any]:
    pk = guard_template(info.cls, group).encode(values)
    table = info.table
    return {table.partition_key: {"S": pk}, table.sort_key: {"S": GUARD_SORT_KEY}}


def guard_actions(
    info: EntityInfo,
    table_name: str,
    owner: tuple[str, str],
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
) -> list[Action]:
    """Guard-item writes for a change from `old` to `new` field values.

    Creating (old None) puts a guard per unique group; deleting (new None) removes
    them; changing a unique value moves its guard. A put fails if the value is taken.
    """
    actions: list[Action] = []
    table = info.table
    for group in info.unique:
        before = None if old is None else tuple(old[f] for f in group)
        after = None if new is None else tuple(new[f] for f in group)
        if before == after:
            continue
        label = "+".join(group)
        if before is not None and old is not None and None not in before:
            # Released only by its owner: a guard owned by another item stays.
            params = {"TableName": table_name, "Key": guard_key(info, group, old)}
            _finish(params, Placeholders(), owned_by(owner))
            value = before[0] if len(before) == 1 else before
            purpose = Purpose("guard-release", info.name, owner, label, value)
            actions.append(Action("Delete", params, purpose))
        if after is not None and new is not None and None not in after:
            item: dict[str, AttributeValue] = {
                **guard_key(info, group, new),
                table.type_attribute: {"S": GUARD_TYPE},
                "owner_pk": {"S": owner[0]},
                "owner_sk": {"S": owner[1]},
            }
            ph = Placeholders()
            params = {"TableName": table_name, "Item": item}
            _finish(params, ph, Path(table.partition_key).not_exists())
            value = after[0] if len(after) == 1 else after
            actions.append(Action("Put", params, Purpose("guard", info.name, owner, label, value)))
    return actions


def unique_values(entity: Entity) -> dict[str, Any]:
    info = type(entity).__dynaorm__
    return {name: getattr(entity, name) for group in info.unique for name in group}


def owned_by(owner: tuple[str, str]) -> Condition:
    """A guard item records its owner's key: the condition that `owner` holds it."""
    return (Path("owner_pk") == owner[0]) & (Path("owner_sk") == owner[1])


def stored_value(info: EntityInfo, name: str, value: Any) -> AttributeValue | None:
    """How a field value is stored (None: the attribute is absent)."""
    if value is None:
        return None
    return to_attribute_value(_stored(info, name, value))
