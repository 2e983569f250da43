"""The sans-I/O batch plan, driven with canned answers and no transport at all."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm._batch_plan import BatchPlan, Ident
from dynaorm._io import Call, Sleep, Step, Steps
from dynaorm._retry import Backoff
from dynaorm.errors import RequestError, ServiceError, TableNotFound, Throttled

TABLE = "app"
KEY_NAMES = {TABLE: ("PK", "SK")}


def ident(n: int) -> Ident:
    return (TABLE, f"P#{n}", f"S#{n}")


def key_of(i: Ident) -> dict[str, Any]:
    return {"PK": {"S": i[1]}, "SK": {"S": i[2]}}


def put_of(i: Ident) -> dict[str, Any]:
    return {"PutRequest": {"Item": {**key_of(i), "n": {"N": "1"}}}}


Outcome = dict[str, Any] | RequestError | None


class Numbered(Backoff):
    """Sleeps as long as the retry's number, so a test can read which retry it was."""

    def delay(self, attempt: int) -> float:
        return float(attempt)


def batch_plan(attempts: int) -> BatchPlan:
    return BatchPlan(KEY_NAMES, retry=Numbered(attempts=attempts))


def run(steps: Steps[Any], answer: Any) -> tuple[Any, list[Step]]:
    """Drive a plan: `answer(call)` returns a response dict, or an error thrown back in."""
    seen: list[Step] = []
    outcome: Outcome = None
    while True:
        try:
            if isinstance(outcome, RequestError):
                step = steps.throw(outcome)
            else:
                step = steps.send(outcome)
        except StopIteration as done:
            return done.value, seen
        seen.append(step)
        outcome = None if isinstance(step, Sleep) else answer(step)


ERRORS: list[RequestError] = [
    Throttled("throttled", operation="BatchWriteItem"),
    ServiceError("500", aws_code="InternalServerError"),
    ServiceError("dropped", aws_code="ReadTimeoutError"),
    ServiceError("refused", aws_code="ValidationException"),
    TableNotFound("gone", operation="BatchWriteItem"),
]


def transient(error: RequestError) -> bool:
    """The test's own oracle: which of ERRORS a resend may cure."""
    return isinstance(error, Throttled) or getattr(error, "aws_code", None) in {
        "InternalServerError",
        "ReadTimeoutError",
    }


