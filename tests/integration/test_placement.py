"""Index placement against a real table: the lock keeps written items findable, and
`dynaorm diff` names every index that moved against the lock or the live table."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynaorm import Entity, Index, Session, Table
from dynaorm.cli import main

# The table as created, and the same table after `by_code` (sorting first) was added.
catalog_v1 = Table("catalog")


class ProductV1(Entity, table=catalog_v1, pk="P#{sku}", sk="P", type_name="Product"):
    sku: str
    name: str
    by_sku = Index(pk="SKU#{sku}")
    by_name = Index(pk="NAME#{name}")


catalog_v2 = Table("catalog")


class ProductV2(Entity, table=catalog_v2, pk="P#{sku}", sk="P", type_name="Product"):
    sku: str
    name: str
    by_code = Index(pk="CODE#{sku}")
    by_name = Index(pk="NAME#{name}")
    by_sku = Index(pk="SKU#{sku}")


def _locked_v2(lock: Path) -> tuple[Table, type[Entity]]:
    table = Table("catalog", lock=lock)

    class Product(Entity, table=table, pk="P#{sku}", sk="P"):
        sku: str
        name: str
        by_sku = Index(pk="SKU#{sku}")
        by_name = Index(pk="NAME#{name}")
        by_code = Index(pk="CODE#{sku}")

    return table, Product


@pytest.fixture
def catalog(session: Session) -> Iterator[str]:
    """The v1 table with one product; yields its physical name."""
    session.create_table(catalog_v1)
    session.put(ProductV1(sku="s1", name="lamp"))
    yield session.table_name(catalog_v1)
    session.delete_table(catalog_v1)


@pytest.fixture
def command(
    session: Session,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[list[str]]:
    """Connection options pointing `dynaorm` at the test's backend; models as a module."""
    module = types.ModuleType("dynaorm_placement_models")
    module.catalog_v1 = catalog_v1  # type: ignore[attr-defined]
    module.catalog_v2 = catalog_v2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    transport = session.transport
    prefix = ["--table-prefix", transport.table_prefix]
    endpoint = transport.endpoint_url
    if endpoint is None or endpoint.endswith(".amazonaws.com"):  # the embedded backend
        yield ["--in-memory", *prefix]
        return
    backend = request.getfixturevalue("dynamodb_backend")
    for name, value in backend.program_environment().items():
        monkeypatch.setenv(name, value)
    yield ["--endpoint-url", endpoint, "--region", transport.region, *prefix]


def test_diff_names_each_moved_index_and_the_lock_keeps_items_findable(
    session: Session,
    catalog: str,
    command: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = str(tmp_path / "dynaorm.lock.json")
    assert main(["schema", "dynaorm_placement_models:catalog_v1", "--lock", lock]) == 0
    assert main(["diff", "dynaorm_placement_models:catalog_v1", "--lock", lock, *command]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"table {catalog} matches the schema"

    # Without the lock, adding by_code moves by_name and by_sku: their items were written
    # under GSI1/GSI2 attributes, and a query would silently miss them.
    assert main(["diff", "dynaorm_placement_models:catalog_v2", "--lock", lock, *command]) == 2
    assert capsys.readouterr().out.splitlines() == [
        "+ GSI GSI3 (GSI3PK, GSI3SK) is missing: migrate creates it",
        "+ Product.by_code -> GSI1 (GSI1PK, GSI1SK, ALL): new, not in the lock",
        "! Product.by_name: the lock places it on GSI1 (GSI1PK, GSI1SK, ALL), the schema on "
        "GSI2 (GSI2PK, GSI2SK, ALL) (by the placement rule)",
        "! Product.by_sku: the lock places it on GSI2 (GSI2PK, GSI2SK, ALL), the schema on "
        "GSI3 (GSI3PK, GSI3SK, ALL) (by the placement rule)",
        f"+ Product.by_sku -> GSI3 (GSI3PK, GSI3SK, ALL): {catalog} has no GSI3; migrate "
        "creates it and backfills the index's items",
    ]
    assert session.query(ProductV2.by_name, name="lamp").all() == []  # the silent miss

    # With the lock declared, only the new index is placed (on a new GSI).
    table, product = _locked_v2(Path(lock))
    sys.modules["dynaorm_placement_models"].catalog_v3 = table  # type: ignore[attr-defined]
    assert main(["diff", "dynaorm_placement_models:catalog_v3", *command]) == 2
    assert capsys.readouterr().out.splitlines() == [
        "+ GSI GSI3 (GSI3PK, GSI3SK) is missing: migrate creates it",
        "+ Product.by_code -> GSI3 (GSI3PK, GSI3SK, ALL): new, not in the lock",
        f"+ Product.by_code -> GSI3 (GSI3PK, GSI3SK, ALL): {catalog} has no GSI3; migrate "
        "creates it and backfills the index's items",
    ]
    found = session.query(product.by_name, name="lamp").all()  # type: ignore[attr-defined]
    assert [(p.sku, p.name) for p in found] == [("s1", "lamp")]


def test_diff_names_an_index_whose_live_gsi_projects_otherwise(
    session: Session, catalog: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    table = Table("catalog")

    class Product(Entity, table=table, pk="P#{sku}", sk="P"):
        sku: str
        name: str
        by_sku = Index(pk="SKU#{sku}", gsi="GSI2")
        by_name = Index(pk="NAME#{name}", gsi="GSI1", projection="KEYS_ONLY")

    sys.modules["dynaorm_placement_models"].catalog_keys = table  # type: ignore[attr-defined]
    assert main(["diff", "dynaorm_placement_models:catalog_keys", *command]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        f"! Product.by_name -> GSI1 (GSI1PK, GSI1SK, KEYS_ONLY): {catalog}'s GSI1 projects "
        "{'ProjectionType': 'ALL'}"
    )
    assert lines[0].startswith("! GSI GSI1 projects {'ProjectionType': 'ALL'}")
