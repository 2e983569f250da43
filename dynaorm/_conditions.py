"""Conditions: encoded values and the condition tree that writes `#n`/`:v` expression text.

This module sits below `_expressions`: a `Path`'s operators build these conditions, while
conditions only hold paths and operands and call their `serialize`, so paths are imported
for type checking alone.
"""

from __future__ import annotations

import decimal
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from dynaorm._codec import AttributeValue
from dynaorm.errors import ExpressionError

if TYPE_CHECKING:
    from dynaorm._expressions import Operand, Path, Placeholders, _Operand

__all__ = [
    "And",
    "Between",
    "Comparison",
    "Condition",
    "Function",
    "In",
    "Not",
    "Or",
    "Value",
    "and_",
    "build_condition",
    "path_error",
    "serialize_operand",
]


class Value(NamedTuple):
    """A Python value already encoded, waiting for its `:v` placeholder."""

    av: AttributeValue


def path_error(path: Path, reason: str, value: object = None) -> ExpressionError:
    """An ExpressionError about `path`, naming its entity and field."""
    return ExpressionError(
        f"{path.describe()}: {reason}", entity=path.entity, field=path.dotted, value=value
    )


def serialize_operand(operand: Operand, ph: Placeholders) -> str:
    return ph.value(operand.av) if isinstance(operand, Value) else operand.serialize(ph)


def _sort_key(operand: Operand) -> tuple[str, Any] | None:
    """A key ordering S, N and B values as DynamoDB does, or None if not comparable."""
    if not isinstance(operand, Value):
        return None
    ((tag, payload),) = operand.av.items()
    if tag == "S":
        return tag, payload.encode("utf-8")
    if tag == "N":
        return tag, decimal.Decimal(payload)
    return (tag, bytes(payload)) if tag == "B" else None


def _check_bounds(path: Path, low: Operand, high: Operand) -> None:
    low_key, high_key = _sort_key(low), _sort_key(high)
    if low_key and high_key and low_key[0] == high_key[0] and low_key[1] > high_key[1]:
        raise path_error(path, "BETWEEN needs low <= high, as DynamoDB refuses the reverse")


class Condition:
    """A condition or filter; combine with `&`, `|` and `~`."""

    __slots__ = ()

    def serialize(self, ph: Placeholders) -> str:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return And(self, other) if isinstance(other, Condition) else NotImplemented

    def __or__(self, other: Condition) -> Condition:
        return Or(self, other) if isinstance(other, Condition) else NotImplemented

    def __invert__(self) -> Condition:
        return Not(self)

    def __bool__(self) -> bool:
        # A condition has no truth value until DynamoDB evaluates it. Python asks for one
        # in `if Post.likes > 3:`, `a and b`, `not a` and chained `1 < Post.likes < 5`;
        # answering True would silently drop the left-hand condition of `a and b`.
        raise TypeError(
            "a condition has no truth value in Python: combine conditions with &, | and ~ "
            "(not `and`, `or`, `not`) and pass them to a query or write"
        )

    def __repr__(self) -> str:
        fields = ", ".join(
            repr(getattr(self, name)) for name in cast(tuple[str, ...], self.__slots__)
        )
        return f"{type(self).__name__}({fields})"


class Comparison(Condition):
    """`left op right` with op one of =, <>, <, <=, >, >=."""

    __slots__ = ("left", "op", "right")

    def __init__(self, left: Operand, op: str, right: Operand) -> None:
        self.left, self.op, self.right = left, op, right

    def serialize(self, ph: Placeholders) -> str:
        return f"{serialize_operand(self.left, ph)} {self.op} {serialize_operand(self.right, ph)}"


class Between(Condition):
    """`operand BETWEEN low AND high`."""

    __slots__ = ("high", "low", "operand")

    def __init__(self, operand: _Operand, low: Operand, high: Operand) -> None:
        _check_bounds(operand._owner(), low, high)
        self.operand, self.low, self.high = operand, low, high

    def serialize(self, ph: Placeholders) -> str:
        operand, low = serialize_operand(self.operand, ph), serialize_operand(self.low, ph)
        return f"{operand} BETWEEN {low} AND {serialize_operand(self.high, ph)}"


class In(Condition):
    """`operand IN (v1, v2, ...)`."""

    __slots__ = ("operand", "values")

    def __init__(self, operand: _Operand, values: tuple[Operand, ...]) -> None:
        self.operand, self.values = operand, values

    def serialize(self, ph: Placeholders) -> str:
        operand = serialize_operand(self.operand, ph)
        return f"{operand} IN ({', '.join(serialize_operand(value, ph) for value in self.values)})"


class Function(Condition):
    """`name(path)` or `name(path, operand)`: attribute_exists, begins_with, contains, ..."""

    __slots__ = ("name", "operand", "path")

    def __init__(self, name: str, path: Path, operand: Operand | None = None) -> None:
        self.name, self.path, self.operand = name, path, operand

    def serialize(self, ph: Placeholders) -> str:
        path = self.path.serialize(ph)
        if self.operand is None:
            return f"{self.name}({path})"
        return f"{self.name}({path}, {serialize_operand(self.operand, ph)})"


class _Junction(Condition):
    __slots__ = ("conditions",)
    conditions: tuple[Condition, ...]
    keyword = ""

    def __init__(self, *conditions: Condition) -> None:
        if not conditions or not all(isinstance(c, Condition) for c in conditions):
            raise ExpressionError(f"{type(self).__name__} needs conditions, got {conditions!r}")
        flat: list[Condition] = []
        for condition in conditions:  # (a & b) & c is written a AND b AND c
            if isinstance(condition, type(self)):
                flat.extend(condition.conditions)
            else:
                flat.append(condition)
        self.conditions = tuple(flat)

    def serialize(self, ph: Placeholders) -> str:
        return f" {self.keyword} ".join(_grouped(c, ph, _Junction) for c in self.conditions)


class And(_Junction):
    """All of the conditions (`a & b`)."""

    __slots__ = ()
    keyword = "AND"


class Or(_Junction):
    """Any of the conditions (`a | b`)."""

    __slots__ = ()
    keyword = "OR"


class Not(Condition):
    """The negation of a condition (`~a`); `~~a` is `a` again."""

    __slots__ = ("condition",)

    def __init__(self, condition: Condition) -> None:
        self.condition = condition

    def __invert__(self) -> Condition:
        return self.condition

    def serialize(self, ph: Placeholders) -> str:
        return f"NOT {_grouped(self.condition, ph, (_Junction, Not))}"


def _grouped(condition: Condition, ph: Placeholders, compound: type | tuple[type, ...]) -> str:
    """Parenthesise compound conditions so the text never relies on AND/OR precedence."""
    text = condition.serialize(ph)
    return f"({text})" if isinstance(condition, compound) else text


def and_(*conditions: Condition | None) -> Condition | None:
    """All given conditions joined with AND, skipping None; None if none are left."""
    present = [condition for condition in conditions if condition is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else And(*present)


def build_condition(condition: Condition, ph: Placeholders) -> str:
    """The expression text of `condition`, allocating its placeholders in `ph`."""
    if not isinstance(condition, Condition):
        raise ExpressionError(
            f"expected a condition such as `Post.likes > 3`, got {condition!r}",
            value=condition,
        )
    return condition.serialize(ph)
