"""Multi-slot ranges: leading sort-key slots fixed, the last given slot ranged (issue 15.7).

`between(status="open", created_at=(lo, hi))`, `gt(status="open", created_at=t)` and their
siblings are checked against an in-memory oracle (hypothesis: random items, random fixed
prefix, random range) on the primary key and on an index, and refused before sending when
the slots are not a prefix of the sort template or a slot before the last has a range.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dynaorm import Entity, Index, Session, Table
from dynaorm.errors import KeyEncodingError

from .conftest import Recorder

UTC = dt.timezone.utc
IO = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BASE = dt.datetime(2024, 1, 1, tzinfo=UTC)

ranges = Table("ranges")


class Task(
    Entity,
    table=ranges,
    pk="P#{project}",
    sk="T#{status}#{priority}#{created_at}#{task_id}",
):
    project: str
    status: str
    priority: int
    created_at: dt.datetime
    task_id: str
    owner: str

    by_owner = Index(pk="O#{owner}", sk="{status}#{created_at}")


PRIMARY = ("status", "priority", "created_at", "task_id")
INDEX = ("status", "created_at")
_projects = itertools.count()


@pytest.fixture
def table(session: Session) -> Iterator[Table]:
    session.create_table(ranges)
    yield ranges
    session.delete_table(ranges)


# -- the oracle ----------------------------------------------------------------------


def _in_range(op: str, value: Any, operand: Any) -> bool:
    if op == "between":
        return bool(operand[0] <= value <= operand[1])
    return {
        "gt": value > operand,
        "ge": value >= operand,
        "lt": value < operand,
        "le": value <= operand,
    }[op]


def oracle(
    items: list[Task],
    order: tuple[str, ...],
    fixed: dict[str, Any],
    op: str,
    field: str,
    operand: Any,
) -> list[Task]:
    """The items a query must return, in ascending sort-key order, computed on values."""
    kept = [
        item
        for item in items
        if all(getattr(item, name) == value for name, value in fixed.items())
        and _in_range(op, getattr(item, field), operand)
    ]
    # Strings compare by code point (= UTF-8 byte order), numbers and times by value.
    return sorted(kept, key=lambda item: tuple(getattr(item, name) for name in order))


# -- strategies ----------------------------------------------------------------------

statuses = st.text(alphabet="ab#$é\U0001f600", min_size=1, max_size=3)
priorities = st.integers(min_value=-1000, max_value=1000)
times = st.integers(min_value=-3, max_value=3).map(lambda h: BASE + dt.timedelta(hours=h))


@st.composite
def task_lists(draw: st.DrawFn) -> list[Task]:
    """1 to 14 tasks over few distinct slot values, so prefixes and ranges share items."""
    status_pool = draw(st.lists(statuses, min_size=1, max_size=3, unique=True))
    priority_pool = draw(st.lists(priorities, min_size=1, max_size=3, unique=True))
    count = draw(st.integers(min_value=1, max_value=14))
    # Distinct times keep index order total (a GSI sort key need not be unique).
    stamps = draw(st.lists(st.integers(0, 10**6), min_size=count, max_size=count, unique=True))
    return [
        Task(
            project="",
            status=draw(st.sampled_from(status_pool)),
            priority=draw(st.sampled_from(priority_pool)),
            created_at=BASE + dt.timedelta(seconds=stamp - 500_000),
            task_id=f"t{n}",
            owner="",
        )
        for n, stamp in enumerate(stamps)
    ]


def _value_for(draw: st.DrawFn, field: str, items: list[Task]) -> Any:
    """A slot value: one the items hold (boundaries matter) or a fresh one."""
    fresh = {
        "status": statuses,
        "priority": priorities,
        "created_at": times,
        "task_id": st.sampled_from(["t", "t0", "t5", "t9", "u"]),
    }[field]
    held = [getattr(item, field) for item in items]
    return draw(st.sampled_from(held) | fresh if held else fresh)


@st.composite
def range_calls(
    draw: st.DrawFn, items: list[Task], order: tuple[str, ...]
) -> tuple[dict[str, Any], str, str, Any]:
    """(fixed slots, op, ranged field, operand) with a random fixed prefix of `order`."""
    depth = draw(st.sampled_from([0, *range(1, len(order)), *range(1, len(order))]))
    # Mostly an existing item's prefix, so the range has items to select from.
    model = draw(st.sampled_from(items)) if items and draw(st.integers(0, 3)) else None
    fixed = {
        name: getattr(model, name) if model is not None else _value_for(draw, name, items)
        for name in order[:depth]
    }
    field = order[depth]
    op = draw(st.sampled_from(["between", "gt", "ge", "lt", "le"]))
    if op == "between":
        lo, hi = _value_for(draw, field, items), _value_for(draw, field, items)
        return fixed, op, field, (min(lo, hi), max(lo, hi)) if draw(st.booleans()) else (lo, hi)
    return fixed, op, field, _value_for(draw, field, items)


def _run(
    session: Session,
    target: Any,
    partition: dict[str, Any],
    fixed: dict[str, Any],
    op: str,
    field: str,
    operand: Any,
    in_query: int,
) -> tuple[list[Task], list[Task]]:
    """Fixed slots split between `session.query(...)` (the first `in_query`) and the call."""
    names = list(fixed)
    query = session.query(target, **partition, **{n: fixed[n] for n in names[:in_query]})
    ranged = getattr(query, op)(**{n: fixed[n] for n in names[in_query:]}, **{field: operand})
    return ranged.all(), ranged.reverse().all()


@IO
@given(data=st.data(), items=task_lists())
def test_primary_key_ranges_match_the_oracle(
    session: Session, table: Table, data: st.DataObject, items: list[Task]
) -> None:
    project = f"p{next(_projects)}"
    items = [item.model_copy(update={"project": project, "owner": project}) for item in items]
    if items:
        session.batch_write(put=items)
    fixed, op, field, operand = data.draw(range_calls(items, PRIMARY))
    in_query = data.draw(st.integers(min_value=0, max_value=len(fixed)))
    expected = oracle(items, PRIMARY, fixed, op, field, operand)
    event(f"{len(fixed)} fixed, {'some' if expected else 'no'} items")
    got, backwards = _run(session, Task, {"project": project}, fixed, op, field, operand, in_query)
    assert got == expected
    assert backwards == expected[::-1]


@IO
@given(data=st.data(), items=task_lists())
def test_index_ranges_match_the_oracle(
    session: Session, table: Table, data: st.DataObject, items: list[Task]
) -> None:
    owner = f"o{next(_projects)}"
    items = [item.model_copy(update={"project": owner, "owner": owner}) for item in items]
    if items:
        session.batch_write(put=items)
    fixed, op, field, operand = data.draw(range_calls(items, INDEX))
    in_query = data.draw(st.integers(min_value=0, max_value=len(fixed)))
    expected = oracle(items, INDEX, fixed, op, field, operand)
    event(f"{len(fixed)} fixed, {'some' if expected else 'no'} items")
    got, backwards = _run(
        session, Task.by_owner, {"owner": owner}, fixed, op, field, operand, in_query
    )
    assert got == expected
    assert backwards == expected[::-1]


# -- exact requests --------------------------------------------------------------------


def test_between_with_a_fixed_slot_sends_one_between(
    session: Session, table: Table, recorder: Recorder
) -> None:
    lo, hi = BASE, BASE + dt.timedelta(days=1)
    query = session.query(Task, project="p").between(status="open", priority=2, created_at=(lo, hi))
    same = session.query(Task, project="p", status="open", priority=2).between(created_at=(lo, hi))
    assert query.to_request() == same.to_request()
    query.all()
    ((operation, params),) = recorder.calls
    assert operation == "Query"
    assert params["KeyConditionExpression"] == "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2"
    assert params["ExpressionAttributeValues"] == {
        ":v0": {"S": "P#p"},
        ":v1": {"S": "T#open#" + _enc("priority", 2) + "#" + _enc("created_at", lo) + "#"},
        ":v2": {"S": "T#open#" + _enc("priority", 2) + "#" + _enc("created_at", hi) + "$"},
    }


def test_gt_with_a_fixed_slot_stays_within_that_slot(
    session: Session, table: Table, recorder: Recorder
) -> None:
    query = session.query(Task.by_owner, owner="o").gt(status="open", created_at=BASE)
    query.all()
    ((_, params),) = recorder.calls
    assert params["IndexName"] == query.plan().index_name
    assert params["KeyConditionExpression"] == "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2"
    assert params["ExpressionAttributeValues"] == {
        ":v0": {"S": "O#o"},
        ":v1": {"S": "open#" + _enc("created_at", BASE) + "$"},
        ":v2": {"S": "open$"},
    }


def _enc(field: str, value: Any) -> str:
    template = Task.__dynaorm__.sk
    (slot,) = [s for s in template.segments if getattr(s, "field", None) == field]
    text: str = slot.codec.encode(value)  # type: ignore[union-attr]
    return text


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (
            lambda q: q.between(priority=1, created_at=(BASE, BASE)),
            ["Task", "not a prefix", "['status']", "'created_at'"],
        ),
        (
            lambda q: q.between(status=("a", "b"), priority=(1, 2)),
            ["Task", "'status'", "only the last given slot, 'priority'"],
        ),
        (
            lambda q: q.gt(status=["a"], priority=1),
            ["Task", "'status'", "only the last given slot, 'priority'"],
        ),
        (
            lambda q: q.lt(status="a", owner="x"),
            ["Task", "['owner']", "not sort-key slots"],
        ),
        (
            lambda q: q.ge(status="b", priority=1),
            ["Task", "fixes 'status' = 'b' but the query has 'a'"],
        ),
    ],
)
def test_bad_multi_slot_ranges_are_refused_before_sending(
    session: Session, table: Table, recorder: Recorder, build: Any, words: list[str]
) -> None:
    base = session.query(Task, project="p")
    if "the query has" in words[-1]:
        base = session.query(Task, project="p", status="a")
    with pytest.raises(KeyEncodingError) as caught:
        build(base).all()
    for word in words:
        assert word in str(caught.value)
    assert caught.value.entity == "Task"
    assert recorder.calls == []


def test_a_slot_fixed_after_the_range_is_refused(session: Session, table: Table) -> None:
    query = session.query(Task, project="p", created_at=BASE)
    with pytest.raises(KeyEncodingError, match=r"query fixes \['created_at'\] after it"):
        query.gt(status="a", priority=1)


def test_an_index_refusal_names_the_index(session: Session, table: Table) -> None:
    with pytest.raises(
        KeyEncodingError, match=r"Task\.by_owner: \.between\(created_at=\.\.\., task_id"
    ):
        session.query(Task.by_owner, owner="o").between(created_at=BASE, task_id=("a", "b"))


def test_a_matching_query_slot_is_accepted(session: Session, table: Table) -> None:
    one = session.query(Task, project="p", status="a").gt(status="a", priority=1)
    two = session.query(Task, project="p").gt(status="a", priority=1)
    assert one.to_request() == two.to_request()


def test_a_multi_slot_range_pages_with_cursors(session: Session, table: Table) -> None:
    tasks = [
        Task(
            project="p",
            status="open" if n % 3 else "done",
            priority=n % 2,
            created_at=BASE + dt.timedelta(minutes=n),
            task_id=f"t{n}",
            owner="o",
        )
        for n in range(12)
    ]
    session.batch_write(put=tasks)
    query = session.query(Task, project="p").ge(status="open", priority=1)
    pages, cursor = [], None
    while True:
        page = query.page(2, cursor=cursor)
        pages.extend(page.items)
        if (cursor := page.cursor) is None:
            break
    expected = oracle(tasks, PRIMARY, {"status": "open"}, "ge", "priority", 1)
    assert pages == query.all() == expected
    assert len(expected) == 4  # open (n % 3 != 0) and odd: t1, t5, t7, t11
