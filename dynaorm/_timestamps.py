"""Automatic timestamps: the `created=` / `updated=` entity options, stamped on writes.

The rules (docs/session.md, "Automatic timestamps"):

* `updated` is set to the clock's time by every write that writes the item: create, put,
  update, a unit of work's add / put / dirty update / key move, batch_write puts. A unit of
  work whose objects did not change sends nothing, so it stamps nothing.
* `created` keeps the value the object holds; when it holds none, the write sets it to the
  same time as `updated`. Updates never touch it.
* Per object, `updated` never goes backwards: a clock behind the value the object already
  holds gives that value plus one microsecond.

The planner stamps a copy of the object it writes and applies the same values to the
caller's object only once the write succeeded (like the version bump).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import typing
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from dynaorm.errors import DefinitionError

if TYPE_CHECKING:
    from dynaorm._entity import Entity, EntityInfo

__all__ = ["Stamps", "apply", "check_options", "now", "stamped", "stamps_for", "use_clock"]

Stamps = dict[str, dt.datetime]

_TICK = dt.timedelta(microseconds=1)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class _Clock:
    """The clock every write reads; process-wide, replaced in tests with `use_clock`."""

    source: Callable[[], dt.datetime] = staticmethod(_utc_now)


@contextlib.contextmanager
def use_clock(source: Callable[[], dt.datetime]) -> Iterator[None]:
    """Stamp timestamps with `source()` (timezone-aware datetimes) inside the block.

    Process-wide, like the system clock it stands in for: meant for tests.
    """
    previous, _Clock.source = _Clock.source, source
    try:
        yield
    finally:
        _Clock.source = previous


def now() -> dt.datetime:
    """The clock's time in UTC; a naive time is refused (its zone would be a guess)."""
    value = _Clock.source()
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise DefinitionError(
            f"the timestamp clock returned {value!r}; it must return timezone-aware "
            "datetimes (e.g. datetime.now(timezone.utc))",
            value=value,
        )
    return value.astimezone(dt.timezone.utc)


def _is_datetime(annotation: Any) -> bool:
    if annotation is dt.datetime:
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return len(args) == 1 and len(typing.get_args(annotation)) == 2 and args[0] is dt.datetime


def check_options(
    entity: str,
    created: Any,
    updated: Any,
    annotations: dict[str, Any],
    primary_fields: tuple[str, ...],
) -> tuple[str | None, str | None]:
    """Validate `created=` / `updated=` at class definition: datetime fields, distinct, and
    `updated` outside the primary key (an update cannot change a key)."""
    for role, name in (("created", created), ("updated", updated)):
        if name is None:
            continue
        if not isinstance(name, str) or name not in annotations:
            raise DefinitionError(
                f"{entity}: {role}={name!r} is not a field; fields: {sorted(annotations)}",
                entity=entity,
                field=str(name),
            )
        if not _is_datetime(annotations[name]):
            raise DefinitionError(
                f"{entity}.{name} is the {role}= timestamp and must be declared `datetime` "
                f"(or `datetime | None`), not {annotations[name]!r}",
                entity=entity,
                field=name,
                value=annotations[name],
            )
    if created is not None and created == updated:
        raise DefinitionError(
            f"{entity}: created= and updated= both name {created!r}; use two fields",
            entity=entity,
            field=created,
        )
    if updated is not None and updated in primary_fields:
        raise DefinitionError(
            f"{entity}.{updated} is the updated= timestamp and a primary-key slot; it "
            "changes on every write and a key cannot change. Use it in an index "
            "(Index(sk='{" + updated + "}')) instead",
            entity=entity,
            field=updated,
        )
    return created, updated


def _later(time: dt.datetime, previous: Any) -> dt.datetime:
    if isinstance(previous, dt.datetime) and previous.tzinfo is not None and previous >= time:
        return previous + _TICK
    return time


def stamps_for(info: EntityInfo, values: dict[str, Any] | Entity, *, whole: bool) -> Stamps:
    """The timestamp values a write of an object holding `values` sets.

    `whole`: the write stores the whole item (create / put), so `created` is filled in
    when the object holds none. Otherwise (an update) only `updated` is set.
    """
    if info.created is None and info.updated is None:
        return {}
    get = values.get if isinstance(values, dict) else (lambda n: getattr(values, n, None))
    time = now()
    stamps: Stamps = {}
    if info.updated is not None:
        time = _later(time, get(info.updated))
        stamps[info.updated] = time
    if whole and info.created is not None and get(info.created) is None:
        stamps[info.created] = time
    return stamps


def stamped(entity: Entity, stamps: Stamps) -> Entity:
    """A copy of `entity` holding `stamps` (the caller's object is left alone)."""
    return entity.model_copy(update=stamps) if stamps else entity


def apply(entity: Entity | None, stamps: Stamps) -> Callable[[], None] | None:
    """Once the write succeeded: give the caller's object the values written."""
    if entity is None or not stamps:
        return None

    def set_stamps() -> None:
        entity.__dict__.update(stamps)

    return set_stamps
