"""The `Entity` base class: a pydantic model plus its key templates and class options."""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict

# pydantic has no public hook for class-level attribute access. Subclassing its
# metaclass only to add `__getattr__` (reached solely for names normal lookup cannot
# find, i.e. model fields, whose defaults pydantic removes from the class namespace)
# is the smallest way to offer `Post.likes > 3` without shadowing fields: setting real
# class attributes would be read back by pydantic as defaults of subclass fields.
from pydantic._internal._model_construction import ModelMetaclass

from dynaorm._crypto import check_encrypted, encrypted_fields
from dynaorm._expressions import Path
from dynaorm._keys import KeyTemplate, literal_problem
from dynaorm._schema import Index, Projection, Table
from dynaorm._timestamps import check_options
from dynaorm.errors import DefinitionError, KeyEncodingError, UnknownFieldError

__all__ = ["Entity", "EntityIndex", "EntityInfo", "Key"]

PK_MAX_BYTES = 2048
SK_MAX_BYTES = 1024
# The sort key of every unique-guard item; its partition key is `guard_source(...)`.
GUARD_SORT_KEY = "UNIQUE"
# The type attribute of guard items: no entity may take it, or guards would decode as one.
GUARD_TYPE = "dynaorm.unique"


@dataclass(frozen=True)
class Key:
    """The primary key of one item: usable by get, delete, batch_get and check."""

    entity: type[Entity]
    pk: str
    sk: str
    slots: dict[str, Any] = field(compare=False, hash=False)

    def __repr__(self) -> str:
        return f"{self.entity.__name__}.key(pk={self.pk!r}, sk={self.sk!r})"

    def to_dynamodb(self) -> dict[str, dict[str, str]]:
        """The `Key` request parameter for this item."""
        table = self.entity.__dynaorm__.table
        return {table.partition_key: {"S": self.pk}, table.sort_key: {"S": self.sk}}


@dataclass(frozen=True)
class EntityIndex:
    """An `Index` bound to its entity: `Post.by_topic`, usable with `session.query`."""

    entity: type[Entity]
    name: str
    pk: KeyTemplate
    sk: KeyTemplate | None
    gsi: str | None
    projection: Projection

    def __repr__(self) -> str:
        return f"{self.entity.__name__}.{self.name}"

    @property
    def fields(self) -> tuple[str, ...]:
        """Every slot field of this index (partition then sort)."""
        return self.pk.fields + (self.sk.fields if self.sk is not None else ())


@dataclass
class EntityInfo:
    """Everything dynaorm knows about an entity class, built once at class definition."""

    cls: type[Entity]
    name: str
    table: Table
    pk: KeyTemplate
    sk: KeyTemplate
    indexes: dict[str, EntityIndex]
    unique: tuple[tuple[str, ...], ...]
    # unique group -> partition-key template of its guard items (sort key GUARD_SORT_KEY)
    guards: dict[tuple[str, ...], KeyTemplate]
    version: str | None
    ttl: str | None
    paths: dict[str, Path]
    # field name -> attribute name in the item (the alias, when one is declared)
    attributes: dict[str, str]
    # Fields whose default is None: a None value is stored by leaving the attribute out
    # (less to store, and `attribute_not_exists` / `if_not_exists` see it as absent).
    # Other fields store None as NULL, so reading the item back never revives a default.
    omit_none: frozenset[str] = frozenset()
    # Fields declared Annotated[..., Encrypted()]: stored as envelopes (see _crypto).
    encrypted: frozenset[str] = frozenset()
    # The created= / updated= timestamp fields (see _timestamps).
    created: str | None = None
    updated: str | None = None

    def key_from_entity(self, entity: Entity) -> Key:
        values = {name: getattr(entity, name) for name in self.pk.fields + self.sk.fields}
        return Key(self.cls, self.pk.encode(values), self.sk.encode(values), values)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


class _EntityMeta(ModelMetaclass):
    def __getattr__(cls, name: str) -> Any:
        # Only a finished entity class answers with field paths; while pydantic builds a
        # subclass it probes names with getattr and must see AttributeError.
        info = cls.__dict__.get("__dynaorm__")
        if info is not None and not name.startswith("_"):
            found = info.paths.get(name) or info.indexes.get(name)
            if found is not None:
                return found
            raise UnknownFieldError(
                f"{info.name} has no field or index {name!r}; fields: {sorted(info.paths)}"
                f", indexes: {sorted(info.indexes)}",
                entity=info.name,
                field=name,
            )
        # pydantic defines ModelMetaclass.__getattr__ only outside TYPE_CHECKING.
        return super().__getattr__(name)  # type: ignore[misc]


