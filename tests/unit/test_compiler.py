"""Key-schema compiler: GSI placement, collisions, neighbours, query plans, DDL."""

from __future__ import annotations

import datetime as dt
import enum
import sys
from pathlib import Path

import pytest

from dynaorm import Entity, Index, Table, schema_of
from dynaorm._bounds import KeyCondition
from dynaorm._ddl import (
    access_patterns,
    cloudformation_resource,
    create_table_request,
    describe_drift,
    time_to_live_request,
)
from dynaorm.errors import DefinitionError, KeyCollisionError, KeyEncodingError

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from blog_models import Post, User, app

UTC = dt.timezone.utc


def test_blog_create_table_parameters_are_exact() -> None:
    assert create_table_request(schema_of(app), "blog") == {
        "TableName": "blog",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
        ],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "GSI2",
                "KeySchema": [
                    {"AttributeName": "GSI2PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI2SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    }
    assert time_to_live_request(schema_of(app), "blog") == {
        "TableName": "blog",
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires_at"},
    }


def test_blog_gsis_are_overloaded() -> None:
    schema = schema_of(app)
    placed = {
        (entity, name): index.gsi
        for entity, compiled in schema.entities.items()
        for name, index in compiled.indexes.items()
    }
    # User.by_email and Post.by_post share GSI1: an item holds one GSI1PK, but two
    # entities' indexes may overload one GSI.
    assert placed == {
        ("User", "by_email"): "GSI1",
        ("Post", "by_post"): "GSI1",
        ("Post", "by_topic"): "GSI2",
    }


def test_derived_key_attributes_and_sparse_index() -> None:
    schema = schema_of(app)
    at = dt.datetime(2024, 5, 1, tzinfo=UTC)
    post = Post(user_id="u1", post_id="p1", title="t", created_at=at)
    assert schema.key_attributes(post) == {
        "PK": "USER#u1",
        "SK": "POST#2024-05-01T00:00:00.000000Z#p1",
        "GSI1PK": "POST#p1",
        "GSI1SK": "Post",
    }
    post.topic = "aws"
    assert schema.key_attributes(post)["GSI2PK"] == "TOPIC#aws"
    assert schema.key_attributes(post)["GSI2SK"] == "2024-05-01T00:00:00.000000Z"


def test_cloudformation_resource_enables_ttl() -> None:
    resource = cloudformation_resource(schema_of(app), "blog-prod")
    assert resource["Type"] == "AWS::DynamoDB::Table"
    assert resource["Properties"]["TableName"] == "blog-prod"
    assert resource["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }


def test_provisioned_billing() -> None:
    table = Table("prov", billing_mode="PROVISIONED", read_capacity=5, write_capacity=2)

    class Thing(Entity, table=table, pk="T#{a}", sk="X"):
        a: str
        b: str | None = None
        by_b = Index(pk="B#{b}")

    request = create_table_request(schema_of(table), "prov")
    assert request["BillingMode"] == "PROVISIONED"
    assert request["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2}
    assert request["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] == {
        "ReadCapacityUnits": 5,
        "WriteCapacityUnits": 2,
    }
    with pytest.raises(DefinitionError, match="read_capacity"):
        Table("prov2", billing_mode="PROVISIONED")


def test_colliding_entities_are_refused_naming_both() -> None:
    table = Table("collide")

    class Profile(Entity, table=table, pk="USER#{user_id}", sk="PROFILE"):
        user_id: str

    class Setting(Entity, table=table, pk="USER#{owner}", sk="{name}"):
        owner: str
        name: str

    with pytest.raises(KeyCollisionError) as info:
        schema_of(table)
    error = info.value
    assert error.entities == ("Profile", "Setting")
    assert error.example == ("USER#x", "PROFILE")
    assert "Profile" in str(error) and "Setting" in str(error)


@pytest.mark.parametrize(
    ("first_sk", "second_sk", "collides"),
    [
        ("PROFILE", "POST#{a}", False),
        ("ORDER#{n}", "ORDER#LATEST", False),  # an int slot can never be "LATEST"
        ("ORDER#{s}", "ORDER#LATEST", True),  # a str slot can
        ("AT#{when}", "AT#{n}", False),  # datetime and int encodings are disjoint
        ("AT#{s}", "AT#{n}", True),
        ("A#{s}", "A#{s}#B", False),  # different segment counts never meet
        ("C#{color}", "C#red", True),  # an enum value equal to the literal
        ("C#{color}", "C#purple", False),
    ],
)
def test_collision_matrix(first_sk: str, second_sk: str, collides: bool) -> None:
    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    table = Table("matrix")

    class First(Entity, table=table, pk="P#{p}", sk=first_sk):
        p: str
        s: str = "x"
        n: int = 0
        a: str = "a"
        when: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=UTC)
        color: Color = Color.RED

    class Second(Entity, table=table, pk="P#{p}", sk=second_sk):
        p: str
        s: str = "x"
        n: int = 0
        a: str = "a"
        color: Color = Color.RED

    if collides:
        with pytest.raises(KeyCollisionError):
            schema_of(table)
    else:
        schema_of(table)


def test_duplicate_type_names_are_refused() -> None:
    table = Table("dupes")

    class A(Entity, table=table, pk="A#{a}", sk="X", type_name="Thing"):
        a: str

    class B(Entity, table=table, pk="B#{a}", sk="X", type_name="Thing"):
        a: str

    with pytest.raises(DefinitionError, match="both use the type name 'Thing'"):
        schema_of(table)


def test_pins_and_projection_conflicts() -> None:
    table = Table("pins")

    class A(Entity, table=table, pk="A#{a}", sk="X"):
        a: str
        b: str = "b"
        c: str = "c"
        by_b = Index(pk="B#{b}", gsi="GSI7")
        by_c = Index(pk="C#{c}", gsi="GSI7")

    with pytest.raises(DefinitionError, match="pinned to GSI7"):
        schema_of(table)

    table2 = Table("projections")

    class C(Entity, table=table2, pk="C#{a}", sk="X"):
        a: str
        by_a = Index(pk="A#{a}", gsi="GSI1", projection="KEYS_ONLY")

    class D(Entity, table=table2, pk="D#{a}", sk="X"):
        a: str
        by_a = Index(pk="A#{a}", gsi="GSI1")

    with pytest.raises(DefinitionError, match="one GSI has one projection"):
        schema_of(table2)


def test_projections_keep_separate_gsis() -> None:
    table = Table("keysonly")

    class A(Entity, table=table, pk="A#{a}", sk="X"):
        a: str
        b: str = "b"
        by_b = Index(pk="B#{b}", projection="KEYS_ONLY")

    class C(Entity, table=table, pk="C#{a}", sk="X"):
        a: str
        by_a = Index(pk="A#{a}", projection=("a",))

    gsis = schema_of(table).gsis
    # Each projection has its own series of GSIs; an INCLUDE series is named by a digest
    # of its attribute set, so only indexes projecting the same attributes meet.
    assert [(g.name, g.projection) for g in gsis] == [
        ("GSIIncca978112_1", ("a",)),
        ("GSIKeys1", "KEYS_ONLY"),
    ]
    request = create_table_request(schema_of(table), "keysonly")
    # Every GSI projects the type attribute: KEYS_ONLY is created as INCLUDE of it alone.
    assert [g["Projection"] for g in request["GlobalSecondaryIndexes"]] == [
        {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "_type"]},
        {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["_type"]},
    ]


def test_more_than_twenty_gsis_are_refused() -> None:
    table = Table("many")
    namespace: dict[str, object] = {"__annotations__": {"a": str}}
    for n in range(21):
        namespace[f"i{n}"] = Index(pk=f"I{n}#{{a}}")
    type(Entity)("Many", (Entity,), namespace, table=table, pk="M#{a}", sk="X")
    with pytest.raises(DefinitionError, match="needs 21 GSIs"):
        schema_of(table)


def test_query_plans() -> None:
    schema = schema_of(app)
    plan = schema.plan(Post, {"user_id": "u1"})
    assert (plan.index_name, plan.pk_attribute, plan.pk_value) == (None, "PK", "USER#u1")
    assert plan.sk_condition == KeyCondition("begins_with", ("POST#",))
    assert plan.type_filter is None  # User's "PROFILE" can never start with "POST#"

    plan = schema.plan(
        Post,
        {"user_id": "u1"},
        op="between",
        field="created_at",
        operand=(dt.datetime(2024, 5, 1, tzinfo=UTC), dt.datetime(2024, 5, 31, tzinfo=UTC)),
    )
    assert plan.sk_condition == KeyCondition(
        "between",
        ("POST#2024-05-01T00:00:00.000000Z#", "POST#2024-05-31T00:00:00.000000Z$"),
    )

    plan = schema.plan(User.by_email, {"email": "a@b.c"})
    assert (plan.index_name, plan.pk_value) == ("GSI1", "EMAIL#a@b.c")
    assert plan.sk_condition == KeyCondition("=", ("User",))

    plan = schema.plan(Post.by_topic, {"topic": "aws"})
    assert (plan.index_name, plan.pk_attribute, plan.sk_condition) == ("GSI2", "GSI2PK", None)

    with pytest.raises(KeyEncodingError, match="missing \\['user_id'\\]"):
        schema.plan(Post, {})
    with pytest.raises(KeyEncodingError, match="title"):
        schema.plan(Post, {"user_id": "u1", "title": "x"})


def test_neighbouring_entities_get_a_type_filter() -> None:
    table = Table("neighbours")

    class Post(Entity, table=table, pk="USER#{u}", sk="POST#{at}#{post_id}"):
        u: str
        at: dt.datetime
        post_id: str

    class Draft(Entity, table=table, pk="USER#{u}", sk="POST#DRAFT#{n}"):
        u: str
        n: int

    schema = schema_of(table)
    assert schema.plan(Post, {"u": "x"}).type_filter == "Post"
    # Draft's prefix "POST#DRAFT#" cannot be produced by a datetime slot.
    assert schema.plan(Draft, {"u": "x"}).type_filter is None


def test_drift_report() -> None:
    schema = schema_of(app)
    live = create_table_request(schema, "blog")
    assert describe_drift(schema, live) == []
    live["GlobalSecondaryIndexes"] = live["GlobalSecondaryIndexes"][:1]
    live["GlobalSecondaryIndexes"][0] = {
        **live["GlobalSecondaryIndexes"][0],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    live["GlobalSecondaryIndexes"].append({"IndexName": "Old", "KeySchema": []})
    assert describe_drift(schema, live) == [
        "GSI GSI1 projects {'ProjectionType': 'KEYS_ONLY'}, the schema wants "
        "{'ProjectionType': 'ALL'}",
        "GSI GSI2 is missing",
        "GSI Old exists but the schema does not use it",
    ]


def test_access_patterns_table() -> None:
    rows = access_patterns(schema_of(app))
    assert rows[0] == {
        "entity": "User",
        "access": "primary key",
        "index": "table",
        "pk": "PK = USER#{user_id}",
        "sk": "SK = PROFILE",
        "example": "USER#user_id / PROFILE",
    }
    assert {
        "entity": "Post",
        "access": "by_topic",
        "index": "GSI2",
        "pk": "GSI2PK = TOPIC#{topic}",
        "sk": "GSI2SK = {created_at}",
        "example": "TOPIC#topic / 2024-05-01T12:00:00.000000Z",
    } in rows
