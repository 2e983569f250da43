"""How fields are stored and read back: aliases at every depth, empty sets, computed fields."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, Field, computed_field

from dynaorm import Entity, Table, schema_of
from dynaorm._items import entity_from_item, entity_to_item
from dynaorm.errors import DefinitionError, ItemDecodingError, ItemEncodingError

fields = Table("fields")


class Node(BaseModel):
    label: str = Field(serialization_alias="l")
    child: Node | None = None


class Pair(BaseModel):
    left: str = Field(serialization_alias="L")
    picked: str = Field("", validation_alias=AliasChoices("p", "pick"))


class Other(BaseModel):
    right: str = Field(serialization_alias="R")


class Tree(Entity, table=fields, pk="TREE#{tree_id}", sk="TREE"):
    tree_id: str
    root: Node
    pairs: list[Pair] = []
    by_name: dict[str, Pair] = {}
    maybe: Pair | None = None
    mixed: tuple[int, Pair] | None = None
    either: Pair | int = 0
    tags: set[str]
    labels: set[str] | None = None

    @computed_field(alias="nodeCount")  # type: ignore[prop-decorator]
    @property
    def depth(self) -> int:
        return 1 if self.root.child is None else 2


def round_trip(entity: Entity) -> tuple[dict[str, Any], Entity | None]:
    item = entity_to_item(entity)
    return item, entity_from_item(schema_of(fields), item)


def test_serialization_aliases_read_back_at_every_depth() -> None:
    pair = Pair(left="a", pick="b")
    tree = Tree(
        tree_id="t",
        root=Node(label="1", child=Node(label="2", child=Node(label="3"))),
        pairs=[pair],
        by_name={"x": pair},
        maybe=pair,
        mixed=(1, pair),
        either=pair,
        tags={"t"},
    )
    item, loaded = round_trip(tree)
    assert item["root"]["M"]["child"]["M"]["child"]["M"]["l"] == {"S": "3"}
    assert item["pairs"]["L"][0]["M"] == {"L": {"S": "a"}, "picked": {"S": "b"}}
    assert loaded == tree


def test_computed_fields_are_not_stored() -> None:
    item, loaded = round_trip(Tree(tree_id="t", root=Node(label="1"), tags={"a"}))
    assert "depth" not in item
    assert "nodeCount" not in item
    assert loaded is not None
    assert loaded.depth == 1  # type: ignore[attr-defined]


def test_required_empty_set_is_omitted_and_reads_back_empty() -> None:
    tree = Tree(tree_id="t", root=Node(label="1"), tags=set())
    item, loaded = round_trip(tree)
    assert "tags" not in item
    assert loaded == tree


def test_empty_set_reading_back_as_the_default_is_refused() -> None:
    with pytest.raises(ItemEncodingError, match=r"Tree\.labels: DynamoDB has no empty set"):
        entity_to_item(Tree(tree_id="t", root=Node(label="1"), tags={"a"}, labels=set()))


class Ambiguous(Entity, table=fields, pk="AMB#{amb_id}", sk="AMB"):
    amb_id: str
    value: Pair | Other


def test_a_union_of_renamed_models_is_refused_before_sending() -> None:
    with pytest.raises(DefinitionError, match="Ambiguous: the union") as caught:
        entity_to_item(Ambiguous(amb_id="a", value=Other(right="r")))
    assert caught.value.entity == "Ambiguous"


def test_decoding_errors_name_entity_key_field_and_value() -> None:
    item = entity_to_item(Tree(tree_id="t", root=Node(label="1"), tags={"a"}))
    item["pairs"] = {"L": [{"M": {"L": {"N": "5"}}}]}
    with pytest.raises(ItemDecodingError) as caught:
        entity_from_item(schema_of(fields), item)
    error = caught.value
    assert (error.entity, error.key, error.field, error.value) == (
        "Tree",
        ("TREE#t", "TREE"),
        "pairs.0.left",
        5,
    )
    assert error.code == "item-decoding"
