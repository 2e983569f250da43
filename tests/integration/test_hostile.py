"""Hostile input against a real backend: it round-trips exactly or is refused before sending.

Every test runs on the backend chosen with `--backend` (moto by default, DynamoDB Local
with `--backend=local`). "Refused" means a dynaorm error raised before any request: the
recorder must be empty. A request that reaches the backend and fails, a raw botocore
error or an item that reads back different is a failure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from dynaorm import Entity, Index, Session, Table
from dynaorm._codec import MAX_ITEM_BYTES, item_size
from dynaorm._items import entity_to_item
from dynaorm.errors import (
    ConditionFailed,
    DynaormError,
    ItemEncodingError,
    ItemTooLarge,
    KeyEncodingError,
)
from dynaorm.testing.strategies import entities, hostile_text
from tests.dynamodb_local import Backend

from .conftest import Recorder

UTC = dt.timezone.utc
IO = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

hostile = Table("hostile")

# -- models --------------------------------------------------------------------------


class Inner(BaseModel):
    label: str
    numbers: list[int] = []
    mapping: dict[str, str] = {}


class Node(BaseModel):
    label: str
    child: Node | None = None


class Hostile(Entity, table=hostile, pk="H#{a}#{n}", sk="S#{b}#{when}"):
    a: str
    n: int
    b: str
    when: dt.datetime
    text: str
    number: int = 0
    amount: Decimal = Decimal(0)
    ratio: float = 0.0
    tags: set[str] = set()
    words: list[str] = []
    mapping: dict[str, str] = {}
    inner: Inner | None = None
    blob: bytes = b""
    maybe: str | None = None

    by_text = Index(pk="T#{text}", sk="{b}")


class Deep(Entity, table=hostile, pk="D#{deep_id}", sk="D"):
    deep_id: str
    value: Any = None
    node: Node | None = None


class Big(Entity, table=hostile, pk="BIG#{big_id}", sk="BIG"):
    big_id: str
    pad: str = ""
    words: list[str] = []
    mapping: dict[str, str] = {}
    numbers: list[Decimal] = []
    tags: set[str] = set()
    blob: bytes = b""


# Field names that are DynamoDB reserved words or expression syntax, stored as exactly
# these attribute names.
WEIRD_ATTRIBUTES = {
    "name": "name",
    "status": "status",
    "data": "data",
    "size": "size",
    "ttl": "ttl",
    "count": "count",
    "key_": "key",
    "dotted": "a.b",
    "hashed": "#x",
    "colon": ":v0",
    "paren": "x)",
    "bracket": "l[0]",
    "spaced": "with space",
    "dollar": "$p",
    "percent": "%s",
}


NUMBERS = ("size", "ttl", "count")


class Weird(Entity, table=hostile, pk="W#{wid}", sk="W"):
    wid: str
    name: str = ""
    status: str = ""
    data: str = ""
    size: int = 0
    ttl: int = 0
    count: int = 0
    key_: str = Field("", alias="key")
    dotted: str = Field("", alias="a.b")
    hashed: str = Field("", alias="#x")
    colon: str = Field("", alias=":v0")
    paren: str = Field("", alias="x)")
    bracket: str = Field("", alias="l[0]")
    spaced: str = Field("", alias="with space")
    dollar: str = Field("", alias="$p")
    percent: str = Field("", alias="%s")
    nested: dict[str, str] = {}


@pytest.fixture
def table(session: Session) -> Iterator[Table]:
    session.create_table(hostile)
    yield hostile
    session.delete_table(hostile)


# -- helpers -------------------------------------------------------------------------


def raw_item(session: Session, entity: Entity) -> dict[str, Any]:
    key = entity_to_item(entity)
    response = session.transport.call(
        "GetItem",
        {
            "TableName": session.table_name(hostile),
            "Key": {"PK": key["PK"], "SK": key["SK"]},
            "ConsistentRead": True,
        },
    )
    return response["Item"]


def round_trips_or_is_refused(session: Session, recorder: Recorder, entity: Entity) -> bool:
    """Put `entity`: True if it round-trips exactly, False if refused before sending."""
    recorder.clear()
    try:
        session.put(entity)
    except DynaormError:
        assert recorder.calls == [], "refused after sending"
        return False
    loaded = session.get(type(entity), consistent=True, **entity.get_key().slots)
    assert loaded == entity
    return True


# -- strategies ----------------------------------------------------------------------

EDGE_INTS = st.sampled_from([10**38 - 1, -(10**38 - 1), 0, 1, -1]) | st.integers(
    -(10**38 - 1), 10**38 - 1
)


@st.composite
def edge_decimals(draw: st.DrawFn) -> Decimal:
    """38 significant digits anywhere in DynamoDB's range, favouring its edges."""
    digits = draw(st.sampled_from([10**38 - 1, 10**37]) | st.integers(10**37, 10**38 - 1))
    # most significant digit at exponent -130 .. 125
    exponent = draw(st.sampled_from([-130 - 37, 125 - 37]) | st.integers(-130 - 37, 125 - 37))
    sign = draw(st.sampled_from(["", "-"]))
    return Decimal(f"{sign}{digits}E{exponent}")


