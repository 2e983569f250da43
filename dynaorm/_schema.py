"""Declarations users write: `Table`, `Index` and `Collection` (plain data, no I/O)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dynaorm._crypto import Encryptor, KeyProvider
from dynaorm._keys import KeyTemplate, SlotSegment
from dynaorm.errors import DefinitionError

if TYPE_CHECKING:
    from dynaorm._entity import Entity, EntityIndex
    from dynaorm._streams import StreamChange

__all__ = ["Collection", "Index", "Projection", "Table"]

Projection = Literal["ALL", "KEYS_ONLY"] | tuple[str, ...]

# DynamoDB table names: 3-255 characters of [a-zA-Z0-9_.-]; attribute names 1-255 bytes.
# A logical name may be short: a session's table prefix comes first, and DynamoDB's
# 3-255 rule applies to the physical name (checked by `physical_table_name`).
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
_PHYSICAL_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{3,255}$")
_GSI_NAME = re.compile(r"^[A-Za-z0-9_.\-]{3,255}$")


def _check_attribute_name(table: str, option: str, name: str) -> None:
    if not name or len(name.encode("utf-8")) > 255:
        raise DefinitionError(
            f"Table {table!r}: {option}={name!r} must be 1 to 255 bytes long",
            field=option,
            value=name,
        )


def physical_table_name(prefix: str, logical: str) -> str:
    """`prefix` + `logical`, refused unless DynamoDB accepts it as a table name."""
    name = f"{prefix}{logical}"
    if not _PHYSICAL_TABLE_NAME.match(name):
        raise DefinitionError(
            f"table {logical!r} with prefix {prefix!r} is named {name!r}, which DynamoDB "
            "refuses: 3-255 characters of letters, digits, '_', '-', '.'; use a longer "
            "name or a table prefix",
            value=name,
        )
    return name


class Table:
    """One physical DynamoDB table shared by many entities.

    The physical key attribute names, the type attribute and the GSI naming scheme are
    table-wide; every entity declared with `table=` is registered here and compiled
    together (see `dynaorm.Table.schema`).

    `lock=` names a schema lock file (written by `dynaorm schema module:table --lock`)
    that fixes which GSI each index lives on; a relative path is read from the working
    directory, so `Path(__file__).with_name("dynaorm.lock.json")` is the robust spelling.
    """

    def __init__(
        self,
        name: str,
        *,
        partition_key: str = "PK",
        sort_key: str = "SK",
        type_attribute: str = "_type",
        ttl: str | None = None,
        gsi_prefix: str = "GSI",
        billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST",
        read_capacity: int | None = None,
        write_capacity: int | None = None,
        lock: str | os.PathLike[str] | None = None,
        encryption: KeyProvider | Encryptor | None = None,
    ) -> None:
        if not _TABLE_NAME.match(name):
            raise DefinitionError(
                f"Table name {name!r} is not a valid DynamoDB table name: 1-255 "
                "characters of letters, digits, '_', '-', '.' (with the session's table "
                "prefix, the physical name needs 3 to 255)",
                value=name,
            )
        for option, attr in (
            ("partition_key", partition_key),
            ("sort_key", sort_key),
            ("type_attribute", type_attribute),
            ("gsi_prefix", gsi_prefix),
        ):
            _check_attribute_name(name, option, attr)
        if len({partition_key, sort_key, type_attribute}) != 3:
            raise DefinitionError(
                f"Table {name!r}: partition_key, sort_key and type_attribute must differ",
            )
        if billing_mode == "PROVISIONED" and (read_capacity is None or write_capacity is None):
            raise DefinitionError(
                f"Table {name!r}: billing_mode='PROVISIONED' needs read_capacity and "
                "write_capacity",
            )
        self.name = name
        self.partition_key = partition_key
        self.sort_key = sort_key
        self.type_attribute = type_attribute
        self.ttl = ttl
        self.gsi_prefix = gsi_prefix
        self.billing_mode = billing_mode
        self.read_capacity = read_capacity
        self.write_capacity = write_capacity
        self.lock = Path(lock) if lock is not None else None
        self.encryptor: Encryptor | None = None
        if encryption is not None:
            self.use_encryption(encryption)
        self._entities: list[type[Entity]] = []
        # Collections of entity indexes: the compiler places each one's members together.
        self._collections: dict[tuple[str, ...], Collection] = {}
        self._lock = threading.Lock()
        # Filled by dynaorm._compiler; reset whenever an entity registers.
        self._compiled: Any = None

    def use_encryption(self, encryption: KeyProvider | Encryptor, **cache: Any) -> None:
        """Encrypt this table's `Encrypted()` fields with data keys from `encryption`.

        A `KeyProvider` (`KmsKeyProvider`, `LocalKeyProvider`) is wrapped in an
        `Encryptor` bound to this table's name (its encryption context); `cache` options
        (`max_age`, `max_uses`, `max_cached`) go to that encryptor. Call it at start-up,
        before the first write or read of an encrypted field.
        """
        if isinstance(encryption, Encryptor):
            if cache:
                raise TypeError("use_encryption: cache options apply to a KeyProvider only")
            self.encryptor = encryption
        else:
            context = {"dynaorm:table": self.name}
            self.encryptor = Encryptor(encryption, context=context, **cache)

    @property
    def entities(self) -> tuple[type[Entity], ...]:
        """Every concrete entity declared on this table, in declaration order."""
        return tuple(self._entities)

    def _register(self, entity: type[Entity]) -> None:
        with self._lock:
            # Re-defining a class (a reloaded module, a test redefining a model) replaces
            # the earlier one of the same qualified name instead of colliding with it.
            self._entities = [
                e
                for e in self._entities
                if (e.__module__, e.__qualname__) != (entity.__module__, entity.__qualname__)
            ]
            self._entities.append(entity)
            self._compiled = None

    @property
    def collections(self) -> tuple[Collection, ...]:
        """Collections of entity indexes declared over this table's current entities."""
        current = set(self._entities)
        return tuple(c for c in self._collections.values() if all(e in current for e in c.entities))

    def _register_collection(self, collection: Collection) -> None:
        key = tuple(repr(m) for m in collection.members)
        with self._lock:
            # Keyed by members, so a re-declared collection replaces the earlier one.
            self._collections[key] = collection
            self._compiled = None

    def parse_stream_record(self, record: Mapping[str, Any]) -> StreamChange:
        """Decode one DynamoDB Streams record of this table into a `StreamChange`.

        `record` is an element of a Lambda event's `Records`; its images become the
        entities they store, dispatched on the type attribute. Items of types this
        table does not declare (such as unique-guard items) give `None` entities.
        """
        # _streams decodes items through the compiler, which imports this module.
        from dynaorm._streams import parse_stream_record  # noqa: PLC0415

        return parse_stream_record(self, record)

    def __repr__(self) -> str:
        return f"Table({self.name!r}, entities={[e.__name__ for e in self._entities]})"


