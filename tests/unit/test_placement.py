"""GSI placement: the per-entity rule, pins, and the schema lock (write, honour, refuse)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dynaorm import Entity, Index, Table, schema_of
from dynaorm._compiler import compile_table
from dynaorm._ddl import index_drift, lock_drift, lock_entries
from dynaorm._lock import LockedIndex, read_lock, write_lock
from dynaorm._placement import LockConflict
from dynaorm.errors import DefinitionError, SchemaLockError


def _placed(table: Table) -> dict[str, str]:
    return {
        f"{name}.{index}": placed.gsi
        for name, compiled in schema_of(table).entities.items()
        for index, placed in compiled.indexes.items()
    }


def _order(first: str, second: str) -> Table:
    """A table whose one entity declares its two indexes in the given order."""
    table = Table(f"order-{first}")
    indexes = {"by_a": Index(pk="A#{a}"), "by_b": Index(pk="B#{b}")}
    namespace: dict[str, Any] = {"__annotations__": {"id": str, "a": str, "b": str}}
    namespace |= {first: indexes[first], second: indexes[second]}
    type(Entity)("Item", (Entity,), namespace, table=table, pk="ITEM#{id}", sk="ITEM")
    return table


def test_swapping_index_lines_keeps_their_gsis() -> None:
    assert _placed(_order("by_a", "by_b")) == {"Item.by_a": "GSI1", "Item.by_b": "GSI2"}
    assert _placed(_order("by_b", "by_a")) == {"Item.by_a": "GSI1", "Item.by_b": "GSI2"}


def test_an_entity_defined_earlier_moves_nothing() -> None:
    table = Table("earlier")

    class Audit(Entity, table=table, pk="AUDIT#{id}", sk="A"):
        id: str
        by_id = Index(pk="AID#{id}", projection="KEYS_ONLY")

    class User(Entity, table=table, pk="USER#{id}", sk="U"):
        id: str
        by_id = Index(pk="UID#{id}")

    # First come, first served gave Audit GSI1 and pushed User to GSI2.
    assert _placed(table) == {"Audit.by_id": "GSIKeys1", "User.by_id": "GSI1"}


def test_a_pin_skips_only_its_own_entity_and_shares_with_others() -> None:
    table = Table("pins-share")

    class A(Entity, table=table, pk="A#{id}", sk="A"):
        id: str
        by_x = Index(pk="X#{id}", gsi="GSI1")
        by_y = Index(pk="Y#{id}")

    class B(Entity, table=table, pk="B#{id}", sk="B"):
        id: str
        by_z = Index(pk="Z#{id}")

    assert _placed(table) == {"A.by_x": "GSI1", "A.by_y": "GSI2", "B.by_z": "GSI1"}
    sources = {p.index.name: p.source for p in schema_of(table).entity("A").indexes.values()}
    assert sources == {"by_x": "pinned", "by_y": "rule"}


def test_a_foreign_pin_with_another_projection_is_refused_not_moved_around() -> None:
    table = Table("pins-clash")

    class A(Entity, table=table, pk="A#{id}", sk="A"):
        id: str
        by_x = Index(pk="X#{id}")

    class B(Entity, table=table, pk="B#{id}", sk="B"):
        id: str
        by_z = Index(pk="Z#{id}", gsi="GSI1", projection="KEYS_ONLY")

    with pytest.raises(DefinitionError) as caught:
        schema_of(table)
    assert caught.value.message == (
        "B.by_z (pinned) wants projection KEYS_ONLY on GSI1, where A.by_x (rule) projects "
        "ALL; one GSI has one projection. Pin one of them to another GSI with gsi="
    )
    assert (caught.value.entity, caught.value.field) == ("B", "by_z")


def test_gsis_are_listed_in_name_order() -> None:
    table = Table("natural")
    namespace: dict[str, Any] = {"__annotations__": {"id": str}}
    namespace |= {f"by_{n:02}": Index(pk=f"I{n}#{{id}}") for n in range(11)}
    type(Entity)("Wide", (Entity,), namespace, table=table, pk="W#{id}", sk="W")
    names = [g.name for g in schema_of(table).gsis]
    assert names == [f"GSI{n}" for n in range(1, 12)]


# -- the lock ---------------------------------------------------------------------------


def _shop(path: Path | None, *extra: str, pin: str | None = None) -> Table:
    """Product with by_sku and by_name, plus `extra` indexes; built fresh for each call."""
    table = Table("shop", lock=path)
    namespace: dict[str, Any] = {"__annotations__": {"sku": str, "name": str}}
    namespace["by_sku"] = Index(pk="SKU#{sku}", gsi=pin)
    namespace["by_name"] = Index(pk="NAME#{name}")
    namespace |= {name: Index(pk=f"{name.upper()}#{{sku}}") for name in extra}
    type(Entity)("Product", (Entity,), namespace, table=table, pk="P#{sku}", sk="P")
    return table


def test_the_lock_file_is_exact_and_keeps_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "dynaorm.lock.json"
    path.write_text(json.dumps({"dynaorm_schema_lock": 1, "tables": {"other": {}}}))
    write_lock(path, "shop", lock_entries(schema_of(_shop(None))))
    assert json.loads(path.read_text()) == {
        "dynaorm_schema_lock": 1,
        "tables": {
            "other": {},
            "shop": {
                "Product.by_name": {"gsi": "GSI1", "pk": "GSI1PK", "sk": "GSI1SK",
                                    "projection": "ALL"},
                "Product.by_sku": {"gsi": "GSI2", "pk": "GSI2PK", "sk": "GSI2SK",
                                   "projection": "ALL"},
            },
        },
    }  # fmt: skip
    assert read_lock(path)["shop"]["Product.by_sku"] == LockedIndex(
        "GSI2", "GSI2PK", "GSI2SK", "ALL"
    )


def test_a_new_index_is_placed_around_the_locked_ones(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lock(path, "shop", lock_entries(schema_of(_shop(None))))
    # by_code sorts first: by the rule alone it would take GSI1 and push the others up.
    assert _placed(_shop(None, "by_code")) == {
        "Product.by_code": "GSI1", "Product.by_name": "GSI2", "Product.by_sku": "GSI3",
    }  # fmt: skip
    locked = _shop(path, "by_code")
    assert _placed(locked) == {
        "Product.by_code": "GSI3", "Product.by_name": "GSI1", "Product.by_sku": "GSI2",
    }  # fmt: skip
    sources = {p.index.name: p.source for p in schema_of(locked).entity("Product").indexes.values()}
    assert sources == {"by_sku": "locked", "by_name": "locked", "by_code": "rule"}


def test_a_pin_that_contradicts_the_lock_names_both_placements(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lock(path, "shop", lock_entries(schema_of(_shop(None))))
    with pytest.raises(SchemaLockError) as caught:
        schema_of(_shop(path, pin="GSI7"))
    error = caught.value
    assert str(error).startswith(
        "[schema-lock] Product.by_sku: the schema lock places it on GSI2 (GSI2PK, GSI2SK, "
        "ALL) but its declaration puts it on GSI7 (GSI7PK, GSI7SK, ALL) because it is "
        f"pinned with gsi='GSI7' (lock {path})."
    )
    assert (error.entity, error.field, error.value) == ("Product", "by_sku", "GSI2")
    # A pin that agrees with the lock is no conflict.
    assert _placed(_shop(path, pin="GSI2"))["Product.by_sku"] == "GSI2"


def test_a_changed_projection_contradicts_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lock(path, "shop", lock_entries(schema_of(_shop(None))))
    table = Table("shop", lock=path)

    class Product(Entity, table=table, pk="P#{sku}", sk="P"):
        sku: str
        name: str
        by_sku = Index(pk="SKU#{sku}", projection="KEYS_ONLY")
        by_name = Index(pk="NAME#{name}")

    with pytest.raises(SchemaLockError, match=r"it now projects KEYS_ONLY"):
        schema_of(table)
    conflicts: list[LockConflict] = []
    schema = compile_table(table, conflicts=conflicts)  # collected instead of raised
    assert [c.placement.name for c in conflicts] == ["Product.by_sku"]
    assert schema.entity("Product").indexes["by_sku"].gsi == "GSIKeys1"


def test_a_hand_edited_lock_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    entries = lock_entries(schema_of(_shop(None)))
    entries["Product.by_name"] = {
        "gsi": "GSI2",
        "pk": "GSI2PK",
        "sk": "GSI2SK",
        "projection": "ALL",
    }
    write_lock(path, "shop", entries)
    with pytest.raises(SchemaLockError, match=r"Product\.by_\w+ is on GSI2 already"):
        schema_of(_shop(path))
    entries = lock_entries(schema_of(_shop(None)))
    entries["Product.by_name"]["pk"] = "OtherPK"
    write_lock(path, "shop", entries)
    with pytest.raises(SchemaLockError, match="key attributes are GSI1PK and GSI1SK"):
        schema_of(_shop(path))


def test_a_declared_lock_must_exist_and_cover_the_table(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(SchemaLockError, match="does not exist; write it with `dynaorm schema"):
        schema_of(_shop(missing))
    other = tmp_path / "other.json"
    write_lock(other, "blog", {})
    with pytest.raises(SchemaLockError, match="has no entry for table 'shop'"):
        schema_of(_shop(other))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "cannot be read"),
        ('{"tables": {}}', "is not a version 1 dynaorm schema lock"),
        ('{"dynaorm_schema_lock": 1, "tables": []}', "'tables' must map names to objects"),
        ('{"dynaorm_schema_lock": 1, "tables": {"shop": {"P.x": {"gsi": "G"}}}}',
         "must be an object with exactly"),
        ('{"dynaorm_schema_lock": 1, "tables": {"shop": {"P.x": '
         '{"gsi": "G", "pk": "GPK", "sk": "GSK", "projection": "SOME"}}}}', "has projection"),
        ('{"dynaorm_schema_lock": 1, "tables": {"shop": {"P.x": '
         '{"gsi": "", "pk": "GPK", "sk": "GSK", "projection": "ALL"}}}}', "non-empty strings"),
    ],
)  # fmt: skip
def test_a_malformed_lock_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "lock.json"
    path.write_text(content)
    with pytest.raises(SchemaLockError, match=message):
        read_lock(path)
    with pytest.raises(SchemaLockError, match=message):
        write_lock(path, "shop", {})  # never overwrites a file that is not a lock
    assert path.read_text() == content


def test_include_projections_are_compared_as_sets(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    table = Table("inc")

    class Doc(Entity, table=table, pk="D#{id}", sk="D"):
        id: str
        a: str = ""
        b: str = ""
        by_id = Index(pk="I#{id}", projection=("b", "a"))

    write_lock(path, "inc", lock_entries(schema_of(table)))
    assert read_lock(path)["inc"]["Doc.by_id"].projection == ("b", "a")
    relocked = Table("inc", lock=path)

    class Doc2(Entity, table=relocked, pk="D#{id}", sk="D", type_name="Doc"):
        id: str
        a: str = ""
        b: str = ""
        by_id = Index(pk="I#{id}", projection=("a", "b"))

    assert _placed(relocked) == _placed(table)


def test_lock_drift_names_new_moved_and_removed_indexes() -> None:
    schema = schema_of(_shop(None, "by_code"))
    lock = {
        "Product.by_name": LockedIndex("GSI2", "GSI2PK", "GSI2SK", "ALL"),
        "Product.by_sku": LockedIndex("GSI3", "GSI3PK", "GSI3SK", "ALL"),
        "Product.by_gone": LockedIndex("GSI4", "GSI4PK", "GSI4SK", "KEYS_ONLY"),
    }
    assert lock_drift(schema, lock) == [
        "+ Product.by_code -> GSI1 (GSI1PK, GSI1SK, ALL): new, not in the lock",
        "- Product.by_gone is in the lock on GSI4 but no longer declared",
    ]
    lock["Product.by_sku"] = LockedIndex("GSI3", "GSI3PK", "GSI3SK", ("a",))
    assert lock_drift(schema, lock)[1] == (
        "! Product.by_sku: the lock places it on GSI3 (GSI3PK, GSI3SK, INCLUDE ['a']), the "
        "schema on GSI3 (GSI3PK, GSI3SK, ALL) (by the placement rule)"
    )


def test_index_drift_reads_each_live_gsi_as_its_indexes_need_it() -> None:
    schema = schema_of(_shop(None, "by_code"))

    def gsi(name: str, pk: str, projection: str) -> dict[str, Any]:
        keys = [{"AttributeName": pk, "KeyType": "HASH"},
                {"AttributeName": f"{name}SK", "KeyType": "RANGE"}]  # fmt: skip
        return {"IndexName": name, "KeySchema": keys, "Projection": {"ProjectionType": projection}}

    live = {
        "TableName": "shop",
        "GlobalSecondaryIndexes": [gsi("GSI1", "GSI1PK", "ALL"), gsi("GSI2", "Other", "ALL")],
    }
    assert index_drift(schema, live) == [
        "! Product.by_name -> GSI2 (GSI2PK, GSI2SK, ALL): shop's GSI2 is keyed on (Other, GSI2SK)",
        "+ Product.by_sku -> GSI3 (GSI3PK, GSI3SK, ALL): shop has no GSI3; migrate creates it "
        "and backfills the index's items",
    ]