@given(
    count=st.integers(min_value=0, max_value=80),
    attempts=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0),
    data=st.data(),
)
def test_every_write_is_either_written_or_failed_with_its_last_error(
    count: int, attempts: int, seed: int, data: st.DataObject
) -> None:
    rng = Random(seed)
    requests = {ident(n): put_of(ident(n)) for n in range(count)}
    stored: set[Ident] = set()
    last: dict[Ident, RequestError | None] = {}  # the last thing each request heard
    refused: set[Ident] = set()

    def answer(send: Step) -> Outcome:
        assert isinstance(send, Call) and send.operation == "BatchWriteItem"
        (sent,) = send.params["RequestItems"].values()
        idents = [
            (TABLE, r["PutRequest"]["Item"]["PK"]["S"], r["PutRequest"]["Item"]["SK"]["S"])
            for r in sent
        ]
        assert 0 < len(idents) <= 25 and len(set(idents)) == len(idents)
        assert not stored & set(idents)  # nothing written is ever resent
        assert not refused & set(idents)  # nor anything refused: a refusal is final
        if data.draw(st.booleans(), label="fails"):
            error = data.draw(st.sampled_from(ERRORS), label="error")
            last.update(dict.fromkeys(idents, error))
            if not transient(error):
                refused.update(idents)
            return error
        left_idents = {i for i in idents if rng.random() < 0.3}
        left = [r for i, r in zip(idents, sent, strict=True) if i in left_idents]
        stored.update(set(idents) - left_idents)
        last.update(dict.fromkeys(left_idents, None))
        return {"UnprocessedItems": {TABLE: left} if left else {}}

    failures, steps = run(batch_plan(attempts).write(requests), answer)

    assert stored | set(failures) == set(requests) and not stored & set(failures)
    assert failures == {i: last[i] for i in failures}  # the error that ended each request
    sends = [s for s in steps if isinstance(s, Call)]
    chunks = -(-count // 25)
    assert chunks <= len(sends) <= chunks * attempts
    assert sum(isinstance(s, Sleep) for s in steps) == len(sends) - chunks


def test_a_refusal_ends_its_chunk_and_the_next_chunk_still_goes() -> None:
    requests = {ident(n): put_of(ident(n)) for n in range(30)}
    refused = ServiceError("refused", aws_code="ValidationException")
    answers: list[Outcome] = [refused, {}]

    failures, steps = run(batch_plan(8).write(requests), lambda _: answers.pop(0))

    assert failures == dict.fromkeys(list(requests)[:25], refused)
    assert [type(s) for s in steps] == [Call, Call]
    assert [len(s.params["RequestItems"][TABLE]) for s in steps if isinstance(s, Call)] == [25, 5]


def test_transient_errors_are_retried_after_a_pause_with_the_same_request() -> None:
    requests = {ident(n): put_of(ident(n)) for n in range(3)}
    answers: list[Outcome] = [
        Throttled("throttled"),
        ServiceError("500", aws_code="InternalServerError"),
        {"UnprocessedItems": {TABLE: [put_of(ident(2))]}},
        {},
    ]

    failures, steps = run(batch_plan(8).write(requests), lambda _: answers.pop(0))

    assert failures == {}
    assert [s.seconds if isinstance(s, Sleep) else "send" for s in steps] == [
        "send",
        1,
        "send",
        2,
        "send",
        3,
        "send",
    ]
    sends = [s.params for s in steps if isinstance(s, Call)]
    assert sends[0] == sends[1] == sends[2] == {"RequestItems": {TABLE: list(requests.values())}}
    assert sends[3] == {"RequestItems": {TABLE: [put_of(ident(2))]}}


@given(
    count=st.integers(min_value=0, max_value=250),
    seed=st.integers(min_value=0),
    error=st.sampled_from(ERRORS),
)
def test_every_key_is_read_absent_or_failed(count: int, seed: int, error: RequestError) -> None:
    rng = Random(seed)  # one draw, then cheap choices: 250 keys x rounds of leftovers
    keys = {ident(n): key_of(ident(n)) for n in range(count)}
    stored = {i for i in keys if rng.random() < 0.7}
    read: set[Ident] = set()

    def answer(send: Step) -> Outcome:
        assert isinstance(send, Call) and send.operation == "BatchGetItem"
        (body,) = send.params["RequestItems"].values()
        assert body.get("ConsistentRead") is True and 0 < len(body["Keys"]) <= 100
        if rng.random() < 0.2:
            return error
        left = [k for k in body["Keys"] if rng.random() < 0.3]
        sent = [(TABLE, k["PK"]["S"], k["SK"]["S"]) for k in body["Keys"] if k not in left]
        read.update(sent)
        items = [{**key_of(i), "n": {"N": "1"}} for i in sent if i in stored]
        unprocessed = {TABLE: {"Keys": left, "ConsistentRead": True}} if left else {}
        return {"Responses": {TABLE: items}, "UnprocessedKeys": unprocessed}

    plan = batch_plan(3).get(keys, consistent=True)
    (found, failures), _ = run(plan, answer)

    assert set(found) == read & stored  # what was read is kept, whatever failed later
    assert set(failures) == set(keys) - read
    assert all(found[i] == {**key_of(i), "n": {"N": "1"}} for i in found)


def test_a_plan_refuses_a_missing_response() -> None:
    plan = batch_plan(2).write({ident(1): put_of(ident(1))})
    with pytest.raises(TypeError, match="BatchWriteItem"):
        run(plan, lambda _: None)