@dataclass(frozen=True)
class Index:
    """A secondary access pattern, declared as a class attribute of an entity.

    `pk` and `sk` are key templates over the entity's fields. The compiler places the
    index on an overloaded GSI (`GSI1PK`/`GSI1SK`, ...) unless `gsi=` pins one. An index
    without `sk` stores the entity's type name as its sort value. Sparse: when a slot
    field is None the item carries no attributes for this index.
    """

    pk: str
    sk: str | None = None
    gsi: str | None = None
    projection: Projection = "ALL"

    def __post_init__(self) -> None:
        if self.gsi is not None and not _GSI_NAME.match(self.gsi):
            raise DefinitionError(
                f"Index gsi={self.gsi!r} is not a valid index name "
                "(3-255 characters of letters, digits, '_', '-', '.')",
                value=self.gsi,
            )
        if isinstance(self.projection, str):
            if self.projection not in ("ALL", "KEYS_ONLY"):
                raise DefinitionError(
                    f"Index projection={self.projection!r}: use 'ALL', 'KEYS_ONLY' or a "
                    "tuple of attribute names (INCLUDE)",
                    value=self.projection,
                )
        elif not isinstance(self.projection, tuple) or not all(
            isinstance(name, str) and name for name in self.projection
        ):
            raise DefinitionError(
                f"Index projection={self.projection!r}: an INCLUDE projection is a tuple "
                "of non-empty attribute names",
                value=self.projection,
            )


def _shape(template: KeyTemplate) -> tuple[tuple[str, str], ...]:
    """Literals by text, slots by field and kind: equal shapes read one partition."""
    return tuple(
        ("slot", f"{s.field}:{s.codec}") if isinstance(s, SlotSegment) else ("lit", s.text)
        for s in template.segments
    )


