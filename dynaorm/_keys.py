"""Key templates: parse `USER#{id}`, encode slot values to keys, decode keys strictly."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from dynaorm._bounds import KeyCondition, plan_condition, slot_bounds
from dynaorm._slots import ESCAPE, SEPARATOR, SlotCodec, is_utf8, resolve_slot, utf8_size
from dynaorm.errors import KeyDecodingError, KeyEncodingError, KeyTemplateError

__all__ = ["KeyTemplate", "LiteralSegment", "Segment", "SlotSegment", "literal_problem"]

_OPS = frozenset({"=", "begins_with", "between", "<", "<=", ">", ">="})


@dataclass(frozen=True)
class LiteralSegment:
    """A fixed segment of a key template, written as it is."""

    text: str


@dataclass(frozen=True)
class SlotSegment:
    """A `{field}` segment of a key template."""

    field: str
    codec: SlotCodec


Segment = LiteralSegment | SlotSegment
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def literal_problem(text: str) -> str | None:
    """Why `text` cannot be a literal key segment, or None when it can."""
    for char in text:
        if char in "{}":
            return f"mixes text with a placeholder {char!r}; a {{field}} must fill a segment"
        if char <= ESCAPE:
            return (
                f"contains {char!r}; literals cannot hold characters at or below '$' "
                '(controls, space, !, ", #, $)'
            )
    return None if is_utf8(text) else "is not valid UTF-8"


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed key template: encode slot values to a key, decode a key, plan conditions."""

    source: str
    entity: str
    role: str
    max_bytes: int
    segments: tuple[Segment, ...]

    @classmethod
    def parse(
        cls,
        source: str,
        annotations: Mapping[str, Any],
        *,
        entity: str,
        role: str,
        max_bytes: int,
    ) -> KeyTemplate:
        """Parse `source` against the entity's field annotations."""

        def fail(problem: str, field: str | None = None) -> KeyTemplateError:
            return KeyTemplateError(
                f"{entity}.{role} template {source!r}: {problem}",
                entity=entity,
                key=source,
                field=field,
            )

        if not source:
            raise fail("the template is empty")
        segments: list[Segment] = []
        for position, part in enumerate(source.split(SEPARATOR), start=1):
            match = _FIELD.fullmatch(part)
            if match is None:
                problem = "is empty" if not part else literal_problem(part)
                if problem is not None:
                    raise fail(f"segment {position} {part!r} {problem}")
                segments.append(LiteralSegment(part))
                continue
            name = match.group(1)
            if name not in annotations:
                known = ", ".join(sorted(annotations)) or "none"
                raise fail(f"{part!r} names no field of {entity} (fields: {known})", name)
            if any(isinstance(s, SlotSegment) and s.field == name for s in segments):
                raise fail(f"field {name!r} appears twice", name)
            codec = resolve_slot(
                annotations[name], entity=entity, field=name, template=source, role=role
            )
            segments.append(SlotSegment(name, codec))
        template = cls(source, entity, role, max_bytes, tuple(segments))
        template._check_fits()
        return template

    def _check_fits(self) -> None:
        separators = len(self.segments) - 1
        least = separators + sum(
            utf8_size(s.text) if isinstance(s, LiteralSegment) else s.codec.min_bytes
            for s in self.segments
        )
        if least > self.max_bytes:
            raise KeyTemplateError(
                f"{self.entity}.{self.role} template {self.source!r}: its shortest key is "
                f"{least} bytes, over the {self.max_bytes}-byte limit",
                entity=self.entity,
                key=self.source,
            )

    # Derived once per template (cached_property writes the instance __dict__ directly, so
    # it works on a frozen dataclass): keys are encoded on every write.
    @cached_property
    def slots(self) -> tuple[SlotSegment, ...]:
        """The slot segments, in template order."""
        return tuple(s for s in self.segments if isinstance(s, SlotSegment))

    @cached_property
    def _plan(self) -> tuple[tuple[str | None, str, Any], ...]:
        """(literal or None, field, encoder) per segment, for the fast path of `encode`."""
        return tuple(
            (s.text, "", None)
            if isinstance(s, LiteralSegment)
            else (None, s.field, s.codec.encoder)
            for s in self.segments
        )

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The slot field names, in template order."""
        return tuple(s.field for s in self.slots)

    @property
    def is_static(self) -> bool:
        """True when the template has no slots: every item gets the same key."""
        return not self.slots

    def encode(self, values: Mapping[str, Any]) -> str:
        """The key for `values`; every slot needs a non-None value."""
        try:
            key = SEPARATOR.join(
                [
                    literal if literal is not None else encoder(values[field])
                    for literal, field, encoder in self._plan
                ]
            )
        except (KeyError, KeyEncodingError):
            # The slow path names the entity, role, field and value in its error.
            key = self._join(self.segments, values)
        # A UTF-8 character is at most 4 bytes: most keys are shown short without encoding.
        if not key or len(key) * 4 > self.max_bytes:
            self._check_size(key)
        return key

    def has_none(self, values: Mapping[str, Any]) -> bool:
        """True when some slot's value is None (a sparse index then writes no key)."""
        return any(field in values and values[field] is None for field in self.fields)

    def decode(self, key: str) -> dict[str, Any]:
        """The slot values of `key`; a key this template could not have produced raises."""

        def fail(problem: str, field: str | None = None) -> KeyDecodingError:
            return KeyDecodingError(
                f"{self.entity}.{self.role} key {key!r} does not match template "
                f"{self.source!r}: {problem}",
                entity=self.entity,
                key=key,
                field=field,
            )

        if not isinstance(key, str) or not key or not is_utf8(key):
            raise fail("keys are non-empty, valid UTF-8 strings")
        if utf8_size(key) > self.max_bytes:
            raise fail(f"the key is over the {self.max_bytes}-byte limit")
        parts = key.split(SEPARATOR)
        if len(parts) != len(self.segments):
            raise fail(f"{len(parts)} segments, expected {len(self.segments)}")
        values: dict[str, Any] = {}
        for part, segment in zip(parts, self.segments, strict=True):
            if isinstance(segment, LiteralSegment):
                if part != segment.text:
                    raise fail(f"segment {part!r} is not the literal {segment.text!r}")
                continue
            try:
                values[segment.field] = segment.codec.decode(part)
            except KeyDecodingError as e:
                raise fail(f"field {segment.field!r}: {e.message}", segment.field) from None
        return values

    def prefix(self, values: Mapping[str, Any]) -> str:
        """The key prefix for a leading run of slot values, ending on a segment boundary.

        Returns the full key when every slot is given, "" when the first segment is unfilled.
        """
        cut = self._first_missing(values)
        if cut is None:
            return self.encode(values)
        head = self.segments[:cut]
        prefix = self._join(head, values) + SEPARATOR if head else ""
        self._check_size(prefix, allow_empty=True)
        return prefix

    def condition(
        self,
        fixed: Mapping[str, Any],
        *,
        op: str | None = None,
        field: str | None = None,
        operand: Any = None,
    ) -> KeyCondition | None:
        """The sort-key condition for `fixed` leading slots and optionally `field op operand`.

        None means no condition is needed (every key of the partition qualifies);
        `MATCH_NONE` means no key can qualify.
        """
        if op is None:
            if self._first_missing(fixed) is None:
                return KeyCondition("=", (self.encode(fixed),))
            prefix = self.prefix(fixed)
            return KeyCondition("begins_with", (prefix,)) if prefix else None
        if op not in _OPS:
            raise self._error(f"unsupported condition operator {op!r}", field)
        slot = self._next_slot(fixed, field)
        if op == "=":
            return self.condition({**fixed, slot.field: operand})
        prefix = self.prefix(fixed)
        last = slot is self.segments[-1]
        if op == "begins_with":
            text = prefix + self._encode_one(slot, operand, partial=True)
            self._check_size(text, allow_empty=True)
            return KeyCondition("begins_with", (text,)) if text else None
        if op == "between":
            if not isinstance(operand, (tuple, list)) or len(operand) != 2:
                raise self._error(f"between needs a (low, high) pair, got {operand!r}", field)
            lo, _ = slot_bounds(">=", prefix, self._encode_one(slot, operand[0]), last)
            _, hi = slot_bounds("<=", prefix, self._encode_one(slot, operand[1]), last)
        else:
            lo, hi = slot_bounds(op, prefix, self._encode_one(slot, operand), last)
        return plan_condition(prefix, lo, hi, self.max_bytes)

    # --- helpers ---

    def _error(self, problem: str, field: str | None = None, value: Any = None) -> KeyEncodingError:
        return KeyEncodingError(
            f"{self.entity}.{self.role} template {self.source!r}: {problem}",
            entity=self.entity,
            field=field,
            value=value,
        )

    def _encode_one(self, slot: SlotSegment, value: Any, *, partial: bool = False) -> str:
        if value is None:
            raise self._error(f"field {slot.field!r} is None; a key slot needs a value", slot.field)
        try:
            if partial:
                return slot.codec.encode_partial(value)
            return slot.codec.encode(value)
        except KeyEncodingError as e:
            raise self._error(
                f"field {slot.field!r} = {value!r}: {e.message}", slot.field, value
            ) from None

    def _join(self, segments: tuple[Segment, ...], values: Mapping[str, Any]) -> str:
        parts = []
        for segment in segments:
            if isinstance(segment, LiteralSegment):
                parts.append(segment.text)
            elif segment.field not in values:
                raise self._error(f"no value for field {segment.field!r}", segment.field)
            else:
                parts.append(self._encode_one(segment, values[segment.field]))
        return SEPARATOR.join(parts)

    def _check_size(self, key: str, *, allow_empty: bool = False) -> None:
        size = utf8_size(key)
        if size > self.max_bytes:
            raise self._error(f"the key is {size} bytes, over the {self.max_bytes}-byte limit")
        if not key and not allow_empty:
            raise self._error("the key would be empty; DynamoDB refuses empty keys")

    def _first_missing(self, values: Mapping[str, Any]) -> int | None:
        """Index of the first slot segment not in `values`; later slots must be absent."""
        cut = None
        for index, segment in enumerate(self.segments):
            if not isinstance(segment, SlotSegment):
                continue
            if segment.field not in values:
                cut = index if cut is None else cut
            elif cut is not None:
                missing = typing.cast(SlotSegment, self.segments[cut]).field
                raise self._error(
                    f"field {segment.field!r} is given but {missing!r} before it is not; "
                    "a prefix needs a leading run of slots",
                    missing,
                )
        return cut

    def _next_slot(self, fixed: Mapping[str, Any], field: str | None) -> SlotSegment:
        cut = self._first_missing(fixed)
        if cut is None:
            raise self._error("every slot is fixed; there is no slot left to compare", field)
        slot = self.segments[cut]
        assert isinstance(slot, SlotSegment)
        if field != slot.field:
            raise self._error(
                f"a range condition applies to the next slot after the fixed ones, "
                f"{slot.field!r}, not {field!r}",
                field,
            )
        return slot