EDGE_DECIMALS = (
    st.sampled_from(
        [
            Decimal("9.9999999999999999999999999999999999999E+125"),
            Decimal("-9.9999999999999999999999999999999999999E+125"),
            Decimal("1E-130"),
            Decimal("-1E-130"),
            Decimal("0"),
        ]
    )
    | edge_decimals()
)


# -- hostile entities ----------------------------------------------------------------


@IO
@given(
    entities(
        Hostile,
        number=EDGE_INTS,
        amount=EDGE_DECIMALS,
        a=hostile_text(max_size=40),
        b=hostile_text(min_size=1, max_size=40),  # alone in by_text sk: never empty
        text=hostile_text(max_size=40),
    )
)
def test_hostile_entities_round_trip_through_put_get_and_query(
    session: Session, recorder: Recorder, table: Table, entity: Hostile
) -> None:
    assert round_trips_or_is_refused(session, recorder, entity)
    found = session.query(Hostile, a=entity.a, n=entity.n).consistent().all()
    assert entity in found
    assert all((f.a, f.n) == (entity.a, entity.n) for f in found)  # prefix-safe
    exact = session.query(Hostile, a=entity.a, n=entity.n).begins_with(b=entity.b).all()
    assert entity in exact and all(f.b == entity.b for f in exact)
    by_text = session.query(Hostile.by_text, text=entity.text).all()
    assert entity in by_text and all(f.text == entity.text for f in by_text)


@IO
@given(
    a=hostile_text(min_size=400, max_size=700),
    b=hostile_text(min_size=200, max_size=400),
)
def test_long_hostile_keys_round_trip_or_are_refused_before_sending(
    session: Session, recorder: Recorder, table: Table, a: str, b: str
) -> None:
    entity = Hostile(a=a, n=-1, b=b, when=dt.datetime(2024, 1, 1, tzinfo=UTC), text="t")
    round_trips_or_is_refused(session, recorder, entity)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("x" * 2048, "b"),  # PK over 2048 bytes with its literal prefix
        ("\U0001f600" * 512, "b"),  # 2048 bytes of non-BMP text + prefix
        ("a", "y" * 1024),  # SK over 1024 bytes
        ("#" * 1100, "b"),  # escaping doubles the length: 2200 bytes
    ],
)
def test_oversized_keys_are_refused_before_sending(
    session: Session, recorder: Recorder, table: Table, a: str, b: str
) -> None:
    recorder.clear()
    with pytest.raises(KeyEncodingError):
        session.put(Hostile(a=a, n=0, b=b, when=dt.datetime(2024, 1, 1, tzinfo=UTC), text="t"))
    assert recorder.calls == []


@pytest.mark.parametrize(
    "number",
    [
        10**38 + 1,  # 39 significant digits
        -(10**38 + 1),
        Decimal("1.00000000000000000000000000000000000001"),  # 39 digits
        Decimal("1E+126"),
        Decimal("-1E+126"),
        Decimal("1E-131"),
        Decimal("NaN"),
        Decimal("Infinity"),
        10**200,
    ],
    ids=str,
)
def test_numbers_beyond_dynamodb_are_refused_before_sending(
    session: Session, recorder: Recorder, table: Table, number: Any
) -> None:
    recorder.clear()
    with pytest.raises(ItemEncodingError):
        session.put(Deep(deep_id="n", value=number))
    assert recorder.calls == []


