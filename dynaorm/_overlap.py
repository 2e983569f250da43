"""Decides whether two key templates can ever produce the same key (or key prefix)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from dynaorm._keys import KeyTemplate, LiteralSegment, SlotSegment
from dynaorm._slots import SlotCodec
from dynaorm.errors import KeyDecodingError

__all__ = ["can_produce", "example_key", "prefix_overlaps", "templates_overlap"]

# A side of a comparison: a key template, or a fixed sort value such as the type name
# an index without `sk` writes.
Side = KeyTemplate | str

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def _segments(side: Side) -> tuple[str | SlotSegment, ...]:
    """Literal segments as their text, slots as themselves."""
    if isinstance(side, str):
        return tuple(side.split("#"))
    return tuple(s.text if isinstance(s, LiteralSegment) else s for s in side.segments)


def _samples(codec: SlotCodec) -> list[str]:
    """Encodings that stand for everything a slot kind can produce.

    Every kind but `str` produces a fixed format (or a finite set, for enums), and `str`
    produces every string of allowed characters. So two slots share an encoding exactly
    when a sample of one decodes under the other: a complete test, not a heuristic.
    """
    values: list[Any]
    if codec.enum is not None:
        values = list(codec.enum)
    elif codec.kind == "str":
        values = ["x"]
    elif codec.kind == "int":
        values = [0]
    elif codec.kind == "bool":
        values = [False]
    elif codec.kind == "datetime":
        values = [_EPOCH]
    elif codec.kind == "date":
        values = [_EPOCH.date()]
    else:
        values = [uuid.UUID(int=0)]
    return [codec.encode(value) for value in values]


def _decodes(codec: SlotCodec, text: str) -> bool:
    try:
        codec.decode(text)
    except KeyDecodingError:
        return False
    return True


def _common_segment(a: str | SlotSegment, b: str | SlotSegment) -> str | None:
    """A text both segments can be, or None when they are disjoint."""
    if isinstance(a, str) and isinstance(b, str):
        return a if a == b else None
    if isinstance(a, str):
        assert isinstance(b, SlotSegment)
        return a if _decodes(b.codec, a) else None
    if isinstance(b, str):
        return b if _decodes(a.codec, b) else None
    for text in _samples(a.codec) + _samples(b.codec):
        if _decodes(a.codec, text) and _decodes(b.codec, text):
            return text
    return None


def templates_overlap(a: Side, b: Side) -> bool:
    """True when some key produced by `a` can also be produced by `b`."""
    return example_key(a, b) is not None


def example_key(a: Side, b: Side) -> str | None:
    """A key both sides can produce, or None. Keys never contain '#' inside a segment,
    so equal keys have the same number of segments and agree segment by segment."""
    left, right = _segments(a), _segments(b)
    if len(left) != len(right):
        return None
    parts = []
    for x, y in zip(left, right, strict=True):
        common = _common_segment(x, y)
        if common is None:
            return None
        parts.append(common)
    return "#".join(parts)


def can_produce(side: Side, key: str) -> bool:
    """True when `side` can produce exactly `key`."""
    return templates_overlap(side, key)


def prefix_overlaps(a: Side, b: Side) -> bool:
    """True when a key of `b` can satisfy some sort-key condition planned for `a`.

    Every condition planned for a template selects keys that start with its leading
    literal segments plus '#' (or equal the whole key, when it is all literal); if the
    template starts with a slot, any key of the partition may match.
    """
    left, right = _segments(a), _segments(b)
    leading: list[str] = []
    for segment in left:
        if not isinstance(segment, str):
            break
        leading.append(segment)
    if len(leading) == len(left):
        return templates_overlap(a, b)
    if len(right) <= len(leading):
        return False
    return all(_common_segment(x, y) is not None for x, y in zip(leading, right, strict=False))