class Entity(BaseModel, metaclass=_EntityMeta):
    """Base class of every item type stored in a single table.

    Declare options as class keywords::

        class User(Entity, table=app, pk="USER#{user_id}", sk="PROFILE",
                   unique=("email",), version="version"):
            user_id: str
            email: str
            version: int = 0

            by_email = Index(pk="EMAIL#{email}")

    An entity with `table=` but no `pk=` is abstract: it shares fields and the table
    with its subclasses and is never stored itself. A subclass of a concrete entity
    declares its own `pk=` and `sk=` (it is then a distinct entity with its own type).
    """

    model_config = ConfigDict(
        ignored_types=(Index,),
        validate_assignment=True,
        populate_by_name=True,
        extra="ignore",
    )

    __dynaorm__: ClassVar[EntityInfo]
    __dynaorm_options__: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(
        cls,
        *,
        table: Table | None = None,
        pk: str | None = None,
        sk: str | None = None,
        unique: tuple[str | tuple[str, ...], ...] | str = (),
        version: str | None = None,
        type_name: str | None = None,
        created: str | None = None,
        updated: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        inherited = dict(cls.__dynaorm_options__)
        given = {
            "table": table,
            "pk": pk,
            "sk": sk,
            "unique": unique or None,
            "version": version,
            "type_name": type_name,
            "created": created,
            "updated": updated,
        }
        # Key templates and names belong to one class; table and guarantees inherit.
        for name in ("pk", "sk", "type_name"):
            inherited.pop(name, None)
        inherited.update({k: v for k, v in given.items() if v is not None})
        cls.__dynaorm_options__ = inherited

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        options = cls.__dynaorm_options__
        indexes = {n: v for n, v in cls.__dict__.items() if isinstance(v, Index)}
        if options.get("pk") is None:
            if indexes or options.get("sk") is not None:
                raise DefinitionError(
                    f"{cls.__name__} declares sk= or indexes but no pk=; an entity without "
                    "pk= is an abstract base",
                    entity=cls.__name__,
                )
            _refuse_keyless_subclass(cls)
            return
        info = _build_info(cls, options, indexes)
        for name in indexes:
            delattr(cls, name)
        cls.__dynaorm__ = info
        info.table._register(cls)

    @classmethod
    def key(cls, **slots: Any) -> Key:
        """The primary key of the item whose key fields have these values."""
        info = cls.__dynaorm__
        needed = set(info.pk.fields + info.sk.fields)
        missing = sorted(needed - slots.keys())
        unknown = sorted(slots.keys() - needed)
        if missing or unknown:
            raise KeyEncodingError(
                f"{info.name}.key(): missing {missing or 'nothing'}, unexpected "
                f"{unknown or 'nothing'}; the key fields are {sorted(needed)}",
                entity=info.name,
                field=(missing or unknown)[0],
            )
        return Key(cls, info.pk.encode(slots), info.sk.encode(slots), dict(slots))

    def get_key(self) -> Key:
        """This entity's primary key."""
        return type(self).__dynaorm__.key_from_entity(self)


def _refuse_keyless_subclass(cls: type[Entity]) -> None:
    """A subclass of a concrete entity without keys of its own would inherit the parent's
    `__dynaorm__` and be stored as the parent: its extra fields lost on every read."""
    parent = next((b for b in cls.__mro__[1:] if "__dynaorm__" in b.__dict__), None)
    if parent is None:
        return
    raise DefinitionError(
        f"{cls.__name__} subclasses the concrete entity {parent.__name__} without pk= and "
        f"sk=; it would be stored as a {parent.__name__} and lose its own fields on read. "
        "Declare pk= and sk= to make it a distinct entity, or move the shared fields to an "
        "abstract base (table= without pk=)",
        entity=cls.__name__,
    )


def _type_name(cls: type[Entity], options: dict[str, Any]) -> str:
    given = options.get("type_name")
    name = cls.__name__ if given is None else given
    # The type name is written as a literal segment (guard keys, index sort values) and
    # compared in type filters, so it obeys the literal-segment rule of key templates.
    problem = "is empty" if not isinstance(name, str) or not name else literal_problem(name)
    if name == GUARD_TYPE:
        problem = "is the type of dynaorm's unique-guard items"
    if problem is not None:
        raise DefinitionError(
            f"{cls.__name__}: type_name={name!r} {problem}; a type name is written into "
            "keys as a literal segment",
            entity=cls.__name__,
            field="type_name",
            value=name,
        )
    return name


def guard_source(entity: str, group: tuple[str, ...]) -> str:
    """`UNIQUE#<type>#<fields>#{value}...`: the partition-key template of a guard item."""
    slots = "#".join("{" + name + "}" for name in group)
    return f"UNIQUE#{entity}#{'+'.join(group)}#{slots}"


def _build_info(
    cls: type[Entity], options: dict[str, Any], indexes: dict[str, Index]
) -> EntityInfo:
    name = _type_name(cls, options)
    table = options.get("table")
    if not isinstance(table, Table):
        raise DefinitionError(
            f"{cls.__name__} declares pk= but no table=; pass table=Table(...) "
            "(or inherit it from an abstract base)",
            entity=cls.__name__,
        )
    if options.get("sk") is None:
        raise DefinitionError(
            f"{name}: declare sk= (table {table.name!r} has the sort key "
            f"{table.sort_key!r}); a literal such as sk='PROFILE' keeps one item per "
            "partition",
            entity=name,
        )
    annotations = {n: f.annotation for n, f in cls.model_fields.items()}
    # The name model_dump(by_alias=True) writes: a serialization alias wins over alias.
    attributes = {n: (f.serialization_alias or f.alias or n) for n, f in cls.model_fields.items()}
    pk = _primary_template(name, "pk", options["pk"], annotations, PK_MAX_BYTES)
    sk = _primary_template(name, "sk", options["sk"], annotations, SK_MAX_BYTES)
    pinned = {index.gsi for index in indexes.values() if index.gsi is not None}
    _check_reserved(name, table, attributes, pinned)
    unique_groups = _normalise_unique(name, options.get("unique"), annotations)
    encrypted = encrypted_fields(cls)
    info = EntityInfo(
        cls=cls,
        name=name,
        table=table,
        pk=pk,
        sk=sk,
        indexes={},
        unique=unique_groups,
        guards={g: _guard_template(name, g, annotations) for g in unique_groups},
        version=_check_version(name, options.get("version"), annotations),
        ttl=_check_ttl(name, table, annotations),
        paths={
            n: Path(
                attributes[n],
                annotation=a,
                entity=name,
                epoch_seconds=n == table.ttl,
                encrypted=n in encrypted,
            )
            for n, a in annotations.items()
        },
        attributes=attributes,
        omit_none=frozenset(
            n for n, f in cls.model_fields.items() if f.default is None and not f.is_required()
        ),
        encrypted=encrypted,
    )
    for index_name, index in indexes.items():
        info.indexes[index_name] = _bind_index(cls, name, index_name, index, annotations)
    info.created, info.updated = check_options(
        name, options.get("created"), options.get("updated"), annotations, pk.fields + sk.fields
    )
    check_encrypted(info)
    return info


def _primary_template(
    entity: str, role: str, source: Any, annotations: dict[str, Any], max_bytes: int
) -> KeyTemplate:
    if not isinstance(source, str):
        raise DefinitionError(
            f"{entity}: {role}= must be a template string, got {source!r}", entity=entity
        )
    template = KeyTemplate.parse(source, annotations, entity=entity, role=role, max_bytes=max_bytes)
    for slot_field in template.fields:
        if _strip_optional(annotations[slot_field])[1]:
            raise DefinitionError(
                f"{entity}.{slot_field} is optional but fills a slot of the primary key "
                f"{role}={source!r}; primary-key fields must always have a value "
                "(only index keys may be sparse)",
                entity=entity,
                field=slot_field,
            )
    return template


def _bind_index(
    cls: type[Entity], entity: str, name: str, index: Index, annotations: dict[str, Any]
) -> EntityIndex:
    role = f"index {name}"
    pk = KeyTemplate.parse(
        index.pk, annotations, entity=entity, role=f"{role} pk", max_bytes=PK_MAX_BYTES
    )
    sk = None
    if index.sk is not None:
        sk = KeyTemplate.parse(
            index.sk, annotations, entity=entity, role=f"{role} sk", max_bytes=SK_MAX_BYTES
        )
    return EntityIndex(cls, name, pk, sk, index.gsi, index.projection)


def _check_reserved(
    entity: str, table: Table, attributes: dict[str, str], pinned: set[str]
) -> None:
    reserved = {table.partition_key, table.sort_key, table.type_attribute}
    pinned_keys = {f"{gsi}{side}": gsi for gsi in pinned for side in ("PK", "SK")}
    gsi_attribute = re.compile(rf"^{re.escape(table.gsi_prefix)}[0-9]+(PK|SK)$")
    for field_name, attribute in attributes.items():
        if attribute in pinned_keys:
            raise DefinitionError(
                f"{entity}.{field_name} would be stored as {attribute!r}, a key attribute "
                f"of the GSI {pinned_keys[attribute]!r} an index of {entity} is pinned to; "
                "the derived key would overwrite it. Rename the field or give it an alias",
                entity=entity,
                field=field_name,
                value=attribute,
            )
        if attribute in reserved or gsi_attribute.match(attribute):
            raise DefinitionError(
                f"{entity}.{field_name} would be stored as {attribute!r}, which table "
                f"{table.name!r} reserves for keys or its type attribute; rename the "
                "field or give it an alias",
                entity=entity,
                field=field_name,
            )


def _guard_template(
    entity: str, group: tuple[str, ...], annotations: dict[str, Any]
) -> KeyTemplate:
    """The guard key template of a unique group: its fields must be usable as key slots."""
    source = guard_source(entity, group)
    for unique_field in group:
        inner, _ = _strip_optional(annotations[unique_field])
        try:
            KeyTemplate.parse(
                "{" + unique_field + "}",
                annotations,
                entity=entity,
                role="unique",
                max_bytes=PK_MAX_BYTES,
            )
        except DefinitionError as e:
            raise DefinitionError(
                f"{entity}.{unique_field} is {getattr(inner, '__name__', inner)} and "
                f"unique=: its value is written into the guard key {source!r}, which "
                f"only key-slot types can fill ({e.message})",
                entity=entity,
                field=unique_field,
                value=inner,
            ) from e
    return KeyTemplate.parse(
        source, annotations, entity=entity, role="unique", max_bytes=PK_MAX_BYTES
    )


def _normalise_unique(
    entity: str, unique: Any, annotations: dict[str, Any]
) -> tuple[tuple[str, ...], ...]:
    if not unique:
        return ()
    groups = (unique,) if isinstance(unique, str) else tuple(unique)
    result: list[tuple[str, ...]] = []
    for group in groups:
        fields = (group,) if isinstance(group, str) else tuple(group)
        if not fields:
            raise DefinitionError(f"{entity}: unique= holds an empty group", entity=entity)
        for unique_field in fields:
            if unique_field not in annotations:
                raise DefinitionError(
                    f"{entity}: unique= names {unique_field!r}, which is not a field",
                    entity=entity,
                    field=unique_field,
                )
        result.append(fields)
    return tuple(result)


def _check_version(entity: str, version: Any, annotations: dict[str, Any]) -> str | None:
    if version is None:
        return None
    if version not in annotations:
        raise DefinitionError(
            f"{entity}: version={version!r} is not a field", entity=entity, field=version
        )
    if annotations[version] is not int:
        raise DefinitionError(
            f"{entity}.{version} is the version field and must be declared `int`",
            entity=entity,
            field=version,
        )
    return str(version)


def _check_ttl(entity: str, table: Table, annotations: dict[str, Any]) -> str | None:
    if table.ttl is None or table.ttl not in annotations:
        return None
    inner, _ = _strip_optional(annotations[table.ttl])
    if inner not in (dt.datetime, int):
        raise DefinitionError(
            f"{entity}.{table.ttl} is the table's TTL attribute and must be a datetime "
            "or int (epoch seconds), optionally None",
            entity=entity,
            field=table.ttl,
        )
    return table.ttl
