"""Key encoding properties over hostile values: round trip, prefix safety, order, conditions."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from enum import Enum, IntEnum
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dynaorm._bounds import MATCH_NONE, KeyCondition, key_matches
from dynaorm._keys import KeyTemplate
from dynaorm.errors import KeyEncodingError

UTC = dt.timezone.utc
LIMIT = 10**20 - 1


class Color(Enum):
    EMPTY = ""
    HASH = "#"
    DOLLAR = "$"
    SPACE = " "
    A = "a"
    A0 = "a0"


class Level(IntEnum):
    MIN = -LIMIT
    NEG = -1
    ZERO = 0
    MAX = LIMIT


class Answer(Enum):
    NO = False
    YES = True


# Characters at and around the separator and escape, controls, and multi-byte / non-BMP text.
HOSTILE = "#%$ \x00\x01\x1f\x7f!\"'0aAz~é\uffff\U0001f600\U0010ffff"
texts = st.text(st.sampled_from(HOSTILE), max_size=6) | st.text(max_size=6)
ints = st.sampled_from([-LIMIT, -1, 0, 1, LIMIT]) | st.integers(-LIMIT, LIMIT)
zones = st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m))) | (
    st.timezones()
)
datetimes = st.datetimes(dt.datetime(2, 1, 1), dt.datetime(9998, 12, 31), timezones=zones)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "s": texts,
    "s1": texts,
    "s2": texts,
    "i": ints,
    "t": datetimes,
    "d": st.dates(),
    "u": st.uuids(),
    "b": st.booleans(),
    "c": st.sampled_from(Color),
    "l": st.sampled_from(Level),
    "a": st.sampled_from(Answer),
}
ANNOTATIONS: dict[str, Any] = {
    "s": str,
    "s1": str,
    "s2": str,
    "i": int,
    "t": dt.datetime,
    "d": dt.date,
    "u": uuid.UUID,
    "b": bool,
    "c": Color,
    "l": Level,
    "a": Answer,
}


def template(source: str, max_bytes: int = 1024) -> KeyTemplate:
    return KeyTemplate.parse(source, ANNOTATIONS, entity="E", role="sk", max_bytes=max_bytes)


def norm(value: Any) -> Any:
    """The value as it orders: datetimes by UTC instant, enums by value."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    if isinstance(value, Enum):
        return value.value
    return value