@pytest.mark.parametrize(
    "value",
    [
        10**38 - 1,
        -(10**38 - 1),
        10**38,  # one significant digit: fits
        Decimal("9.9999999999999999999999999999999999999E+125"),
        Decimal("-9.9999999999999999999999999999999999999E+125"),
        Decimal("1E-130"),
        Decimal("-1.2345678901234567890123456789012345678E-93"),
    ],
    ids=str,
)
def test_numbers_at_the_edge_round_trip(
    session: Session, recorder: Recorder, table: Table, value: Any
) -> None:
    entity = Hostile(
        a="a", n=0, b="b", when=dt.datetime(2024, 1, 1, tzinfo=UTC), text="t", amount=value
    )
    assert round_trips_or_is_refused(session, recorder, entity)
    stored = raw_item(session, entity)["amount"]["N"]
    assert Decimal(stored) == Decimal(value)


# -- nesting -------------------------------------------------------------------------


def nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def nested_map(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {f"k{level}.#:)": value}
    return value


def nested_node(depth: int) -> Node:
    node = Node(label="leaf")
    for level in range(depth - 1):
        node = Node(label=f"n{level}", child=node)
    return node


@pytest.mark.parametrize("depth", [1, 20, 31])
@pytest.mark.parametrize("shape", ["list", "map", "model"])
def test_deep_nesting_within_dynamodb_limit_round_trips(
    session: Session, recorder: Recorder, table: Table, shape: str, depth: int
) -> None:
    if shape == "model":
        entity = Deep(deep_id=f"{shape}{depth}", node=nested_node(depth))
    else:
        maker = nested_list if shape == "list" else nested_map
        entity = Deep(deep_id=f"{shape}{depth}", value=maker(depth))
    assert round_trips_or_is_refused(session, recorder, entity)


@pytest.mark.parametrize("depth", [32, 33, 40, 200, 1000])
@pytest.mark.parametrize("shape", ["list", "map", "model"])
def test_nesting_beyond_dynamodb_limit_is_refused_before_sending(
    session: Session, recorder: Recorder, table: Table, shape: str, depth: int
) -> None:
    """DynamoDB stores at most 32 levels: the attribute and 31 nested lists or maps.

    DynamoDB Local accepts 31 nested containers under a top-level attribute and refuses 32.
    """
    if shape == "model":
        entity = Deep(deep_id=f"{shape}{depth}", node=nested_node(depth))
    else:
        maker = nested_list if shape == "list" else nested_map
        entity = Deep(deep_id=f"{shape}{depth}", value=maker(depth))
    recorder.clear()
    with pytest.raises(DynaormError):
        session.put(entity)
    assert recorder.calls == []


# -- item size -----------------------------------------------------------------------


def padded(entity: Big, target: int, filler: str = "x") -> Big:
    """`entity` with `pad` grown so that dynaorm counts exactly `target` bytes."""
    base = item_size(entity_to_item(entity.model_copy(update={"pad": ""})))
    missing = target - base
    unit = len(filler.encode())
    pad = filler * (missing // unit) + "x" * (missing % unit)
    result = entity.model_copy(update={"pad": pad})
    assert item_size(entity_to_item(result)) == target if target <= MAX_ITEM_BYTES else True
    return result


SHAPES = {
    "string": lambda: Big(big_id="string"),
    "non-bmp": lambda: Big(big_id="non-bmp"),
    "list": lambda: Big(big_id="list", words=[f"w{i}" for i in range(20_000)]),
    "map": lambda: Big(big_id="map", mapping={f"k{i}": "v" for i in range(15_000)}),
    "numbers": lambda: Big(big_id="numbers", numbers=[Decimal(10**37 + i) for i in range(10_000)]),
    "set": lambda: Big(big_id="set", tags={f"t{i}" for i in range(20_000)}),
    "binary": lambda: Big(big_id="binary", blob=bytes(range(256)) * 600),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_item_of_exactly_400kb_is_accepted_by_the_backend(
    dynamodb_backend: Backend, session: Session, recorder: Recorder, table: Table, shape: str
) -> None:
    """DynamoDB Local accepts every shape at exactly 409,600 bytes as dynaorm counts them
    (and refuses 409,601). moto sizes items its own way (strings and sets ~4.6 KB more,
    lists and maps less), so it is not the judge here."""
    if dynamodb_backend.name == "memory":
        pytest.skip("moto does not count item sizes the way DynamoDB does")
    filler = "\U0001f600" if shape == "non-bmp" else "x"
    entity = padded(SHAPES[shape](), MAX_ITEM_BYTES, filler)
    assert item_size(entity_to_item(entity)) == MAX_ITEM_BYTES
    assert round_trips_or_is_refused(session, recorder, entity)


@pytest.mark.parametrize("shape", SHAPES)
def test_item_one_byte_over_400kb_is_refused_before_sending(
    session: Session, recorder: Recorder, table: Table, shape: str
) -> None:
    filler = "\U0001f600" if shape == "non-bmp" else "x"
    entity = padded(SHAPES[shape](), MAX_ITEM_BYTES + 1, filler)
    recorder.clear()
    with pytest.raises(ItemTooLarge) as info:
        session.put(entity)
    assert info.value.size == MAX_ITEM_BYTES + 1
    assert recorder.calls == []


# -- expression injection ------------------------------------------------------------


def weird(wid: str, value: str, number: int = 1) -> Weird:
    values: dict[str, Any] = {"wid": wid, "nested": {"a.b": value, "#n0": value, ":v0": value}}
    for field, attribute in WEIRD_ATTRIBUTES.items():
        values[attribute] = number if field in NUMBERS else value
    return Weird.model_validate(values)


@IO
@given(wid=hostile_text(min_size=1, max_size=20), value=hostile_text(max_size=20))
def test_names_and_values_that_look_like_syntax_are_data(
    session: Session, recorder: Recorder, table: Table, wid: str, value: str
) -> None:
    original = weird(wid, value)
    session.delete(original.get_key())
    # conditional create on a missing item, then a put conditioned on every odd name
    with pytest.raises(ConditionFailed):
        session.put(original, condition=Weird.hashed == value)
    session.create(original)
    every = Weird.dotted == value
    for field in WEIRD_ATTRIBUTES:
        every = every & (getattr(Weird, field) == getattr(original, field))
    session.put(original, condition=every & (Weird.nested["a.b"] == value))

    raw = raw_item(session, original)
    assert set(raw) == {*WEIRD_ATTRIBUTES.values(), "wid", "nested", "PK", "SK", "_type"}
    assert raw["a.b"] == {"S": value} and raw["#x"] == {"S": value}
    assert set(raw["nested"]["M"]) == {"a.b", "#n0", ":v0"}
    assert session.get(Weird, wid=wid, consistent=True) == original

    changed = value + ")#:."
    updated = session.update(
        original,
        set={field: changed for field in WEIRD_ATTRIBUTES if field not in NUMBERS},
        add={"size": 2, "ttl": 3, "count": 0},
        condition=(Weird.colon == value) & (Weird.count == 1) & Weird.paren.exists(),
    )
    assert updated == weird(wid, changed, 1).model_copy(
        update={"size": 3, "ttl": 4, "nested": original.nested}
    )
    raw = raw_item(session, original)
    assert raw["l[0]"] == {"S": changed} and raw["size"] == {"N": "3"}
    assert set(raw) == {*WEIRD_ATTRIBUTES.values(), "wid", "nested", "PK", "SK", "_type"}

    matched = session.query(Weird, wid=wid).where(
        (Weird.bracket == changed) & (Weird.spaced == changed) & (Weird.size == 3)
    )
    assert matched.all() == [updated]
    missed = session.query(Weird, wid=wid).where(Weird.dollar == value + "!")
    assert missed.all() == []

    projected = session.get(
        Weird, wid=wid, consistent=True, projection=[Weird.dotted, Weird.hashed, "status"]
    )
    assert projected is not None and sorted(map(str, projected.values())) == [changed] * 3
