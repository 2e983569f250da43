"""Which physical GSI each index lives on: pins, then the schema lock, then the rule.

The rule looks at one entity at a time, so that defining, reordering or renaming other
entities, or reordering `Index` lines, never moves an index:

1. an index pinned with `gsi=` goes to that GSI;
2. an index the schema lock names goes where the lock says;
3. every other index, in order of index name, takes the lowest-numbered GSI of its
   projection's series that this entity does not already use: `GSI1, GSI2, ...` for ALL,
   `GSIKeys1, ...` for KEYS_ONLY and `GSIInc<digest>_1, ...` for INCLUDE (the digest names
   the attribute set, so only indexes projecting the same attributes meet).

Indexes of different entities that land on one GSI share it (GSI overloading). Their
projections cannot differ: that only happens through a pin or a lock, and is refused
rather than resolved by moving one of them.

The indexes of a `Collection` are placed together, before that rule, on one GSI: the one
a member is pinned to, else the one the lock gives its first locked member, else the
lowest-numbered GSI that no member entity holds with another pinned or locked index.
For the rule and the lock they then count as pinned there (source "collection").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dynaorm._lock import LockedIndex
from dynaorm._schema import Collection, Projection, Table
from dynaorm.errors import DefinitionError, SchemaLockError

if TYPE_CHECKING:
    from dynaorm._entity import EntityIndex, EntityInfo

__all__ = [
    "LockConflict",
    "Placement",
    "Source",
    "auto_gsi_name",
    "normal_projection",
    "place_indexes",
]

Source = Literal["rule", "pinned", "locked", "collection"]
# entity type name -> index name -> (GSI, the collection that puts it there)
Together = dict[str, dict[str, tuple[str, str]]]


@dataclass(frozen=True)
class Placement:
    """One index on its GSI, and what decided it."""

    info: EntityInfo
    index: EntityIndex
    gsi: str
    source: Source

    @property
    def name(self) -> str:
        """The index's name in a schema lock: `Entity.index`."""
        return f"{self.info.name}.{self.index.name}"


@dataclass(frozen=True)
class LockConflict:
    """A lock entry the declarations cannot honour, and where the index went instead."""

    placement: Placement
    locked: LockedIndex
    reason: str

    def message(self) -> str:
        placed = self.placement
        gsi = placed.gsi
        return (
            f"{placed.name}: the schema lock places it on {self.locked.describe()} but its "
            f"declaration puts it on {gsi} ({gsi}PK, {gsi}SK, "
            f"{_show(placed.index.projection)}) because {self.reason}"
        )

    def error(self, path: object) -> SchemaLockError:
        return SchemaLockError(
            f"{self.message()} (lock {path}). Items written under the locked placement "
            "would stop matching queries: restore the declaration, or move the index on "
            "purpose with `dynaorm schema module:table --lock --force` and `dynaorm migrate`",
            entity=self.placement.info.name,
            field=self.placement.index.name,
            value=self.locked.gsi,
        )


def _show(projection: Projection) -> str:
    return f"INCLUDE {list(projection)}" if isinstance(projection, tuple) else projection


def normal_projection(projection: Projection) -> Projection:
    """INCLUDE lists compare as sets: ("b", "a") projects what ("a", "b") does."""
    return tuple(sorted(set(projection))) if isinstance(projection, tuple) else projection


def auto_gsi_name(prefix: str, projection: Projection, number: int) -> str:
    """The `number`-th GSI of a projection's series."""
    projection = normal_projection(projection)
    if projection == "ALL":
        return f"{prefix}{number}"
    if projection == "KEYS_ONLY":
        return f"{prefix}Keys{number}"
    digest = hashlib.sha256("\n".join(projection).encode("utf-8")).hexdigest()[:8]
    return f"{prefix}Inc{digest}_{number}"


def place_indexes(
    table: Table, infos: Sequence[EntityInfo], lock: Mapping[str, LockedIndex] | None
) -> tuple[list[Placement], list[LockConflict]]:
    """Every index's GSI, in declaration order, and the lock entries not honoured."""
    placements: list[Placement] = []
    conflicts: list[LockConflict] = []
    together = place_collections(table, infos, lock or {})
    for info in infos:
        placed, refused = _place_entity(table, info, lock or {}, together.get(info.name, {}))
        placements += placed
        conflicts += refused
    _check_shared(placements)
    return placements, sorted(conflicts, key=lambda c: c.placement.name)


