"""GSI placement is a function of each entity's own declaration, never of definition order.

Entities are built with `types.new_class` from generated specs, in a shuffled order, with
their Index lines in a shuffled order and with unrelated entities mixed in; the placement
of the specified entities must come out the same every time. With a schema lock, adding
indexes to the entities must not move any locked one either.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from hypothesis import given, reject, settings
from hypothesis import strategies as st

from dynaorm import Entity, Index, Table, schema_of
from dynaorm._compiler import compile_table
from dynaorm._lock import LockedIndex
from dynaorm._placement import auto_gsi_name
from dynaorm._schema import Projection
from dynaorm.errors import DefinitionError

_tables = count()
INDEX_NAMES = ("by_a", "by_b", "by_c", "by_d", "lookup", "zeta")
PROJECTIONS: tuple[Projection, ...] = ("ALL", "ALL", "KEYS_ONLY", ("x",), ("x", "y"))


@dataclass(frozen=True)
class IndexSpec:
    name: str
    projection: Projection
    pinned: bool


@dataclass(frozen=True)
class EntitySpec:
    name: str
    indexes: tuple[IndexSpec, ...]


def _index_specs(pins: bool) -> st.SearchStrategy[tuple[IndexSpec, ...]]:
    def build(names: list[str], projections: list[Projection], pinned: list[bool]) -> Any:
        return tuple(
            IndexSpec(name, projection, pin and pins)
            for name, projection, pin in zip(names, projections, pinned, strict=True)
        )

    names = st.lists(st.sampled_from(INDEX_NAMES), unique=True, max_size=4)
    return names.flatmap(
        lambda chosen: st.builds(
            build,
            st.just(chosen),
            st.lists(st.sampled_from(PROJECTIONS), min_size=len(chosen), max_size=len(chosen)),
            st.lists(st.booleans(), min_size=len(chosen), max_size=len(chosen)),
        )
    )


def _entities(prefix: str, *, pins: bool) -> st.SearchStrategy[list[EntitySpec]]:
    return st.lists(st.text("ABCDEFGH", min_size=1, max_size=3), unique=True, max_size=4).flatmap(
        lambda names: st.tuples(*(_index_specs(pins) for _ in names)).map(
            lambda indexes: [
                EntitySpec(f"{prefix}{name}", spec)
                for name, spec in zip(names, indexes, strict=True)
            ]
        )
    )


def _define(table: Table, spec: EntitySpec, index_order: Sequence[int]) -> None:
    def body(namespace: dict[str, Any]) -> None:
        namespace["__annotations__"] = {"id": str, "x": str, "y": str}
        namespace["x"] = "x"
        namespace["y"] = "y"
        for position in index_order:
            index = spec.indexes[position]
            # Pins of one index name and projection meet on one GSI, as pins may.
            gsi = auto_gsi_name(f"Pin{index.name}", index.projection, 0) if index.pinned else None
            namespace[index.name] = Index(
                pk=f"{spec.name}#{index.name}#{{x}}", gsi=gsi, projection=index.projection
            )

    options = {"table": table, "pk": f"{spec.name}#{{id}}", "sk": "ITEM"}
    types.new_class(spec.name, (Entity,), options, body)


def _placement(
    specs: Sequence[EntitySpec],
    order: Sequence[int],
    index_orders: Sequence[Sequence[int]],
    lock: Mapping[str, LockedIndex] | None = None,
) -> dict[tuple[str, str], tuple[str, str, str]]:
    table = Table(f"placement{next(_tables)}")
    for position in order:
        _define(table, specs[position], index_orders[position])
    try:
        schema = schema_of(table) if lock is None else compile_table(table, lock=lock)
    except DefinitionError as e:
        if "GSIs; DynamoDB allows" in e.message:
            reject()  # more GSIs than a table may have: not a placement question
        raise
    return {
        (name, index): (placed.gsi, placed.pk_attribute, placed.sk_attribute)
        for name, compiled in schema.entities.items()
        for index, placed in compiled.indexes.items()
    }


@st.composite
def _shuffles(draw: st.DrawFn, specs: Sequence[EntitySpec]) -> tuple[list[int], list[list[int]]]:
    order = draw(st.permutations(range(len(specs))))
    index_orders = [draw(st.permutations(range(len(s.indexes)))) for s in specs]
    return list(order), [list(o) for o in index_orders]


# Each example defines a few pydantic classes (milliseconds each): fewer examples than
# the profile's default keep the test under a few seconds.
@settings(max_examples=80)
@given(st.data(), _entities("E", pins=True), _entities("U", pins=True))
def test_placement_ignores_definition_order_and_unrelated_entities(
    data: st.DataObject, specs: list[EntitySpec], unrelated: list[EntitySpec]
) -> None:
    declared = list(range(len(specs)))
    baseline = _placement(specs, declared, [list(range(len(s.indexes))) for s in specs])
    everything = specs + unrelated
    order, index_orders = data.draw(_shuffles(everything))
    shuffled = _placement(everything, order, index_orders)
    mine = {key: value for key, value in shuffled.items() if key[0].startswith("E")}
    assert mine == baseline


@settings(max_examples=40)
@given(_entities("E", pins=True), _entities("U", pins=True))
def test_renaming_an_unrelated_entity_moves_nothing(
    specs: list[EntitySpec], unrelated: list[EntitySpec]
) -> None:
    identity = [list(range(len(s.indexes))) for s in specs + unrelated]
    before = _placement(specs + unrelated, range(len(specs + unrelated)), identity)
    renamed = [EntitySpec(f"{u.name}Renamed", u.indexes) for u in unrelated]
    after = _placement(specs + renamed, range(len(specs + renamed)), identity)
    assert {k: v for k, v in after.items() if k[0].startswith("E")} == {
        k: v for k, v in before.items() if k[0].startswith("E")
    }


# New names sort before, between and after the existing ones: by the rule alone the
# earlier-sorting ones would push existing indexes of their entity up.
_NEW_INDEX = st.builds(
    IndexSpec,
    st.sampled_from(("a_new", "by_0", "by_bb", "m_new", "zz_new")),
    st.sampled_from(("ALL", "ALL", "KEYS_ONLY")),
    st.just(False),
)


def _with_index(spec: EntitySpec, extra: IndexSpec) -> EntitySpec:
    if any(index.name == extra.name for index in spec.indexes):
        return spec
    return EntitySpec(spec.name, (*spec.indexes, extra))


@settings(max_examples=40)
@given(
    st.data(),
    _entities("E", pins=True).filter(bool),
    st.lists(st.tuples(st.integers(0, 3), _NEW_INDEX), min_size=1, max_size=3),
)
def test_a_lock_keeps_every_locked_index_when_indexes_are_added(
    data: st.DataObject, specs: list[EntitySpec], additions: list[tuple[int, IndexSpec]]
) -> None:
    identity = [list(range(len(s.indexes))) for s in specs]
    before = _placement(specs, range(len(specs)), identity)
    lock = {
        f"{entity}.{index}": LockedIndex(gsi, pk, sk, _projection(specs, entity, index))
        for (entity, index), (gsi, pk, sk) in before.items()
    }
    grown = list(specs)
    for position, index in additions:
        target = position % len(grown)
        grown[target] = _with_index(grown[target], index)
    order, index_orders = data.draw(_shuffles(grown))
    after = _placement(grown, order, index_orders, lock=lock)
    assert {key: after[key] for key in before} == before


def _projection(specs: Sequence[EntitySpec], entity: str, index: str) -> Projection:
    spec = next(s for s in specs if s.name == entity)
    return next(i.projection for i in spec.indexes if i.name == index)
