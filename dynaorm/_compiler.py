"""Key-schema compiler: all entities of a `Table` -> one frozen physical schema."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dynaorm._bounds import KeyCondition
from dynaorm._entity import GUARD_SORT_KEY
from dynaorm._keys import KeyTemplate, LiteralSegment
from dynaorm._lock import LockedIndex, table_lock
from dynaorm._overlap import example_key, prefix_overlaps, templates_overlap
from dynaorm._placement import LockConflict, Source, place_indexes
from dynaorm._schema import Collection, Projection, Table
from dynaorm._slots import SEPARATOR
from dynaorm.errors import (
    DefinitionError,
    KeyCollisionError,
    KeyEncodingError,
)

if TYPE_CHECKING:
    from dynaorm._entity import Entity, EntityIndex, EntityInfo, Key

__all__ = [
    "CollectionPlan",
    "CompiledEntity",
    "CompiledIndex",
    "CompiledSchema",
    "Gsi",
    "QueryPlan",
    "compile_table",
    "schema_of",
]

MAX_GSIS = 20  # DynamoDB's default quota of global secondary indexes per table


@dataclass(frozen=True)
class CompiledIndex:
    """One entity index placed on a physical GSI."""

    index: EntityIndex
    gsi: str
    pk_attribute: str
    sk_attribute: str
    # The sort value written when the index declares no `sk`: the entity's type name.
    static_sk: str | None
    # What decided the GSI: the placement rule, a `gsi=` pin or the schema lock.
    source: Source = "rule"

    @property
    def entity_name(self) -> str:
        return self.index.entity.__dynaorm__.name

    @property
    def sort_side(self) -> KeyTemplate | str:
        """The sort template, or the fixed type name an index without `sk` writes."""
        return self.index.sk if self.index.sk is not None else str(self.static_sk)


@dataclass(frozen=True)
class Gsi:
    """A physical global secondary index, possibly shared by several entity indexes."""

    name: str
    pk_attribute: str
    sk_attribute: str
    projection: Projection
    indexes: tuple[CompiledIndex, ...]


@dataclass(frozen=True)
class CompiledEntity:
    """An entity with its GSI placements and the type filter its queries need."""

    info: EntityInfo
    indexes: Mapping[str, CompiledIndex]
    # Other types whose primary keys may fall inside this entity's query ranges.
    primary_neighbours: frozenset[str]
    # Attributes dynaorm derives (keys, type, GSI keys): not fields of the entity.
    derived: frozenset[str]


@dataclass(frozen=True)
class QueryPlan:
    """What a Query needs: where to look and which key condition selects the items."""

    index_name: str | None
    pk_attribute: str
    pk_value: str
    sk_attribute: str
    sk_condition: KeyCondition | None
    # Set when other entity types could satisfy the key condition: filter on the type.
    type_filter: str | None
    entity: type[Entity]


@dataclass(frozen=True)
class CollectionPlan:
    """One Query for a collection: the partition to read and each member's sort shape.

    An item counts for a member only if its type is the member's and its sort value has
    the member's segments (as many, with the same literals in place; `None` marks a
    slot), so one member's items are never taken for another's. Comparing the shape
    rather than decoding every slot keeps a 50-item read from paying 50 decodes.
    """

    index_name: str | None
    pk_attribute: str
    pk_value: str
    sk_attribute: str
    members: Mapping[str, tuple[str | None, ...]]

    def accepts(self, type_name: str, sort_value: str | None) -> bool:
        shape = self.members.get(type_name)
        if shape is None or sort_value is None:
            return False
        parts = sort_value.split(SEPARATOR)
        return len(parts) == len(shape) and all(
            literal is None or literal == part for literal, part in zip(shape, parts, strict=True)
        )


def _sort_shape(side: KeyTemplate | str) -> tuple[str | None, ...]:
    if isinstance(side, str):
        return tuple(side.split(SEPARATOR))
    return tuple(s.text if isinstance(s, LiteralSegment) else None for s in side.segments)


@dataclass(frozen=True)
class CompiledSchema:
    """The physical schema of one table, computed from every registered entity."""

    table: Table
    entities: Mapping[str, CompiledEntity]
    gsis: tuple[Gsi, ...]
    index_neighbours: Mapping[tuple[str, str], frozenset[str]] = field(repr=False)

    def entity(self, name: str) -> CompiledEntity:
        return self.entities[name]

    def key_attributes(self, entity: Entity, known: Key | None = None) -> dict[str, str]:
        """The derived key attributes of an entity: PK, SK and every non-sparse GSI key.

        `known`: a key computed earlier from this entity (a unit of work's add), reused
        when the entity's key fields still hold the same values of the same types.
        """
        info = type(entity).__dynaorm__
        values = vars(entity)  # pydantic keeps field values in the instance __dict__
        if known is not None and known.entity is type(entity) and _same_slots(known.slots, values):
            pk, sk = known.pk, known.sk
        else:
            pk, sk = info.pk.encode(values), info.sk.encode(values)
        attributes = {self.table.partition_key: pk, self.table.sort_key: sk}
        for placed in self.entities[info.name].indexes.values():
            attributes.update(index_attributes(placed, values))
        return attributes

    def plan(
        self,
        target: type[Entity] | EntityIndex,
        slots: Mapping[str, Any],
        *,
        op: str | None = None,
        field: str | None = None,
        operand: Any = None,
    ) -> QueryPlan:
        """The key condition for `target` given partition slots and sort-key bounds."""
        from dynaorm._entity import EntityIndex  # noqa: PLC0415 - runtime isinstance only

        if isinstance(target, EntityIndex):
            return self._plan_index(target, slots, op=op, field=field, operand=operand)
        info = target.__dynaorm__
        pk_value = _partition_value(info.name, info.pk, slots)
        condition = _sort_condition(info.name, info.pk, info.sk, slots, op, field, operand)
        neighbours = self.entities[info.name].primary_neighbours
        return QueryPlan(
            index_name=None,
            pk_attribute=self.table.partition_key,
            pk_value=pk_value,
            sk_attribute=self.table.sort_key,
            sk_condition=condition,
            type_filter=info.name if neighbours else None,
            entity=target,
        )

    def plan_collection(self, collection: Collection, slots: Mapping[str, Any]) -> CollectionPlan:
        """The partition a collection reads and how its items are told apart."""
        from dynaorm._entity import EntityIndex  # noqa: PLC0415 - runtime isinstance only

        first = collection.members[0]
        owner = collection.entities[0].__dynaorm__.name
        members: dict[str, tuple[str | None, ...]] = {}
        gsis: dict[str, str] = {}
        for member in collection.members:
            if isinstance(member, EntityIndex):
                placed = self.entities[member.entity.__dynaorm__.name].indexes[member.name]
                gsis[placed.gsi] = repr(member)
                members[placed.entity_name] = _sort_shape(placed.sort_side)
            else:
                members[member.__dynaorm__.name] = _sort_shape(member.__dynaorm__.sk)
        if len(gsis) > 1:
            raise DefinitionError(
                f"{collection.describe()}: its indexes sit on {sorted(gsis)}, not one GSI "
                "(a schema lock keeps them apart); move them with `dynaorm schema "
                "module:table --lock --force` and `dynaorm migrate`",
                entity=owner,
                value=sorted(gsis),
            )
        pk = first.pk if isinstance(first, EntityIndex) else first.__dynaorm__.pk
        gsi = next(iter(gsis), None)
        return CollectionPlan(
            index_name=gsi,
            pk_attribute=f"{gsi}PK" if gsi else self.table.partition_key,
            pk_value=_partition_value(owner, pk, slots),
            sk_attribute=f"{gsi}SK" if gsi else self.table.sort_key,
            members=members,
        )

    def _plan_index(
        self,
        index: EntityIndex,
        slots: Mapping[str, Any],
        *,
        op: str | None,
        field: str | None,
        operand: Any,
    ) -> QueryPlan:
        info = index.entity.__dynaorm__
        placed = self.entities[info.name].indexes[index.name]
        pk_value = _partition_value(info.name, index.pk, slots)
        if index.sk is None:
            if op is not None:
                raise KeyEncodingError(
                    f"{info.name}.{index.name} has no sort-key template; it cannot be "
                    f"queried with {op}",
                    entity=info.name,
                )
            condition: KeyCondition | None = KeyCondition("=", (str(placed.static_sk),))
        else:
            condition = _sort_condition(info.name, index.pk, index.sk, slots, op, field, operand)
        neighbours = self.index_neighbours[(info.name, index.name)]
        return QueryPlan(
            index_name=placed.gsi,
            pk_attribute=placed.pk_attribute,
            pk_value=pk_value,
            sk_attribute=placed.sk_attribute,
            sk_condition=condition,
            type_filter=info.name if neighbours else None,
            entity=index.entity,
        )


def _same_slots(slots: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether every slot value is unchanged: equal and of the same type (True is not 1)."""
    for name, then in slots.items():
        now = values.get(name)
        if type(now) is not type(then) or now != then:
            return False
    return True


def index_attributes(placed: CompiledIndex, values: Mapping[str, Any]) -> dict[str, str]:
    """The GSI attributes one index contributes, or none when a slot is None (sparse)."""
    index = placed.index
    if index.pk.has_none(values) or (index.sk is not None and index.sk.has_none(values)):
        return {}
    sk = index.sk.encode(values) if index.sk is not None else str(placed.static_sk)
    return {placed.pk_attribute: index.pk.encode(values), placed.sk_attribute: sk}


def _partition_value(entity: str, pk: KeyTemplate, slots: Mapping[str, Any]) -> str:
    missing = [name for name in pk.fields if slots.get(name) is None]
    if missing:
        raise KeyEncodingError(
            f"{entity}: a query needs every partition-key field of {pk.source!r}; "
            f"missing {missing}",
            entity=entity,
            field=missing[0],
        )
    return pk.encode(slots)


def _sort_condition(
    entity: str,
    pk: KeyTemplate,
    sk: KeyTemplate,
    slots: Mapping[str, Any],
    op: str | None,
    field: str | None,
    operand: Any,
) -> KeyCondition | None:
    fixed = {name: slots[name] for name in sk.fields if name in slots and name not in pk.fields}
    unknown = sorted(set(slots) - set(pk.fields) - set(sk.fields))
    if unknown:
        raise KeyEncodingError(
            f"{entity}: {unknown} are not key fields of this access pattern "
            f"(partition {pk.fields}, sort {sk.fields}); filter on them with .where()",
            entity=entity,
            field=unknown[0],
        )
    # Slots shared with the partition key are already fixed by it.
    shared = {name: slots[name] for name in sk.fields if name in pk.fields and name in slots}
    return sk.condition({**shared, **fixed}, op=op, field=field, operand=operand)


def schema_of(table: Table) -> CompiledSchema:
    """The compiled schema of `table`, compiled on first use and cached until it changes."""
    compiled = table._compiled
    if compiled is None:
        compiled = compile_table(table)
        table._compiled = compiled
    assert isinstance(compiled, CompiledSchema)
    return compiled


def compile_table(
    table: Table,
    *,
    lock: Mapping[str, LockedIndex] | Literal["table"] | None = "table",
    conflicts: list[LockConflict] | None = None,
) -> CompiledSchema:
    """Validate every entity of `table` together and place their indexes on GSIs.

    `lock`: the schema lock entries to honour; by default those of the file the table
    declares with `lock=`, None for none. `conflicts` collects lock entries that cannot be
    honoured instead of raising (their indexes are placed by their declarations).
    """
    infos = [e.__dynaorm__ for e in table.entities]
    _check_type_names(table, infos)
    _check_collisions(infos)
    entries = table_lock(table) if lock == "table" else lock
    placements = _assign_gsis(table, infos, entries, conflicts)
    gsis = _build_gsis(table, placements)
    _check_field_attributes(infos, gsis)
    entities = {}
    for info in infos:
        indexes = {p.index.name: p for p in placements if p.index.entity is info.cls}
        derived = {table.partition_key, table.sort_key, table.type_attribute}
        for placed in indexes.values():
            derived.update((placed.pk_attribute, placed.sk_attribute))
        entities[info.name] = CompiledEntity(
            info=info,
            indexes=indexes,
            primary_neighbours=_primary_neighbours(info, infos),
            derived=frozenset(derived),
        )
    return CompiledSchema(
        table=table,
        entities=entities,
        gsis=gsis,
        index_neighbours=_index_neighbours(gsis),
    )


def _check_type_names(table: Table, infos: list[EntityInfo]) -> None:
    seen: dict[str, EntityInfo] = {}
    for info in infos:
        other = seen.get(info.name)
        if other is not None:
            raise DefinitionError(
                f"Table {table.name!r}: {other.cls.__module__}.{other.cls.__qualname__} "
                f"and {info.cls.__module__}.{info.cls.__qualname__} both use the type "
                f"name {info.name!r}; pass type_name= to tell them apart",
                entity=info.name,
            )
        seen[info.name] = info


@dataclass(frozen=True)
class _KeySpace:
    """Primary keys some writer of the table produces: an entity's, or its unique guards'."""

    owner: str
    what: str
    pk: KeyTemplate
    sk: KeyTemplate | str

    def describe(self) -> str:
        sk = self.sk.source if isinstance(self.sk, KeyTemplate) else self.sk
        return f"{self.owner}{self.what} (pk={self.pk.source!r}, sk={sk!r})"


def _key_spaces(infos: list[EntityInfo]) -> list[_KeySpace]:
    spaces = []
    for info in infos:
        spaces.append(_KeySpace(info.name, "", info.pk, info.sk))
        spaces.extend(
            _KeySpace(info.name, f"'s unique guard for {list(group)}", guard, GUARD_SORT_KEY)
            for group, guard in info.guards.items()
        )
    return spaces


def _check_collisions(infos: list[EntityInfo]) -> None:
    """No two key spaces (entities, and the guard items of their unique groups) overlap:
    otherwise one writer would overwrite, then delete, another's item."""
    spaces = _key_spaces(infos)
    for i, first in enumerate(spaces):
        for second in spaces[i + 1 :]:
            if templates_overlap(first.pk, second.pk) and templates_overlap(first.sk, second.sk):
                pk = example_key(first.pk, second.pk)
                sk = example_key(first.sk, second.sk)
                raise KeyCollisionError(
                    f"{first.describe()} and {second.describe()} can produce the same "
                    f"primary key, e.g. ({pk!r}, {sk!r}); give one of them a distinct "
                    "literal segment",
                    entities=(first.owner, second.owner),
                    example=(pk, sk),
                )


def _check_field_attributes(infos: list[EntityInfo], gsis: tuple[Gsi, ...]) -> None:
    """No field is stored under a GSI key attribute: the derived key would overwrite it,
    or the field would put items of an entity without that index into the GSI."""
    owners = {
        attribute: gsi.name for gsi in gsis for attribute in (gsi.pk_attribute, gsi.sk_attribute)
    }
    for info in infos:
        for field_name, attribute in info.attributes.items():
            if attribute in owners:
                raise DefinitionError(
                    f"{info.name}.{field_name} would be stored as {attribute!r}, a key "
                    f"attribute of the GSI {owners[attribute]!r} of table "
                    f"{info.table.name!r}; rename the field or give it an alias",
                    entity=info.name,
                    field=field_name,
                    value=attribute,
                )


def _primary_neighbours(info: EntityInfo, infos: list[EntityInfo]) -> frozenset[str]:
    """Other key spaces a query of `info` may read: its queries then filter on the type.
    Guard items carry the guard type, so that filter also keeps them out."""
    return frozenset(
        space.owner + space.what
        for space in _key_spaces(infos)
        if not (space.owner == info.name and not space.what)
        and templates_overlap(info.pk, space.pk)
        and prefix_overlaps(info.sk, space.sk)
    )


def _assign_gsis(
    table: Table,
    infos: list[EntityInfo],
    lock: Mapping[str, LockedIndex] | None,
    conflicts: list[LockConflict] | None,
) -> list[CompiledIndex]:
    """Place every index (see `dynaorm._placement` for the rule).

    Lock entries the declarations cannot honour raise `SchemaLockError`, unless the
    caller collects them in `conflicts` (diff and `--lock --force` report them instead).
    """
    placed, refused = place_indexes(table, infos, lock)
    if refused and conflicts is None:
        raise refused[0].error(table.lock)
    if conflicts is not None:
        conflicts.extend(refused)
    gsis = {p.gsi for p in placed}
    if len(gsis) > MAX_GSIS:
        raise DefinitionError(
            f"Table {table.name!r} needs {len(gsis)} GSIs; DynamoDB allows "
            f"{MAX_GSIS}. Pin related indexes to shared GSIs with gsi=",
        )
    return [
        CompiledIndex(
            index=p.index,
            gsi=p.gsi,
            pk_attribute=f"{p.gsi}PK",
            sk_attribute=f"{p.gsi}SK",
            static_sk=p.info.name if p.index.sk is None else None,
            source=p.source,
        )
        for p in placed
    ]


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting GSI2 before GSI10."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)
    )


