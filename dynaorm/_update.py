"""Update, projection and key-condition expressions, built on `_expressions`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple

from dynaorm._conditions import Value, path_error, serialize_operand
from dynaorm._expressions import Operand, Path, Placeholders, encode_value, to_operand
from dynaorm.errors import ExpressionError

__all__ = [
    "Update",
    "as_path",
    "key_condition_expression",
    "paths_overlap",
    "projection_expression",
]

_SET_TAGS = ("SS", "NS", "BS")
_KEY_OPERATORS = frozenset({"=", "<", "<=", ">", ">=", "begins_with", "between"})


class _Action(NamedTuple):
    clause: str  # SET, REMOVE, ADD or DELETE
    template: str  # "{p}" is the target path, "{v}" the operand
    path: Path
    operand: Operand | None


_CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")


class Update:
    """An immutable update-expression builder: every method returns a new `Update`.

    Actions that DynamoDB would refuse (two actions on overlapping paths, ADD of a
    non-number, DELETE of a non-set, an empty set) raise `ExpressionError` at once.
    """

    __slots__ = ("_actions",)

    def __init__(self) -> None:
        self._actions: tuple[_Action, ...] = ()

    def set(self, path: Path | str, value: object) -> Update:
        """`SET path = value`; `value` may be another `Path` to copy."""
        target = as_path(path)
        return self._with("SET", "{p} = {v}", target, to_operand(target, value))

    def set_if_not_exists(self, path: Path | str, value: object) -> Update:
        """`SET path = if_not_exists(path, value)`: keep a stored value, else write `value`."""
        target = as_path(path)
        return self._with("SET", "{p} = if_not_exists({p}, {v})", target, to_operand(target, value))

    def append(self, path: Path | str, values: Sequence[object]) -> Update:
        """`SET path = list_append(path, values)`: add to the end of a list."""
        target = as_path(path)
        return self._with("SET", "{p} = list_append({p}, {v})", target, _typed(target, values))

    def prepend(self, path: Path | str, values: Sequence[object]) -> Update:
        """`SET path = list_append(values, path)`: add to the front of a list."""
        target = as_path(path)
        return self._with("SET", "{p} = list_append({v}, {p})", target, _typed(target, values))

    def add(self, path: Path | str, value: object) -> Update:
        """`ADD path value`: add to a number (created as 0) or union with a set."""
        target = as_path(path)
        return self._with("ADD", "{p} {v}", target, _typed(target, value, "N", *_SET_TAGS))

    def delete(self, path: Path | str, values: AbstractSet[Any]) -> Update:
        """`DELETE path values`: remove elements from a set."""
        target = as_path(path)
        return self._with("DELETE", "{p} {v}", target, _typed(target, values, *_SET_TAGS))

    def remove(self, *paths: Path | str) -> Update:
        """`REMOVE path, ...`: delete attributes or list elements."""
        update = self
        for path in paths:
            update = update._with("REMOVE", "{p}", as_path(path), None)
        return update

    def __len__(self) -> int:
        return len(self._actions)

    def __repr__(self) -> str:
        return f"Update({len(self._actions)} actions)"

    def serialize(self, ph: Placeholders) -> str:
        """`SET ... REMOVE ... ADD ... DELETE ...`, with only the clauses in use."""
        if not self._actions:
            raise ExpressionError("an update needs at least one action")
        clauses = []
        for clause in _CLAUSES:
            actions = [_render(action, ph) for action in self._actions if action.clause == clause]
            if actions:
                clauses.append(f"{clause} {', '.join(actions)}")
        return " ".join(clauses)

    def _with(self, clause: str, template: str, path: Path, operand: Operand | None) -> Update:
        for action in self._actions:
            if paths_overlap(action.path, path):
                raise path_error(
                    path,
                    f"overlaps {action.path.describe()} ({action.clause}); "
                    "DynamoDB refuses two actions on overlapping paths in one update",
                )
        update = Update()
        update._actions = (*self._actions, _Action(clause, template, path, operand))
        return update


def as_path(path: Path | str) -> Path:
    """`path` itself, or a top-level attribute literally named `path`."""
    if isinstance(path, Path):
        return path
    if isinstance(path, str):
        return Path(path)
    raise TypeError(f"expected a Path or an attribute name, got {path!r}")


def _typed(path: Path, value: object, *tags: str) -> Value:
    """Encode `value` and insist on one of the type tags (a list when none are given)."""
    av = encode_value(path, list(value) if isinstance(value, tuple) else value)
    expected = tags or ("L",)
    if next(iter(av)) not in expected:
        wanted = "a list" if not tags else "a number or a set" if "N" in tags else "a set"
        raise path_error(path, f"this action needs {wanted}, got {value!r}", value)
    return Value(av)


def _render(action: _Action, ph: Placeholders) -> str:
    # The target path comes first in every template, so allocation follows the text.
    path = action.path.serialize(ph)
    value = "" if action.operand is None else serialize_operand(action.operand, ph)
    return action.template.format(p=path, v=value)


def paths_overlap(a: Path, b: Path) -> bool:
    """True if one path is the other or lies inside it."""
    n = min(len(a.segments), len(b.segments))
    return a.segments[:n] == b.segments[:n]


# --- projections and key conditions -------------------------------------------------


def projection_expression(paths: Iterable[Path | str], ph: Placeholders) -> str:
    """`#n0, #n1.#n2`; exact duplicates are dropped, overlapping paths refused."""
    unique: list[Path] = []
    for item in paths:
        path = as_path(item)
        clash = next((seen for seen in unique if paths_overlap(seen, path)), None)
        if clash is None:
            unique.append(path)
        elif clash.segments != path.segments:
            raise path_error(path, f"overlaps {clash.describe()} in a projection")
    if not unique:
        raise ExpressionError("a projection needs at least one path")
    return ", ".join(path.serialize(ph) for path in unique)


def key_condition_expression(
    pk_name: str,
    pk_value: str,
    sk_name: str | None,
    op: str | None,
    sk_values: tuple[str, ...],
    ph: Placeholders,
) -> str:
    """A `KeyConditionExpression` on string keys: `=` on the partition key, then optionally
    `=`, `<`, `<=`, `>`, `>=`, `begins_with` or `between` on the sort key."""
    if not pk_value:
        raise ExpressionError(f"the partition key {pk_name!r} needs a non-empty value")
    if op is not None:
        _check_sort_condition(sk_name, op, sk_values)
    elif sk_values:
        raise ExpressionError(f"sort key values {sk_values!r} given without an operator")
    text = f"{ph.name(pk_name)} = {ph.value({'S': pk_value})}"
    if op is None or sk_name is None:
        return text
    sk = ph.name(sk_name)
    values = [ph.value({"S": value}) for value in sk_values]
    if op == "begins_with":
        return f"{text} AND begins_with({sk}, {values[0]})"
    if op == "between":
        return f"{text} AND {sk} BETWEEN {values[0]} AND {values[1]}"
    return f"{text} AND {sk} {op} {values[0]}"


def _check_sort_condition(sk_name: str | None, op: str, sk_values: tuple[str, ...]) -> None:
    if op not in _KEY_OPERATORS:
        raise ExpressionError(
            f"unknown sort key operator {op!r}; use one of {sorted(_KEY_OPERATORS)}"
        )
    if sk_name is None:
        raise ExpressionError(f"a sort key condition ({op}) needs a sort key name")
    expected = 2 if op == "between" else 1
    if len(sk_values) != expected or not all(isinstance(v, str) for v in sk_values):
        raise ExpressionError(
            f"sort key {op!r} takes {expected} str value(s), got {sk_values!r}", field=sk_name
        )
    if op == "between" and sk_values[0].encode() > sk_values[1].encode():
        raise ExpressionError(
            f"sort key BETWEEN needs low <= high, got {sk_values!r}", field=sk_name
        )
