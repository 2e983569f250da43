"""Sort-key bounds: plan one DynamoDB key condition per range, compare keys by UTF-8 bytes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dynaorm._slots import ESCAPE, SEPARATOR, utf8_size
from dynaorm.errors import KeyEncodingError

__all__ = [
    "MATCH_NONE",
    "Bound",
    "KeyCondition",
    "RangeSlots",
    "key_matches",
    "plan_condition",
    "slot_bounds",
    "split_range",
]


@dataclass(frozen=True)
class KeyCondition:
    """A sort-key condition: `op` is =, begins_with, between, <, <=, > or >=."""

    op: str
    values: tuple[str, ...]


# '$' alone is never a valid key: literals cannot contain '$' and no encoding is a bare '$'.
# Conditions that no key can satisfy plan to this, so the request stays valid and returns none.
MATCH_NONE = KeyCondition("=", (ESCAPE,))


def key_matches(cond: KeyCondition, key: str) -> bool:
    """Evaluate a condition on a key the way DynamoDB does: by UTF-8 bytes."""
    k = key.encode("utf-8")
    v = [value.encode("utf-8") for value in cond.values]
    if cond.op == "=":
        return k == v[0]
    if cond.op == "begins_with":
        return k.startswith(v[0])
    if cond.op == "between":
        return v[0] <= k <= v[1]
    compare: dict[str, Callable[[bytes, bytes], bool]] = {
        "<": bytes.__lt__,
        "<=": bytes.__le__,
        ">": bytes.__gt__,
        ">=": bytes.__ge__,
    }
    return compare[cond.op](k, v[0])


def _max_char(size: int) -> str:
    """The greatest code point that takes at most `size` (1..4) UTF-8 bytes."""
    return ("\x7f", "\u07ff", "\uffff", "\U0010ffff")[min(size, 4) - 1]


def _truncate(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _step(char: str, delta: int) -> str | None:
    """The next (+1) or previous (-1) Unicode scalar value, skipping surrogates."""
    code = ord(char) + delta
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000 if delta > 0 else 0xD7FF
    return chr(code) if 0 <= code <= 0x10FFFF else None


def _least_from(text: str, max_bytes: int) -> str | None:
    """The least string >= `text` of at most `max_bytes` bytes (None if there is none)."""
    if utf8_size(text) <= max_bytes:
        return text
    # No fitting string extends the cut; raise the last character that can be raised.
    head = _truncate(text, max_bytes)
    while head:
        nxt = _step(head[-1], +1)
        if nxt is not None and utf8_size(head[:-1] + nxt) <= max_bytes:
            return head[:-1] + nxt
        head = head[:-1]
    return None


def _greatest_below(text: str, max_bytes: int) -> str | None:
    """The greatest string < `text` of at most `max_bytes` bytes (None if there is none)."""
    if utf8_size(text) > max_bytes:
        head = _truncate(text, max_bytes)
        room = max_bytes - utf8_size(head)
        return head + _max_char(room) if room else head
    if not text:
        return None
    prev = _step(text[-1], -1)
    if prev is None:  # text ends in U+0000: dropping it gives the greatest lower string
        return text[:-1]
    head = text[:-1] + prev
    room = max_bytes - utf8_size(head)
    return head + "\U0010ffff" * (room // 4) + (_max_char(room % 4) if room % 4 else "")


Bound = tuple[str, bool]  # (text, inclusive)


def plan_condition(
    prefix: str, lo: Bound | None, hi: Bound | None, max_bytes: int
) -> KeyCondition | None:
    """One DynamoDB sort-key condition selecting exactly the keys within lo..hi under prefix.

    With a prefix, bounds are inclusive (BETWEEN); lower bounds are only strict without one.
    """
    if lo is not None:
        if not lo[0]:  # every key is >= "" and, being non-empty, > ""
            lo = None
        elif (least := _least_from(lo[0], max_bytes)) is None:
            return MATCH_NONE
        elif least != lo[0]:
            lo = (least, True)
    if hi is not None:
        if utf8_size(hi[0]) > max_bytes or (prefix and not hi[1]):
            below = _greatest_below(hi[0], max_bytes)
            hi = (below, True) if below else ("", True)
        if not hi[0]:  # only "" could match, and no key is empty
            return MATCH_NONE
    if prefix:
        low = lo[0] if lo else prefix
        high = hi[0] if hi else prefix[:-1] + ESCAPE  # above all of prefix, never a key
        # Code point order of valid strings is their UTF-8 byte order.
        if low > high or not low.startswith(prefix):
            return MATCH_NONE
        return KeyCondition("between", (low, high))
    if lo and hi:
        return MATCH_NONE if lo[0] > hi[0] else KeyCondition("between", (lo[0], hi[0]))
    if lo:
        return KeyCondition(">=" if lo[1] else ">", (lo[0],))
    if hi:
        return KeyCondition("<=" if hi[1] else "<", (hi[0],))
    return None


def slot_bounds(op: str, prefix: str, e: str, last: bool) -> tuple[Bound | None, Bound | None]:
    """Raw bounds for `slot op value` under `prefix`, where `e` is the encoded value.

    A non-last slot is followed by '#', below every encoded character: keys with the value
    are prefix+e+'#'..., keys with greater values are >= prefix+e+'$' (never equal to it).
    """
    if op == ">":
        if last and not prefix:
            return (e, False), None
        return (prefix + e + ESCAPE, True), None
    if op == ">=":
        return (prefix + e if last else prefix + e + SEPARATOR, True), None
    if op == "<=":
        return None, (prefix + e if last else prefix + e + ESCAPE, True)
    # "<": for a non-last slot prefix+e itself is no key of this template, so <= it is exact.
    return None, (prefix + e, not last and bool(prefix))


@dataclass(frozen=True)
class RangeSlots:
    """A multi-slot range call split up: equality slots, then the one slot with the range."""

    fixed: dict[str, Any]
    field: str
    operand: Any


def split_range(
    target: str,
    sort: tuple[str, ...],
    slots: Mapping[str, Any],
    method: str,
    given: Mapping[str, Any],
) -> RangeSlots:
    """Split `.method(**given)` on a sort template with slot fields `sort`, in order.

    The given slot latest in the template takes the range; the others are equalities and,
    with the query's own `slots`, must be exactly the slots before it. Raises
    `KeyEncodingError` naming `target` (the entity or index) and the slots otherwise.
    """

    def refuse(problem: str, field: str) -> KeyEncodingError:
        return KeyEncodingError(
            f"{target}: .{method}({', '.join(f'{n}=...' for n in given)}) {problem} "
            f"(sort-key slots {list(sort)})",
            entity=target.split(".", maxsplit=1)[0],
            field=field,
            value=given.get(field),
        )

    unknown = [name for name in given if name not in sort]
    if unknown:
        raise refuse(f"names {unknown}, which are not sort-key slots", unknown[0])
    ordered = sorted(given, key=sort.index)
    field, fixed = ordered[-1], {name: given[name] for name in ordered[:-1]}
    for name, value in fixed.items():
        if isinstance(value, (tuple, list, set, frozenset)):
            raise refuse(
                f"gives {name!r} a range {value!r}; only the last given slot, {field!r}, "
                "takes a range, the slots before it are fixed",
                name,
            )
        if name in slots and slots[name] != value:
            raise refuse(f"fixes {name!r} = {value!r} but the query has {slots[name]!r}", name)
    known = set(slots) | set(fixed)
    position = sort.index(field)
    missing = [name for name in sort[:position] if name not in known]
    if missing:
        raise refuse(
            f"is not a prefix of the sort key: {missing} come before {field!r} and are not given",
            missing[0],
        )
    after = [name for name in sort[position + 1 :] if name in slots]
    if after:
        raise refuse(f"puts the range on {field!r} but the query fixes {after} after it", after[0])
    return RangeSlots(fixed, field, given[field])
