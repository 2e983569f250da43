"""AsyncSession sends exactly what Session sends: the same steps, only awaited."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from dynaorm import AsyncSession, Entity, Index, Session, Table
from dynaorm._io import Call, Sleep
from dynaorm._items import entity_to_item
from dynaorm.errors import ConditionFailed, TransactionCanceled, VersionConflict

shop = Table("unit_async", ttl="expires_at")
_run = itertools.count()


class Customer(
    Entity,
    table=shop,
    pk="CUSTOMER#{customer_id}",
    sk="PROFILE",
    unique=("email",),
    version="version",
):
    customer_id: str
    email: str
    name: str
    version: int = 0

    by_email = Index(pk="EMAIL#{email}")


class Canned:
    """An async transport answering from a script, recording (operation, params)."""

    def __init__(self, answers: list[dict[str, Any] | Exception]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def call(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.sent.append((operation, params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def table_name(self, logical: str) -> str:
        return f"p_{logical}"


@pytest.mark.asyncio
async def test_get_sends_one_get_item_and_decodes_the_entity() -> None:
    ann = Customer(customer_id="c1", email="ann@example.com", name="Ann", version=2)
    transport = Canned([{"Item": entity_to_item(ann)}])
    session = AsyncSession(transport=transport)

    found = await session.get(Customer, customer_id="c1", consistent=True)

    assert found == ann
    assert transport.sent == [
        (
            "GetItem",
            {
                "TableName": "p_unit_async",
                "Key": {"PK": {"S": "CUSTOMER#c1"}, "SK": {"S": "PROFILE"}},
                "ConsistentRead": True,
            },
        )
    ]


@pytest.mark.asyncio
async def test_a_conflicting_transaction_is_resent_with_the_same_token_after_a_backoff() -> None:
    conflict = TransactionCanceled(
        "conflict", reasons=[{"Code": "TransactionConflict"}, {"Code": "None"}]
    )
    transport = Canned([conflict, {}])
    session = AsyncSession(transport=transport)
    delays: list[float] = []
    session._batches.retry.sleep = delays.append

    await session.create(Customer(customer_id="c1", email="ann@example.com", name="Ann"))

    assert [operation for operation, _ in transport.sent] == ["TransactWriteItems"] * 2
    first, second = (params for _, params in transport.sent)
    assert first == second and first["ClientRequestToken"]
    assert len(delays) == 1


@pytest.mark.asyncio
async def test_a_version_conflict_is_the_same_error_as_on_the_sync_session() -> None:
    stored = Customer(customer_id="c1", email="ann@example.com", name="Ann", version=5)
    refused = ConditionFailed("refused")
    refused.stored = entity_to_item(stored)
    transport = Canned([refused])
    session = AsyncSession(transport=transport)
    stale = Customer(customer_id="c1", email="ann@example.com", name="Ann", version=3)

    with pytest.raises(VersionConflict):
        await session.update(stale, set={"name": "Anne"})
    assert [operation for operation, _ in transport.sent] == ["UpdateItem"]


def _scenario_sync(session: Session) -> None:
    session.create_table(shop)
    ann = Customer(customer_id="c1", email="ann@example.com", name="Ann")
    session.create(ann)
    found = session.get(Customer, customer_id="c1")
    assert found is not None
    session.update(found, set={"name": "Anne"})
    found.email = "anne@example.com"
    session.put(found)
    with session.unit_of_work() as uow:
        loaded = uow.get(Customer, customer_id="c1")
        assert loaded is not None
        loaded.name = "A."
        uow.add(Customer(customer_id="c2", email="bob@example.com", name="Bob"))
    assert session.bulk(put=[Customer(customer_id="c3", email="c@example.com", name="C")]).ok
    session.delete(Customer.key(customer_id="c2"))
    assert session.drift(shop) == []
    assert session.health_check(shop)
    session.delete_table(shop)


async def _scenario_async(session: AsyncSession) -> None:
    await session.create_table(shop)
    ann = Customer(customer_id="c1", email="ann@example.com", name="Ann")
    await session.create(ann)
    found = await session.get(Customer, customer_id="c1")
    assert found is not None
    await session.update(found, set={"name": "Anne"})
    found.email = "anne@example.com"
    await session.put(found)
    async with session.unit_of_work() as uow:
        loaded = await uow.get(Customer, customer_id="c1")
        assert loaded is not None
        loaded.name = "A."
        uow.add(Customer(customer_id="c2", email="bob@example.com", name="Bob"))
    result = await session.bulk(put=[Customer(customer_id="c3", email="c@example.com", name="C")])
    assert result.ok
    await session.delete(Customer.key(customer_id="c2"))
    assert await session.drift(shop) == []
    assert await session.health_check(shop)
    await session.delete_table(shop)


def _normalized(calls: list[tuple[str, Any]], prefix: str) -> list[tuple[str, str]]:
    """Requests with the table prefix and the (random) transaction token taken out."""
    out = []
    for operation, params in calls:
        kept = {k: v for k, v in params.items() if k != "ClientRequestToken"}
        out.append((operation, repr(kept).replace(prefix, "<prefix>")))
    return out


def test_async_session_sends_exactly_the_requests_of_the_sync_session() -> None:
    sync_prefix, async_prefix = f"s{next(_run)}_", f"a{next(_run)}_"
    sync_calls: list[tuple[str, Any]] = []
    async_calls: list[tuple[str, Any]] = []
    sync_session = Session.in_memory(table_prefix=sync_prefix)
    sync_session.transport.add_listener(lambda op, params, *_: sync_calls.append((op, params)))
    _scenario_sync(sync_session)

    async def run() -> None:
        async with AsyncSession.in_memory(table_prefix=async_prefix) as session:
            session.transport.add_listener(lambda op, params, *_: async_calls.append((op, params)))
            await _scenario_async(session)

    asyncio.run(run())

    assert len(sync_calls) > 10
    assert _normalized(async_calls, async_prefix) == _normalized(sync_calls, sync_prefix)


def test_create_table_polls_with_a_sleep_between_describes_no_transport_needed() -> None:
    session = AsyncSession(transport=Canned([]))
    steps = session._create_table_steps(shop, wait=True, exists_ok=False)
    creating = {"Table": {"TableStatus": "CREATING"}}
    active = {"Table": {"TableStatus": "ACTIVE"}}

    seen = [steps.send(None)]
    for answer in ({}, creating, None, active, {}):
        try:
            seen.append(steps.send(answer))
        except StopIteration:
            break

    kinds = [(s.operation if isinstance(s, Call) else f"sleep {s.seconds}") for s in seen]
    assert kinds == [
        "CreateTable",
        "DescribeTable",
        "sleep 0.2",
        "DescribeTable",
        "UpdateTimeToLive",
    ]
    assert all(isinstance(s, (Call, Sleep)) for s in seen)
    assert seen[-1].params == {  # type: ignore[union-attr]
        "TableName": "p_unit_async",
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires_at"},
    }


@pytest.mark.asyncio
async def test_create_table_awaits_until_active_and_enables_ttl() -> None:
    creating = {
        "Table": {"TableStatus": "ACTIVE", "GlobalSecondaryIndexes": [{"IndexStatus": "CREATING"}]}
    }
    active = {
        "Table": {"TableStatus": "ACTIVE", "GlobalSecondaryIndexes": [{"IndexStatus": "ACTIVE"}]}
    }
    transport = Canned([{}, creating, active, {}])
    session = AsyncSession(transport=transport)

    await session.create_table(shop)

    operations = [operation for operation, _ in transport.sent]
    assert operations == ["CreateTable", "DescribeTable", "DescribeTable", "UpdateTimeToLive"]
