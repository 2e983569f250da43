"""The step protocol: one generator, driven by a blocking and by an async shell alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dynaorm._io import Call, Sleep, Steps, adrive, drive
from dynaorm.errors import ConditionFailed


def steps() -> Steps[list[Any]]:
    seen: list[Any] = []
    seen.append((yield Call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}})))
    seen.append((yield Sleep(0.25)))
    seen.append((yield Sleep(0.5, recorded.append)))
    try:
        yield Call("PutItem", {"TableName": "t"}, entity="User", key="k")
    except ConditionFailed as error:
        seen.append(error.message)
    return seen


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, str | None, Any]] = []

    def answer(self, operation: str, table: str | None, entity: str | None, key: Any) -> Any:
        self.sent.append((operation, table, entity, key))
        if operation == "PutItem":
            raise ConditionFailed("taken")
        if operation == "DeleteItem":
            raise KeyError("a bug, not an answer")
        return {"Item": {"pk": {"S": "a"}}}


class Blocking(Recorder):
    def call(self, operation: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self.answer(operation, kw["table"], kw["entity"], kw["key"])  # type: ignore[no-any-return]


class Async(Recorder):
    async def call(self, operation: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self.answer(operation, kw["table"], kw["entity"], kw["key"])  # type: ignore[no-any-return]


EXPECTED_SENT = [("GetItem", "t", None, None), ("PutItem", "t", "User", "k")]
EXPECTED_RESULT = [{"Item": {"pk": {"S": "a"}}}, None, None, "taken"]
recorded: list[float] = []


def test_drive_answers_calls_sleeps_and_throws_request_errors_in() -> None:
    transport, slept = Blocking(), []

    result = drive(steps(), transport, slept.append)

    assert result == EXPECTED_RESULT
    assert transport.sent == EXPECTED_SENT
    assert slept == [0.25]
    assert recorded.pop() == 0.5  # a Backoff's own (replaced) sleep, not the driver's


def test_adrive_runs_the_same_steps_to_the_same_result() -> None:
    transport = Async()

    result = asyncio.run(adrive(steps(), transport))

    assert result == EXPECTED_RESULT
    assert transport.sent == EXPECTED_SENT
    assert recorded.pop() == 0.5


def bug() -> Steps[None]:
    yield Call("DeleteItem", {"TableName": "t"})


def test_anything_but_a_request_error_propagates_from_the_driver() -> None:
    with pytest.raises(KeyError):
        drive(bug(), Blocking())
    with pytest.raises(KeyError):
        asyncio.run(adrive(bug(), Async()))


def unhandled() -> Steps[None]:
    yield Call("PutItem", {"TableName": "t"})


def test_a_request_error_the_steps_do_not_handle_reaches_the_caller() -> None:
    with pytest.raises(ConditionFailed):
        drive(unhandled(), Blocking())
    with pytest.raises(ConditionFailed):
        asyncio.run(adrive(unhandled(), Async()))
