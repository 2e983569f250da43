"""Requests as values: the sans-I/O core yields them, a sync or an async shell sends them.

Every operation of a session (a get, a planned write, a query page, a batch with its
retries, a table waited for) is written once, as a generator of steps:

    def get_steps(...) -> Steps[Entity | None]:
        response = yield Call("GetItem", request, entity="User", key=key)
        return decode(response)

A `Call` is answered with the response dict, or the transport's `RequestError` is
thrown into the generator at that `yield` (so `try`/`except` around it reads like a
blocking call). A `Sleep` is answered with None once the time has passed. Generators
compose with `yield from`. `drive` runs steps on a blocking transport; `adrive` runs the
very same steps on an async one. Neither knows anything about DynamoDB.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar

from dynaorm.errors import RequestError

__all__ = ["AsyncCaller", "Call", "Caller", "Sleep", "Step", "Steps", "adrive", "drive"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """Send one request; the answer is its response dict, or its `RequestError` raised."""

    operation: str
    params: dict[str, Any]
    entity: str | None = None  # for error messages and telemetry only
    key: Any = None  # likewise


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait `seconds` (a backoff, a poll interval); the answer is None.

    `sleep` is who waits on a blocking shell (a `Backoff`'s, which tests replace to record
    delays instead of waiting); None is `time.sleep`. The async shell awaits
    `asyncio.sleep` unless that function was replaced, and then calls the replacement.
    """

    seconds: float
    sleep: Callable[[float], None] | None = None


Step: TypeAlias = Call | Sleep
Steps: TypeAlias = Generator[Step, Any, T]


class Caller(Protocol):
    """What `drive` needs of a blocking transport."""

    def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]: ...


class AsyncCaller(Protocol):
    """What `adrive` needs of an async transport."""

    async def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]: ...


def drive(steps: Steps[T], transport: Caller, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `steps` to the end on a blocking transport and return their result.

    Only `RequestError`s (what DynamoDB or the network answered) are thrown back into the
    steps; any other exception is a bug and propagates from here.
    """
    answer: Any = None
    failure: RequestError | None = None
    while True:
        try:
            step = steps.send(answer) if failure is None else steps.throw(failure)
        except StopIteration as done:
            result: T = done.value
            return result
        answer, failure = None, None
        if isinstance(step, Sleep):
            (step.sleep or sleep)(step.seconds)
            continue
        try:
            answer = transport.call(
                step.operation,
                step.params,
                table=step.params.get("TableName"),
                entity=step.entity,
                key=step.key,
            )
        except RequestError as error:
            failure = error


async def adrive(steps: Steps[T], transport: AsyncCaller) -> T:
    """Run `steps` to the end on an async transport: `drive`, awaiting instead of blocking."""
    answer: Any = None
    failure: RequestError | None = None
    while True:
        try:
            step = steps.send(answer) if failure is None else steps.throw(failure)
        except StopIteration as done:
            result: T = done.value
            return result
        answer, failure = None, None
        if isinstance(step, Sleep):
            if step.sleep is None or step.sleep is time.sleep:
                import asyncio  # noqa: PLC0415 - loaded by the running loop; not at import

                await asyncio.sleep(step.seconds)
            else:
                step.sleep(step.seconds)  # a test's recorder: returns at once
            continue
        try:
            answer = await transport.call(
                step.operation,
                step.params,
                table=step.params.get("TableName"),
                entity=step.entity,
                key=step.key,
            )
        except RequestError as error:
            failure = error
