"""Queries on KEYS_ONLY and INCLUDE indexes: type filter, keys, projected rows, entities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dynaorm import Entity, Index, Session, Table
from dynaorm._compiler import schema_of
from dynaorm.errors import ExpressionError

from .conftest import Recorder

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 1, tzinfo=UTC)

catalog = Table("catalog")


class Product(Entity, table=catalog, pk="PRODUCT#{sku}", sk="PRODUCT"):
    sku: str
    name: str
    price: int
    category: str
    created: dt.datetime
    note: str | None = None

    by_category = Index(pk="CATEGORY#{category}", sk="{created}#{sku}", projection="KEYS_ONLY")
    by_name = Index(pk="NAME#{name}", projection=("price",))
    by_price = Index(pk="PRICE#{price}", projection=("name", "category", "created", "note"))


class Review(Entity, table=catalog, pk="PRODUCT#{sku}", sk="REVIEW#{review_id}"):
    sku: str
    review_id: str
    category: str
    created: dt.datetime

    # Shares Product.by_category's GSI and partitions: its items sit beside Product's.
    by_category = Index(
        pk="CATEGORY#{category}", sk="{created}#{review_id}", projection="KEYS_ONLY"
    )


@pytest.fixture
def products(session: Session) -> Iterator[list[Product]]:
    session.create_table(catalog)
    items = [
        Product(
            sku=f"p{n}",
            name="hammer" if n < 2 else f"tool {n}",
            price=10 if n % 2 else 20,
            category="tools",
            created=T0 + dt.timedelta(hours=n),
            note="sale" if n == 3 else None,
        )
        for n in range(4)
    ]
    reviews = [
        Review(sku="p0", review_id=f"r{n}", category="tools", created=T0 + dt.timedelta(hours=n))
        for n in range(3)
    ]
    session.batch_write(put=[*items, *reviews])
    yield items
    session.delete_table(catalog)


def test_keys_only_index_filters_on_the_type_and_returns_keys(
    session: Session, products: list[Product]
) -> None:
    query = session.query(Product.by_category, category="tools")
    assert query.count() == 4  # the type attribute is projected, so the filter sees it
    assert query.keys() == [p.get_key() for p in products]
    assert query.reverse().limit(2).keys() == [p.get_key() for p in products[:1:-1]]
    keys = query.keys()
    assert keys[0].slots == {"sku": "p0"}
    assert sorted(session.batch_get(keys), key=lambda p: p.sku) == products


def test_keys_only_projection_decodes_key_fields_from_the_keys(
    session: Session, products: list[Product]
) -> None:
    rows = session.query(Product.by_category, category="tools").project("sku", "created").all()
    # The same values a projection of the stored attributes reads on the base table.
    stored = [session.query(Product, sku=p.sku).project("sku", "created").first() for p in products]
    assert rows == stored
    assert [row["sku"] for row in rows] == ["p0", "p1", "p2", "p3"]


def test_keys_only_index_refuses_entities_and_unprojected_paths_before_sending(
    session: Session, products: list[Product], recorder: Recorder
) -> None:
    recorder.clear()
    query = session.query(Product.by_category, category="tools")
    with pytest.raises(ExpressionError, match=r"Product\.by_category.*KEYS_ONLY.*\.keys\(\)"):
        query.all()
    with pytest.raises(ExpressionError, match=r"Product\.by_category"):
        query.page(2)
    with pytest.raises(ExpressionError, match=r"'name'.*not projected"):
        query.project("name").all()
    assert recorder.calls == []


def test_include_index_returns_projected_rows(
    session: Session, products: list[Product], recorder: Recorder
) -> None:
    query = session.query(Product.by_name, name="hammer")
    with pytest.raises(ExpressionError, match=r"Product\.by_name.*\['category', 'created'"):
        query.first()
    rows = query.project("price", "sku", "name").all()
    assert sorted(rows, key=lambda row: row["sku"]) == [
        {"price": 20, "sku": "p0", "name": "hammer"},
        {"price": 10, "sku": "p1", "name": "hammer"},
    ]
    assert query.count() == 2


def test_include_index_with_every_other_field_returns_entities(
    session: Session, products: list[Product]
) -> None:
    cheap = session.query(Product.by_price, price=10).all()
    assert sorted(cheap, key=lambda p: p.sku) == [products[1], products[3]]
    assert products[3].note == "sale"
    page = session.query(Product.by_price, price=20).page(1)
    assert page.items in ([products[0]], [products[2]]) and page.cursor is not None


def test_every_index_projects_the_type_attribute(session: Session, products: list[Product]) -> None:
    described = session.transport.call("DescribeTable", {"TableName": session.table_name(catalog)})[
        "Table"
    ]
    projections = {
        g["IndexName"]: (
            g["Projection"]["ProjectionType"],
            sorted(g["Projection"].get("NonKeyAttributes", [])),
        )
        for g in described["GlobalSecondaryIndexes"]
    }
    compiled = schema_of(catalog).entity("Product").indexes
    assert projections == {
        compiled["by_category"].gsi: ("INCLUDE", ["_type"]),
        compiled["by_name"].gsi: ("INCLUDE", ["_type", "price"]),
        compiled["by_price"].gsi: ("INCLUDE", ["_type", "category", "created", "name", "note"]),
    }


def test_filters_on_paths_the_index_does_not_hold_are_refused_before_sending(
    session: Session, products: list[Product], recorder: Recorder
) -> None:
    # DynamoDB filters a GSI query on the index's items: an attribute it does not
    # project reads as absent, so the filter would silently drop every item.
    recorder.clear()
    by_category = session.query(Product.by_category, category="tools")
    for condition in (Product.price > 5, Product.sku == "p1", ~Product.name.exists()):
        with pytest.raises(ExpressionError, match=r"Product\.by_category.*not projected"):
            by_category.where(condition).keys()
    assert recorder.calls == []
    expensive = session.query(Product.by_name, name="hammer").where(Product.price > 15)
    assert expensive.keys() == [products[0].get_key()]
    assert expensive.project("sku").all() == [{"sku": "p0"}]