def _place_entity(
    table: Table,
    info: EntityInfo,
    lock: Mapping[str, LockedIndex],
    together: Mapping[str, tuple[str, str]],
) -> tuple[list[Placement], list[LockConflict]]:
    chosen: dict[str, tuple[str, Source]] = {}
    users: dict[str, str] = {}  # GSI -> the index of this entity on it
    refused: dict[str, tuple[LockedIndex, str]] = {}
    by_name = sorted(info.indexes.values(), key=lambda index: index.name)
    for index in by_name:
        if index.gsi is not None:
            _take(info, index, index.gsi, users)
            chosen[index.name] = (index.gsi, "pinned")
        elif index.name in together:
            _take(info, index, together[index.name][0], users)
            chosen[index.name] = (together[index.name][0], "collection")
    for index in by_name:
        locked = lock.get(f"{info.name}.{index.name}")
        if locked is None:
            continue
        reason = _lock_problem(index, locked, users, together.get(index.name))
        if reason is not None:
            refused[index.name] = (locked, reason)
        elif index.name in chosen:
            continue
        elif index.gsi is None:
            users[locked.gsi] = index.name
            chosen[index.name] = (locked.gsi, "locked")
    for index in by_name:
        if index.name not in chosen:
            number = 1
            while auto_gsi_name(table.gsi_prefix, index.projection, number) in users:
                number += 1
            gsi = auto_gsi_name(table.gsi_prefix, index.projection, number)
            users[gsi] = index.name
            chosen[index.name] = (gsi, "rule")
    placements = {
        name: Placement(info, info.indexes[name], gsi, source)
        for name, (gsi, source) in chosen.items()
    }
    conflicts = [
        LockConflict(placements[name], locked, reason) for name, (locked, reason) in refused.items()
    ]
    return [placements[name] for name in info.indexes], conflicts


def _take(info: EntityInfo, index: EntityIndex, gsi: str, users: dict[str, str]) -> None:
    other = users.get(gsi)
    if other is not None:
        how = "pinned to" if index.gsi is not None else "placed by its collection on"
        raise DefinitionError(
            f"{info.name}.{index.name} is {how} {gsi}, which {info.name}.{other} "
            "already uses; an item holds one key per GSI",
            entity=info.name,
            field=index.name,
            value=gsi,
        )
    users[gsi] = index.name


def _lock_problem(
    index: EntityIndex,
    locked: LockedIndex,
    users: Mapping[str, str],
    together: tuple[str, str] | None,
) -> str | None:
    """Why the declaration cannot stay where the lock puts it, or None."""
    if index.gsi is not None:
        return None if index.gsi == locked.gsi else f"it is pinned with gsi={index.gsi!r}"
    if together is not None:
        gsi, collection = together
        return None if gsi == locked.gsi else f"{collection} places it on {gsi}"
    if normal_projection(index.projection) != normal_projection(locked.projection):
        return f"it now projects {_show(index.projection)}"
    if (locked.pk_attribute, locked.sk_attribute) != (f"{locked.gsi}PK", f"{locked.gsi}SK"):
        return f"{locked.gsi}'s key attributes are {locked.gsi}PK and {locked.gsi}SK"
    other = users.get(locked.gsi)
    if other is not None:
        return f"{index.entity.__dynaorm__.name}.{other} is on {locked.gsi} already"
    return None


def _check_shared(placements: Sequence[Placement]) -> None:
    """Indexes of different entities on one GSI must agree on its projection."""
    first: dict[str, Placement] = {}
    for placed in sorted(placements, key=lambda p: p.name):
        holder = first.setdefault(placed.gsi, placed)
        mine, theirs = placed.index.projection, holder.index.projection
        if normal_projection(mine) != normal_projection(theirs):
            raise DefinitionError(
                f"{placed.name} ({placed.source}) wants projection {_show(mine)} on "
                f"{placed.gsi}, where {holder.name} ({holder.source}) projects "
                f"{_show(theirs)}; one GSI has one projection. Pin one of them to another "
                "GSI with gsi=",
                entity=placed.info.name,
                field=placed.index.name,
                value=placed.gsi,
            )