def sign(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


ROUND_TRIP = [f"K#{{{name}}}" for name in STRATEGIES] + [
    "X#{s1}#{s2}",
    "{s1}#{i}",
    "A#{d}#{s}",
    "{s}",
    "{s1}#{s2}#{t}#{u}",
    "{c}#{l}#{a}#{b}",
]


@given(st.sampled_from(ROUND_TRIP), st.data())
def test_round_trip(source: str, data: st.DataObject) -> None:
    t = template(source)
    values = {name: data.draw(STRATEGIES[name], label=name) for name in t.fields}
    try:
        key = t.encode(values)
    except KeyEncodingError:
        assert source == "{s}"
        assert values["s"] == ""  # the only refusal: an entirely empty key
        return
    assert all(ord(c) > ord("#") for part in key.split("#") for c in part)
    decoded = t.decode(key)
    assert decoded == {
        name: norm(v) if isinstance(v, dt.datetime) else v for name, v in values.items()
    }
    assert t.encode(decoded) == key
    for value in decoded.values():
        if isinstance(value, dt.datetime):
            assert value.tzinfo is UTC


@given(st.sampled_from(ROUND_TRIP), st.data())
def test_tuple_order_is_byte_order(source: str, data: st.DataObject) -> None:
    t = template(source)
    rows = [{name: data.draw(STRATEGIES[name]) for name in t.fields} for _ in range(2)]
    if any(not row.get("s", "x") for row in rows) and source == "{s}":
        return
    first, second = (tuple(norm(row[name]) for name in t.fields) for row in rows)
    keys = [t.encode(row).encode("utf-8") for row in rows]
    assert sign(first, second) == sign(keys[0], keys[1])


@given(texts, st.data())
def test_prefix_never_matches_another_value(s: str, data: st.DataObject) -> None:
    t = template("ORDER#{s}#ITEM#{i}")
    others = [s + "0", s + "#", s + " ", s + "$", s + "\x00", s[:-1], data.draw(texts)]
    cond = KeyCondition("begins_with", (t.prefix({"s": s}),))
    i = data.draw(ints)
    assert key_matches(cond, t.encode({"s": s, "i": i}))
    for other in others:
        assert key_matches(cond, t.encode({"s": other, "i": i})) == (other == s)
    assert t.condition({"s": s}) == cond


# --- conditions -------------------------------------------------------------------------

# (template, max_bytes); the small limits make operands longer than any key.
CONDITION_TEMPLATES = [
    ("POST#{s}", 1024),
    ("POST#{s}#{i}", 1024),
    ("POST#{s}#X", 1024),
    ("{s}#X#{i}", 1024),
    ("{s}", 1024),
    ("A#{d}#{s}", 1024),
    ("POST#{i}#{t}", 1024),
    ("POST#{c}#{b}#{l}", 1024),
    ("{a}#{u}", 1024),
    ("POST#{s1}#{s2}", 14),
    ("P#{s}", 10),
]
ORDER_OPS = ["=", "<", "<=", ">", ">="]
PARTIAL_KINDS = ("s", "s1", "s2", "t", "d")


def utc_text(value: Any) -> str:
    """An independent rendering of the encoded form of a date or datetime value."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return str(value.isoformat())


def satisfies(op: str | None, value: Any, operand: Any) -> bool:
    if op is None:
        return True
    if op == "begins_with":
        if isinstance(value, str):
            return value.startswith(operand)
        return utc_text(value).startswith(operand)
    if op == "between":
        return bool(norm(operand[0]) <= norm(value) <= norm(operand[1]))
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return compare[op](norm(value), norm(operand))


def operands(name: str, pool: list[Any]) -> st.SearchStrategy[Any]:
    near = st.sampled_from(pool)
    if name.startswith("s"):
        near = near | near.flatmap(
            lambda s: st.sampled_from([s + "0", s + "#", s + "$", s + "\x00", s[:-1], s * 3])
        )
    return near | STRATEGIES[name]


def partials(name: str, pool: list[Any]) -> st.SearchStrategy[str]:
    if name.startswith("s"):
        return st.sampled_from(pool).flatmap(lambda s: st.integers(0, len(s)).map(lambda k: s[:k]))
    return st.tuples(st.sampled_from(pool), st.integers(0, 27)).map(
        lambda p: utc_text(p[0])[: p[1]]
    )


def foreign_keys(source: str) -> list[str]:
    """Keys of other templates that share the first literal, all outside its prefix."""
    first = source.split("#", maxsplit=1)[0]
    return [first, first[:-1], first + "X#a", first + "X", first[:-1] + "S#00000000000000000001"]


def prefix_too_long(t: KeyTemplate, fixed: dict[str, Any]) -> bool:
    try:
        t.prefix(fixed)
    except KeyEncodingError as e:
        return "-byte limit" in e.message
    return False


def check(
    t: KeyTemplate,
    rows: list[dict[str, Any]],
    fixed: dict[str, Any],
    query: tuple[str | None, str | None, Any],
) -> None:
    """The planned condition selects exactly the rows that satisfy the query."""
    op, field, operand = query
    stored: list[tuple[str, bool]] = []
    for row in rows:
        try:
            key = t.encode(row)
        except KeyEncodingError:
            continue  # too long to be stored: it can never be in the table
        wanted = all(norm(row[n]) == norm(v) for n, v in fixed.items()) and (
            field is None or satisfies(op, row[field], operand)
        )
        stored.append((key, wanted))
    try:
        cond = t.condition(fixed, op=op, field=field, operand=operand)
    except KeyEncodingError:
        # Only an exact key or a prefix longer than any key may refuse; nothing could match.
        assert op in (None, "=", "begins_with") or prefix_too_long(t, fixed)
        assert not any(wanted for _, wanted in stored)
        return
    for key, wanted in stored:
        assert (cond is None or key_matches(cond, key)) == wanted, (key, query, cond)
    if cond is not None:
        for value in cond.values:
            assert value
            assert len(value.encode("utf-8")) <= t.max_bytes
        if cond.op == "between" and cond != MATCH_NONE:
            assert cond.values[0].encode() <= cond.values[1].encode()
    if not t.source.startswith("{"):
        assert cond is not None
        assert not any(key_matches(cond, key) for key in foreign_keys(t.source))


@given(st.sampled_from(CONDITION_TEMPLATES), st.data())
def test_conditions_select_exactly_the_matching_keys(
    shape: tuple[str, int], data: st.DataObject
) -> None:
    t = template(*shape)
    names = t.fields
    pools = {n: data.draw(st.lists(STRATEGIES[n], min_size=1, max_size=4)) for n in names}
    row_strategy = st.fixed_dictionaries({n: st.sampled_from(pools[n]) for n in names})
    rows = data.draw(st.lists(row_strategy, min_size=1, max_size=12), label="rows")
    position = data.draw(st.integers(0, len(names)), label="position")
    fixed_row = data.draw(st.sampled_from(rows), label="fixed from")
    fixed = {name: fixed_row[name] for name in names[:position]}
    check(t, rows, fixed, (None, None, None))
    if position == len(names):
        return
    field = names[position]
    near = operands(field, pools[field])
    operand = data.draw(near, label="operand")
    for op in ORDER_OPS:
        check(t, rows, fixed, (op, field, operand))
    check(t, rows, fixed, ("between", field, data.draw(st.tuples(near, near), label="pair")))
    if field in PARTIAL_KINDS:
        partial = data.draw(partials(field, pools[field]), label="partial")
        check(t, rows, fixed, ("begins_with", field, partial))