def _build_gsis(table: Table, placements: list[CompiledIndex]) -> tuple[Gsi, ...]:
    """The physical GSIs, in name order so CreateTable never depends on definition order."""
    names = sorted({p.gsi for p in placements}, key=_natural)
    gsis = []
    for name in names:
        on_it = sorted(
            (p for p in placements if p.gsi == name), key=lambda p: (p.entity_name, p.index.name)
        )
        gsis.append(
            Gsi(
                name=name,
                pk_attribute=f"{name}PK",
                sk_attribute=f"{name}SK",
                projection=on_it[0].index.projection,
                indexes=tuple(on_it),
            )
        )
    return tuple(gsis)


def _index_neighbours(gsis: tuple[Gsi, ...]) -> dict[tuple[str, str], frozenset[str]]:
    result: dict[tuple[str, str], frozenset[str]] = {}
    for gsi in gsis:
        for placed in gsi.indexes:
            result[(placed.entity_name, placed.index.name)] = frozenset(
                other.entity_name
                for other in gsi.indexes
                if other is not placed
                and other.entity_name != placed.entity_name
                and templates_overlap(placed.index.pk, other.index.pk)
                and _index_sort_overlaps(placed, other)
            )
    return result


def _index_sort_overlaps(placed: CompiledIndex, other: CompiledIndex) -> bool:
    return prefix_overlaps(placed.sort_side, other.sort_side)