def place_collections(
    table: Table, infos: Sequence[EntityInfo], lock: Mapping[str, LockedIndex]
) -> Together:
    """The GSI of every index that is a member of a collection (see the module docstring)."""
    current = {info.cls for info in infos}
    together: Together = {}
    collections = [c for c in table.collections if all(e in current for e in c.entities)]
    for collection in sorted(collections, key=lambda c: [repr(m) for m in c.members]):
        members = [m for m in collection.members if not isinstance(m, type)]
        gsi = _collection_gsi(table, collection, members, lock, together)
        for index in members:
            together.setdefault(index.entity.__dynaorm__.name, {})[index.name] = (
                gsi,
                collection.describe(),
            )
    return together


def _collection_gsi(
    table: Table,
    collection: Collection,
    members: Sequence[EntityIndex],
    lock: Mapping[str, LockedIndex],
    together: Together,
) -> str:
    busy = _busy(members, lock, together)
    fixed = {gsi: f"{index!r} ({why})" for index in members for gsi, why in _fixed(index, together)}
    if len(fixed) > 1:
        raise DefinitionError(
            f"{collection.describe()}: its indexes are already placed on different GSIs "
            f"({', '.join(f'{v} on {k}' for k, v in sorted(fixed.items()))}); a collection "
            "is one Query on one GSI",
            entity=members[0].entity.__dynaorm__.name,
            value=sorted(fixed),
        )
    if fixed:
        gsi = next(iter(fixed))
    else:
        locked = [
            lock[f"{i.entity.__dynaorm__.name}.{i.name}"] for i in members if _in_lock(i, lock)
        ]
        gsi = locked[0].gsi if locked else _lowest_free(table, members[0].projection, busy)
    for index in members:
        other = busy.get(index.entity.__dynaorm__.name, {}).get(gsi)
        if other is not None and other != index.name:
            raise DefinitionError(
                f"{collection.describe()} needs {gsi} for {index!r}, where "
                f"{index.entity.__dynaorm__.name}.{other} is pinned or locked; an item holds "
                "one key per GSI: move that index with gsi= or pin the collection elsewhere",
                entity=index.entity.__dynaorm__.name,
                field=index.name,
                value=gsi,
            )
    return gsi


def _fixed(index: EntityIndex, together: Together) -> list[tuple[str, str]]:
    """Where a pin or an earlier collection already puts this member."""
    placed = together.get(index.entity.__dynaorm__.name, {}).get(index.name)
    found = [(index.gsi, "pinned")] if index.gsi is not None else []
    return found + ([(placed[0], placed[1])] if placed is not None else [])


def _lock_entry(index: EntityIndex, lock: Mapping[str, LockedIndex]) -> LockedIndex:
    return lock[f"{index.entity.__dynaorm__.name}.{index.name}"]


def _in_lock(index: EntityIndex, lock: Mapping[str, LockedIndex]) -> bool:
    locked = lock.get(f"{index.entity.__dynaorm__.name}.{index.name}")
    return locked is not None and normal_projection(locked.projection) == normal_projection(
        index.projection
    )


def _busy(
    members: Sequence[EntityIndex], lock: Mapping[str, LockedIndex], together: Together
) -> dict[str, dict[str, str]]:
    """Per member entity, the GSIs its other pinned, locked or grouped indexes hold."""
    busy: dict[str, dict[str, str]] = {}
    for entity in {index.entity for index in members}:
        info = entity.__dynaorm__
        held = busy.setdefault(info.name, {})
        for index in info.indexes.values():
            locked = lock.get(f"{info.name}.{index.name}")
            grouped = together.get(info.name, {}).get(index.name)
            for gsi in (index.gsi, locked.gsi if locked else None, grouped and grouped[0]):
                if gsi is not None:
                    held.setdefault(gsi, index.name)
    return busy


def _lowest_free(
    table: Table, projection: Projection, busy: Mapping[str, Mapping[str, str]]
) -> str:
    number = 1
    while any(
        auto_gsi_name(table.gsi_prefix, projection, number) in held for held in busy.values()
    ):
        number += 1
    return auto_gsi_name(table.gsi_prefix, projection, number)
