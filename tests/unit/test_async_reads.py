"""Reads of many items on the async shell: the very requests of the sync shell, lazily.

Both shells run against one canned transport that serves a partition page by page (it
ignores expressions: what is asserted here is what each shell sends and how it pages).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any, cast

import pytest

from dynaorm import AsyncSession, Collection, Entity, Index, Session, Table
from dynaorm._items import entity_to_item
from dynaorm._transport import Transport
from dynaorm.errors import BatchIncomplete, InvalidCursor, Throttled
from tests.async_host import async_twin

app = Table("reads")
KEYS = ("PK", "SK", "GSI1PK", "GSI1SK")
START = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)


class Author(Entity, table=app, pk="AUTHOR#{author_id}", sk="PROFILE"):
    author_id: str
    name: str


class Note(Entity, table=app, pk="AUTHOR#{author_id}", sk="NOTE#{written}#{note_id}"):
    author_id: str
    note_id: str
    written: dt.datetime
    stars: int = 0
    tag: str | None = None

    by_tag = Index(pk="TAG#{tag}", sk="{written}")


shelf = Collection(Author, Note)


def notes(count: int) -> list[Note]:
    return [
        Note(author_id="a1", note_id=f"n{n:02d}", written=START + dt.timedelta(hours=n), stars=n)
        for n in range(count)
    ]


class Canned:
    """A transport answering Query and Scan with `items`, `page` at a time (or `Limit`),
    from the item after ExclusiveStartKey on; batches store and read by key. Every request
    is recorded; `fail_at` makes that call (1-based) fail as throttled."""

    def __init__(self, items: list[dict[str, Any]], page: int = 2) -> None:
        self.items, self.page = items, page
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail_at: int | None = None
        self.leave_over = 0  # BatchWriteItem calls that hand all but one request back

    def table_name(self, name: str) -> str:
        return f"t_{name}"

    def call(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        self.sent.append((operation, copy.deepcopy(params)))
        if self.fail_at == len(self.sent):
            raise Throttled(f"{operation} throttled", operation=operation, table="t_reads")
        if operation in ("Query", "Scan"):
            return self._page(params)
        if operation == "BatchGetItem":
            ((table, body),) = params["RequestItems"].items()
            wanted = [(k["PK"], k["SK"]) for k in body["Keys"]]
            found = [i for i in self.items if (i["PK"], i["SK"]) in wanted]
            return {"Responses": {table: found}, "UnprocessedKeys": {}}
        ((table, requests),) = params["RequestItems"].items()
        if self.leave_over and len(requests) > 1:
            self.leave_over -= 1
            return {"UnprocessedItems": {table: requests[1:]}}
        return {"UnprocessedItems": {}}

    def _page(self, params: dict[str, Any]) -> dict[str, Any]:
        items = self.items if params.get("ScanIndexForward", True) else self.items[::-1]
        start = 0
        if "ExclusiveStartKey" in params:
            after = params["ExclusiveStartKey"]
            start = 1 + next(n for n, i in enumerate(items) if i["SK"] == after["SK"])
        size = min(self.page, params.get("Limit", self.page))
        chunk = items[start : start + size]
        response: dict[str, Any] = {"Items": chunk, "Count": len(chunk)}
        if start + size < len(items):
            response["LastEvaluatedKey"] = {k: v for k, v in chunk[-1].items() if k in KEYS}
        return response


def shells(items: list[Entity], page: int = 2) -> tuple[Canned, Session, AsyncSession]:
    canned = Canned([entity_to_item(e) for e in items], page)
    session = Session(transport=cast(Transport, canned), cursor_secret=b"secret")
    return canned, session, async_twin(session)


def both(
    read: Callable[[Any], Any], aread: Callable[[Any], Awaitable[Any]], items: list[Entity]
) -> Callable[[], Awaitable[tuple[Any, Any, Canned]]]:
    """Run `read` on the sync session and `aread` on the async host; the results and the
    requests each sent (asserted equal)."""

    async def run() -> tuple[Any, Any, Canned]:
        canned, session, host = shells(items)
        result = read(session)
        sync_sent, canned.sent = canned.sent, []
        aresult = await aread(host)
        # Segments of a parallel scan go out concurrently: compare what was sent, not when.
        assert sorted(map(repr, canned.sent)) == sorted(map(repr, sync_sent)) and sync_sent
        if not any("Segment" in params for _, params in sync_sent):
            assert canned.sent == sync_sent
        return result, aresult, canned

    return run


QUERIES: dict[str, Callable[[Any], Any]] = {
    "plain": lambda s: s.query(Note, author_id="a1"),
    "range, reverse, limit": lambda s: (
        s.query(Note, author_id="a1")
        .between(written=(START, START + dt.timedelta(hours=5)))
        .reverse()
        .limit(3)
    ),
    "filter": lambda s: s.query(Note, author_id="a1").where(Note.stars >= 2),
    "projection": lambda s: s.query(Note, author_id="a1").project("stars", "tag"),
    "consistent": lambda s: s.query(Note, author_id="a1").consistent().limit(4),
    "index": lambda s: s.query(Note.by_tag, tag="t"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", QUERIES)
@pytest.mark.parametrize("method", ["all", "first", "count", "keys"])
async def test_query_sends_the_same_requests_on_both_shells(name: str, method: str) -> None:
    build = QUERIES[name]
    items = [n.model_copy(update={"tag": "t"}) for n in notes(7)]

    async def aread(host: AsyncSession) -> Any:
        return await getattr(build(host), method)()

    result, aresult, _ = await both(lambda s: getattr(build(s), method)(), aread, items)()

    assert aresult == result


@pytest.mark.asyncio
async def test_the_query_request_is_exact() -> None:
    _, aresult, canned = await both(
        lambda s: s.query(Note, author_id="a1").where(Note.stars >= 1).limit(2).all(),
        lambda h: h.query(Note, author_id="a1").where(Note.stars >= 1).limit(2).all(),
        notes(3),
    )()

    assert [n.note_id for n in aresult] == ["n00", "n01"]
    assert canned.sent == [
        (
            "Query",
            {
                "TableName": "t_reads",
                "KeyConditionExpression": "#n0 = :v0 AND begins_with(#n1, :v1)",
                "FilterExpression": "#n2 >= :v2",
                "ExpressionAttributeNames": {"#n0": "PK", "#n1": "SK", "#n2": "stars"},
                "ExpressionAttributeValues": {
                    ":v0": {"S": "AUTHOR#a1"},
                    ":v1": {"S": "NOTE#"},
                    ":v2": {"N": "1"},
                },
            },
        )
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("segments", [1, 3])
async def test_scan_sends_the_same_requests_on_both_shells(segments: int) -> None:
    items: list[Entity] = [*notes(5)]
    result, aresult, canned = await both(
        lambda s: s.scan(Note).segments(segments).where(Note.stars > 0).all(),
        lambda h: h.scan(Note).segments(segments).where(Note.stars > 0).all(),
        items,
    )()

    assert aresult == result
    # The canned transport ignores the filter: every Note of each segment comes back.
    assert len(result) == 5 * segments
    assert {p.get("Segment") for _, p in canned.sent} == ({None} if segments == 1 else {0, 1, 2})


COLLECTIONS: dict[str, Callable[[Any], Any]] = {
    "plain": lambda s: s.collection_query(shelf, author_id="a1"),
    "reverse, limit": lambda s: s.collection_query(shelf, author_id="a1").reverse().limit(3),
    "consistent": lambda s: s.collection_query(shelf, author_id="a1").consistent(),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", COLLECTIONS)
async def test_collection_sends_the_same_requests_on_both_shells(name: str) -> None:
    build = COLLECTIONS[name]
    items: list[Entity] = [*notes(4), Author(author_id="a1", name="Ann")]

    result, aresult, _ = await both(lambda s: build(s).all(), lambda h: build(h).all(), items)()

    assert aresult[Author] == result[Author] and aresult[Note] == result[Note]
    assert len(result) == (3 if "limit" in name else 5)


@pytest.mark.asyncio
async def test_collection_shortcut_reads_the_partition() -> None:
    _, aresult, _ = await both(
        lambda s: s.collection(shelf, author_id="a1"),
        lambda h: h.collection(shelf, author_id="a1"),
        [*notes(3), Author(author_id="a1", name="Ann")],
    )()

    assert [a.name for a in aresult[Author]] == ["Ann"] and len(aresult[Note]) == 3


@pytest.mark.asyncio
async def test_a_cursor_from_either_shell_resumes_the_other() -> None:
    canned, session, host = shells(notes(7), page=3)
    query = session.query(Note, author_id="a1")
    aquery = host.query(Note, author_id="a1")

    first = query.page(2)
    second = await aquery.page(2, cursor=first.cursor)
    third = query.page(2, cursor=second.cursor)
    last = await aquery.page(2, cursor=third.cursor)

    seen = [n.note_id for page in (first, second, third, last) for n in page.items]
    assert seen == [f"n{n:02d}" for n in range(7)]
    assert last.cursor is None
    sent_keys = [p.get("ExclusiveStartKey", {}).get("SK") for _, p in canned.sent]
    assert sent_keys[0] is None and None not in sent_keys[1:]


@pytest.mark.asyncio
async def test_a_collection_cursor_from_either_shell_resumes_the_other() -> None:
    _, session, host = shells([*notes(4), Author(author_id="a1", name="Ann")])

    first = await host.collection_query(shelf, author_id="a1").page(3)
    rest = session.collection_query(shelf, author_id="a1").page(3, cursor=first.cursor)
    with pytest.raises(InvalidCursor):  # bound to the direction it was made for
        await host.collection_query(shelf, author_id="a1").reverse().page(3, first.cursor)

    assert len(first.items) == 3 and len(rest.items) == 2 and rest.cursor is None
    assert rest.result[Author] == [Author(author_id="a1", name="Ann")]


@pytest.mark.asyncio
async def test_async_cursors_are_sealed_and_bound_to_their_query() -> None:
    _, _, host = shells(notes(5))
    page = await host.query(Note, author_id="a1").page(2)
    assert page.cursor is not None

    with pytest.raises(InvalidCursor):
        await host.query(Note, author_id="a2").page(2, cursor=page.cursor)
    with pytest.raises(InvalidCursor):
        await host.query(Note, author_id="a1").page(2, cursor=page.cursor[:-2] + "AA")


@pytest.mark.asyncio
async def test_async_iteration_fetches_only_the_pages_consumed() -> None:
    canned, _, host = shells(notes(9), page=2)
    query = host.query(Note, author_id="a1")
    seen: list[str] = []

    async with aclosing(query.__aiter__()) as entities:
        assert canned.sent == []  # nothing is sent before the first item is asked for
        async for note in entities:
            seen.append(note.note_id)
            if len(seen) == 3:
                break

    assert seen == ["n00", "n01", "n02"]
    assert [op for op, _ in canned.sent] == ["Query", "Query"]  # 2 pages of 2, not 5


@pytest.mark.asyncio
async def test_async_iteration_of_a_limited_query_and_a_collection() -> None:
    canned, _, host = shells([*notes(5), Author(author_id="a1", name="Ann")], page=2)

    limited = [n.note_id async for n in host.query(Note, author_id="a1").limit(3)]
    sent_by_query, canned.sent = len(canned.sent), []
    members = [type(e).__name__ async for e in host.collection_query(shelf, author_id="a1")]
    scanned = [n.note_id async for n in host.scan(Note).limit(2)]

    assert limited == ["n00", "n01", "n02"] and sent_by_query == 2
    assert members == ["Note"] * 5 + ["Author"]
    assert scanned == ["n00", "n01"]


def throttled_at(call: int) -> tuple[Canned, Session, AsyncSession]:
    canned, session, host = shells(notes(9), page=2)
    canned.fail_at = call
    return canned, session, host


@pytest.mark.asyncio
async def test_a_fault_mid_pages_surfaces_as_the_same_error_on_both_shells() -> None:
    canned, session, host = throttled_at(3)
    with pytest.raises(Throttled) as sync_error:
        session.query(Note, author_id="a1").all()
    canned.sent, canned.fail_at = [], 3
    with pytest.raises(Throttled) as async_error:
        await host.query(Note, author_id="a1").all()
    canned.sent, canned.fail_at = [], 2
    seen: list[str] = []

    async def consume() -> None:
        async for note in host.query(Note, author_id="a1"):
            seen.append(note.note_id)

    with pytest.raises(Throttled) as iter_error:
        await consume()

    assert str(async_error.value) == str(sync_error.value) == str(iter_error.value)
    assert seen == ["n00", "n01"]  # the page read before the fault was handed out


@pytest.mark.asyncio
async def test_batches_retry_leftovers_with_the_same_requests_and_recorded_delays() -> None:
    written = notes(30)
    canned, session, host = shells(written)
    sync_delays: list[float] = []
    async_delays: list[float] = []
    session._batches.retry.sleep = sync_delays.append
    host._batches.retry.sleep = async_delays.append

    canned.leave_over = 2
    session.batch_write(put=written)
    sync_sent, canned.sent = canned.sent, []
    canned.leave_over = 2
    await host.batch_write(put=written)

    assert canned.sent == sync_sent
    assert [len(next(iter(p["RequestItems"].values()))) for _, p in sync_sent] == [25, 24, 23, 5]
    assert len(sync_delays) == len(async_delays) == 2
    keys = [n.get_key() for n in written[:3]]
    assert await host.batch_get(keys) == session.batch_get(keys) == written[:3]


@pytest.mark.asyncio
async def test_an_async_batch_that_runs_out_of_attempts_says_what_was_not_written() -> None:
    canned, _, host = shells([])
    host._batches.retry.sleep = lambda _: None
    host._batches.retry.attempts = 2
    canned.leave_over = 5

    with pytest.raises(BatchIncomplete) as error:
        await host.batch_write(put=notes(3))

    # Each attempt wrote one request and handed the rest back; the budget is 2 attempts.
    assert [n.note_id for n in error.value.unprocessed] == ["n02"]
    assert [n.note_id for n in error.value.written] == ["n00", "n01"]
    assert isinstance(error.value.reasons[0], Throttled)