@dataclass(frozen=True)
class Collection:
    """Items of several entities read together with one Query on one partition.

    Members are entities (their primary keys share one partition-key template) or
    entity indexes (`Collection(User.by_owner, Repository.by_owner)`), which the
    compiler then places on one GSI; their partition-key templates and projections
    must agree and their projection must be ALL (a collection decodes whole items).
    """

    entities: tuple[type[Entity], ...]
    name: str | None = field(default=None, compare=False)
    members: tuple[type[Entity] | EntityIndex, ...] = ()

    # Type checkers see `User.by_owner` as the declared `Index`; at run time the class
    # attribute is the bound `EntityIndex` (an unbound `Index` is refused below).
    def __init__(
        self, *members: type[Entity] | EntityIndex | Index, name: str | None = None
    ) -> None:
        if not members:
            raise DefinitionError("Collection() needs at least one entity")
        entities = tuple(_member_entity(m) for m in members)
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "members", tuple(members))
        self._check()
        if self.on_index:
            entities[0].__dynaorm__.table._register_collection(self)

    @property
    def on_index(self) -> bool:
        """Whether the members are entity indexes (one GSI) rather than primary keys."""
        return not isinstance(self.members[0], type)

    def describe(self) -> str:
        return self.name or f"Collection({', '.join(_member_name(m) for m in self.members)})"

    def _check(self) -> None:
        infos = [e.__dynaorm__ for e in self.entities]
        first, first_member = infos[0], self.members[0]
        names = [i.name for i in infos]
        if len(set(names)) != len(names):
            raise DefinitionError(f"Collection lists an entity twice: {names}")
        for info, member in zip(infos[1:], self.members[1:], strict=True):
            if info.table is not first.table:
                raise DefinitionError(
                    f"Collection: {first.name} is on table {first.table.name!r} but "
                    f"{info.name} is on {info.table.name!r}; a collection is one Query "
                    "on one table",
                    entity=info.name,
                )
            if isinstance(member, type) != isinstance(first_member, type):
                raise DefinitionError(
                    f"{self.describe()}: {_member_name(first_member)} and "
                    f"{_member_name(member)} are read through different indexes (the "
                    "table's primary key and a GSI); a collection is one Query on one index",
                    entity=info.name,
                )
            if _shape(_member_pk(member)) != _shape(_member_pk(first_member)):
                raise DefinitionError(
                    f"Collection: {_member_name(member)} has partition key "
                    f"{_member_pk(member).source!r} but {_member_name(first_member)} has "
                    f"{_member_pk(first_member).source!r}; collection members must share "
                    "one partition-key template",
                    entity=info.name,
                )
        if self.on_index:
            _check_index_members(self)

    @property
    def slots(self) -> Sequence[str]:
        """The partition-key slot fields a caller must supply."""
        return _member_pk(self.members[0]).fields


def _member_entity(member: object) -> type[Entity]:
    from dynaorm._entity import Entity, EntityIndex  # noqa: PLC0415 - _entity imports us

    if isinstance(member, EntityIndex):
        return member.entity
    if isinstance(member, type) and issubclass(member, Entity) and hasattr(member, "__dynaorm__"):
        return member
    raise DefinitionError(
        f"Collection members are entity classes or their indexes (User.by_owner), not {member!r}",
        value=member,
    )


def _member_name(member: type[Entity] | EntityIndex) -> str:
    return member.__dynaorm__.name if isinstance(member, type) else repr(member)


def _member_pk(member: type[Entity] | EntityIndex) -> KeyTemplate:
    return member.__dynaorm__.pk if isinstance(member, type) else member.pk


def _check_index_members(collection: Collection) -> None:
    """What can be refused from the declarations alone: projections and disagreeing pins."""
    indexes = [m for m in collection.members if not isinstance(m, type)]
    for index in indexes:
        if index.projection != "ALL":
            raise DefinitionError(
                f"{collection.describe()}: {index!r} projects {index.projection!r}; a "
                "collection decodes whole items, so its indexes must project ALL",
                entity=index.entity.__dynaorm__.name,
                field=index.name,
                value=index.projection,
            )
    pins = {index.gsi: index for index in indexes if index.gsi is not None}
    if len(pins) > 1:
        shown = ", ".join(f"{index!r} gsi={gsi!r}" for gsi, index in sorted(pins.items()))
        raise DefinitionError(
            f"{collection.describe()}: its indexes are pinned to different GSIs ({shown}); "
            "a collection is one Query on one GSI: pin them to the same one or unpin them",
            entity=indexes[0].entity.__dynaorm__.name,
            value=sorted(pins),
        )
