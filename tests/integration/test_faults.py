"""Faults injected under the transport: throttling, partial batches, cancelled and
in-progress transactions, HTTP 500s, dropped connections and timeouts.

How the faults are injected, and why that is honest (it works the same under moto and
over HTTP to DynamoDB Local):

* HTTP-level faults (throttling, 500s, `TransactionCanceledException`,
  `TransactionInProgressException`, `ValidationException`, network errors) are answered by
  a `before-send` handler registered with `register_first`, so it runs before botocore's
  real HTTP send. Under moto that is not enough: botocore's `emit` calls *every*
  `before-send` handler, so moto's would still apply the attempt we fail. The injector
  therefore takes moto's handler off the session's client and calls it itself only for
  attempts that are to reach the backend. A faulted attempt never reaches the backend;
  botocore's standard retry mode sees exactly what it would see from
  DynamoDB (an error response, or an `HTTPClientError` raised while sending) and retries
  it, with the same prepared request, before dynaorm sees anything.
* Partial batches (`UnprocessedItems`): DynamoDB leaves part of a `BatchWriteItem`
  unwritten and hands it back. We do the same at the botocore level: a `before-call`
  handler removes the requests to leave over from the serialized body (so the backend
  only ever receives - and writes - the rest) and an `after-call` handler adds the removed
  requests to the parsed response as `UnprocessedItems`. When every request is left over,
  the `before-call` handler answers alone (DynamoDB refuses an empty batch). Nothing in
  dynaorm is patched.
* A lost response (the request was applied, the client saw a timeout): the `before-send`
  handler hands the request to moto, or sends it over the client's own HTTP session
  (DynamoDB Local), discards the answer and raises `ReadTimeoutError`. botocore retries
  the identical request - same body, so the same `ClientRequestToken`.

Randomness comes from a seeded `random.Random`, so a run is reproducible. dynaorm's own
backoff (batches, unit of work) and botocore's backoff sleep for 0 seconds here.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.retries.standard
import pytest
from blog_models import Post, User
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dynaorm import Session
from dynaorm.errors import (
    BatchIncomplete,
    DynaormError,
    ServiceError,
    Throttled,
    TransactionCanceled,
    VersionConflict,
)
from tests.dynamodb_local import Backend

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
URL = "https://dynamodb.us-east-1.amazonaws.com/"


class _Body:
    """The raw stream botocore reads an `AWSResponse` body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_body(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}
    ).encode()


Answer = Callable[[Any, dict[str, Any]], AWSResponse | None]
"""(prepared request, its decoded JSON body) -> a response to hand back, or raise."""


def respond(status: int, code: str, message: str = "injected") -> Answer:
    def answer(request: Any, body: dict[str, Any]) -> AWSResponse:
        return AWSResponse(
            request.url, status, {"x-amzn-RequestId": "injected"}, _Body(error_body(code, message))
        )

    return answer


def conflict(request: Any, body: dict[str, Any]) -> AWSResponse:
    """TransactionCanceledException with a TransactionConflict reason for each action."""
    reasons = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        for _ in body.get("TransactItems", [])
    ]
    payload = error_body(
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join('TransactionConflict' for _ in reasons)}]",
        CancellationReasons=reasons,
    )
    return AWSResponse(request.url, 400, {"x-amzn-RequestId": "injected"}, _Body(payload))


def raising(make: Callable[[str], Exception]) -> Answer:
    def answer(request: Any, body: dict[str, Any]) -> AWSResponse:
        raise make(request.url)

    return answer


THROTTLE = respond(400, "ProvisionedThroughputExceededException", "throughput exceeded")


@dataclass
class Rule:
    operations: frozenset[str]
    answer: Answer
    probability: float = 1.0
    times: int | None = None  # None: without limit
    hits: int = 0


class Faults:
    """Injects faults into one session's botocore client; `close()` removes every hook."""

    def __init__(self, session: Session, backend: Backend, *, seed: int = 0) -> None:
        self.client = session.transport.botocore_client
        self.over_http = backend.endpoint_url is not None
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.leave_over: dict[str, float] = {}  # BatchWriteItem -> share left unprocessed
        self.lose: dict[str, list[Callable[[str], Exception]]] = {}  # op -> faults to raise
        self.attempts: list[tuple[str, dict[str, Any]]] = []  # every HTTP attempt
        self.counts: Counter[str] = Counter()
        self.moto: Any = None
        events = self.client.meta.events
        if not self.over_http:
            # moto answers in a `before-send` handler too, and botocore's `emit` calls every
            # handler even after an earlier one has answered: moto would still apply an
            # attempt we fail. So moto's handler is taken off this client and called from
            # ours only when the attempt is to reach the backend (`close()` puts it back).
            from moto.core.models import botocore_stubber  # noqa: PLC0415  (memory only)

            self.moto = botocore_stubber
            events.unregister("before-send", botocore_stubber)
        self._hooks: list[tuple[str, Callable[..., Any]]] = [
            ("before-send", self._before_send),
            ("before-call.dynamodb.BatchWriteItem", self._before_call),
            ("after-call.dynamodb.BatchWriteItem", self._after_call),
        ]
        for event, handler in self._hooks:
            events.register_first(event, handler)

    def add(
        self, operations: str, answer: Answer, probability: float = 1.0, times: int | None = None
    ) -> Rule:
        """Answer attempts of these operations (space-separated) with `answer`."""
        rule = Rule(frozenset(operations.split()), answer, probability, times)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.leave_over.clear()
            self.lose.clear()

    def close(self) -> None:
        for event, handler in self._hooks:
            self.client.meta.events.unregister(event, handler)
        if self.moto is not None:
            self.client.meta.events.register("before-send", self.moto)

    def sent(self, operation: str) -> list[dict[str, Any]]:
        """The bodies of every HTTP attempt of `operation`, faulted or not."""
        with self.lock:
            return [body for name, body in self.attempts if name == operation]

    # -- hooks ----------------------------------------------------------------------------

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        if not event_name.startswith("before-send.dynamodb."):
            return self._deliver(request, event_name)
        operation = event_name.rsplit(".", 1)[-1]
        body = json.loads(request.body or b"{}")
        with self.lock:
            self.attempts.append((operation, body))
            chosen = None
            for rule in self.rules:
                if operation not in rule.operations or rule.times == 0:
                    continue
                if self.rng.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                rule.hits += 1
                chosen = rule
                break
            pending = self.lose.get(operation)
            lost = pending.pop(0) if chosen is None and pending else None
        if chosen is not None:
            return chosen.answer(request, body)  # the backend never sees this attempt
        if lost is None:
            return self._deliver(request, event_name)
        # The backend applies the request; the client only sees the fault.
        if self.moto is not None:
            self.moto(event_name=event_name, request=request)
        else:
            self.client._endpoint.http_session.send(request).content  # noqa: B018
        with self.lock:
            self.counts[f"{operation}: response lost"] += 1
        raise lost(request.url)

    def _deliver(self, request: Any, event_name: str) -> AWSResponse | None:
        """moto's answer, or None over HTTP: botocore then sends the request itself."""
        if self.moto is None:
            return None
        return self.moto(event_name=event_name, request=request)

    def _before_call(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        with self.lock:
            share = self.leave_over.get("BatchWriteItem", 0.0)
            if not share:
                return None
            body = json.loads(params["body"])
            kept: dict[str, list[Any]] = {}
            left: dict[str, list[Any]] = {}
            for table, requests in body["RequestItems"].items():
                for request in requests:
                    target = left if self.rng.random() < share else kept
                    target.setdefault(table, []).append(request)
            self.counts["BatchWriteItem: requests left over"] += sum(map(len, left.values()))
        if not left:
            return None
        if not kept:  # DynamoDB refuses an empty batch: answer without sending
            http = AWSResponse(params["url"], 200, {}, _Body(b"{}"))
            return http, {"UnprocessedItems": left, "ResponseMetadata": {"HTTPStatusCode": 200}}
        params["body"] = json.dumps({**body, "RequestItems": kept}).encode()
        context["faults_left_over"] = left
        return None

    def _after_call(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        left = context.pop("faults_left_over", None)
        if left is None or http_response.status_code >= 300:
            return  # the whole request failed: the caller retries all of it anyway
        unprocessed = parsed.setdefault("UnprocessedItems", {})
        for table, requests in left.items():
            unprocessed.setdefault(table, []).extend(requests)


@pytest.fixture
def session(botocore_session: Session) -> Session:
    """Faults hook botocore's events, so these tests run on the botocore transport
    whatever `--transport` says."""
    return botocore_session


@pytest.fixture(autouse=True)
def _no_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retry mode sleeps up to ~1 s per throttled attempt: not here."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0
    )


@pytest.fixture
def faults(session: Session, dynamodb_backend: Backend) -> Iterator[Faults]:
    session._batches.retry.sleep = lambda _: None
    injector = Faults(session, dynamodb_backend, seed=20240601)
    yield injector
    injector.close()


def posts(count: int, user_id: str = "u1") -> list[Post]:
    return [
        Post(
            user_id=user_id,
            post_id=f"p{n:05d}",
            title=f"T{n}",
            created_at=START + dt.timedelta(seconds=n),
        )
        for n in range(count)
    ]


def operations(faults: Faults, name: str) -> int:
    return sum(1 for operation, _ in faults.attempts if operation == name)


# -- (a) batches lose nothing --------------------------------------------------------------


def test_10000_items_under_throttling_and_unprocessed_items_lose_nothing(
    session: Session, faults: Faults
) -> None:
    session._batches.retry.attempts = 50
    faults.add("BatchWriteItem", THROTTLE, probability=0.3)
    faults.leave_over["BatchWriteItem"] = 0.5
    written = posts(10_000)
    started = time.perf_counter()

    session.batch_write(put=written)

    elapsed = time.perf_counter() - started
    calls = session.stats.snapshot()["BatchWriteItem"]
    figures = {
        "items": len(written),
        "chunks": len(written) // 25,
        "dynaorm BatchWriteItem calls": int(calls["calls"]),
        "dynaorm calls failed (Throttled after botocore's retries)": int(calls["errors"]),
        "HTTP attempts": operations(faults, "BatchWriteItem"),
        "throttles injected": faults.rules[0].hits,
        "requests left over": faults.counts["BatchWriteItem: requests left over"],
        "seconds": round(elapsed, 1),
    }
    faults.clear()
    stored = session.query(Post, user_id="u1").all()
    assert len(stored) == len(written), figures
    assert {p.post_id for p in stored} == {p.post_id for p in written}, figures
    # dynaorm retried unprocessed work on top of botocore's retries of throttles.
    assert figures["dynaorm BatchWriteItem calls"] > figures["chunks"], figures
    assert figures["throttles injected"] > 0 and figures["requests left over"] > 0, figures
    print(f"\nbatch_write under faults: {figures}")


def test_batch_get_under_throttling_reads_all(session: Session, faults: Faults) -> None:
    written = posts(300)
    session.batch_write(put=written)
    faults.add("BatchGetItem", THROTTLE, probability=0.3)
    session._batches.retry.attempts = 30
    keys = [p.get_key() for p in written]
    assert session.batch_get(keys) == written
    assert faults.rules[0].hits > 0


# -- (b) a commit whose response was lost is applied once ----------------------------------


def test_commit_retried_after_read_timeout_reuses_its_token_and_applies_once(
    session: Session, faults: Faults, dynamodb_backend: Backend
) -> None:
    if dynamodb_backend.endpoint_url is None:
        pytest.skip(
            "moto ignores ClientRequestToken (no idempotency): the retried commit would be "
            "applied again, or fail its version check; run with --backend=local"
        )
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    uow = session.unit_of_work()
    uow.retry.sleep = lambda _: None
    ann = uow.get(User, user_id="u1")
    assert ann is not None and ann.version == 1
    ann.name = "Ann B."
    faults.lose["TransactWriteItems"] = [
        lambda url: ReadTimeoutError(endpoint_url=url, error="injected read timeout")
    ]

    uow.commit()

    sent = faults.sent("TransactWriteItems")[1:]  # after the create
    assert len(sent) == 2  # the first (applied, answer lost) and botocore's retry
    assert [body["ClientRequestToken"] for body in sent] == [uow.token, uow.token]
    assert sent[0] == sent[1]
    stored = session.get(User, user_id="u1", consistent=True)
    assert stored is not None
    assert (stored.name, stored.version) == ("Ann B.", 2)  # incremented exactly once
    assert ann.version == 2


def test_commit_retries_transaction_in_progress_with_the_same_token(
    session: Session, faults: Faults
) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    with session.unit_of_work() as uow:
        uow.retry.sleep = lambda _: None
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        ann.name = "Ann B."
        # Not retried by botocore (not a throttle nor transient): dynaorm's commit retries.
        faults.add("TransactWriteItems", respond(400, "TransactionInProgressException"), times=2)
    sent = [b for b in faults.sent("TransactWriteItems") if b["ClientRequestToken"] == uow.token]
    assert len(sent) == 3
    stored = session.get(User, user_id="u1", consistent=True)
    assert stored is not None and (stored.name, stored.version) == ("Ann B.", 2)


def test_commit_retries_transaction_conflicts_then_applies(
    session: Session, faults: Faults
) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    uow = session.unit_of_work()
    uow.retry.sleep = lambda _: None
    ann = uow.get(User, user_id="u1")
    assert ann is not None
    ann.email = "b@x"  # moves the unique guard: three actions
    faults.add("TransactWriteItems", conflict, times=3)
    uow.commit()
    sent = [b for b in faults.sent("TransactWriteItems") if b["ClientRequestToken"] == uow.token]
    assert len(sent) == 4
    assert session.query(User.by_email, email="b@x").all() == [ann]


# -- (c) errors surface as typed dynaorm errors ---------------------------------------------


def test_validation_exception_is_a_service_error_and_not_retried(
    session: Session, faults: Faults
) -> None:
    faults.add("GetItem", respond(400, "ValidationException", "One or more parameter values"))
    with pytest.raises(ServiceError) as caught:
        session.get(User, user_id="u1")
    assert caught.value.aws_code == "ValidationException"
    assert not isinstance(caught.value, ClientError)
    assert operations(faults, "GetItem") == 1


def test_a_real_validation_error_is_a_service_error(session: Session) -> None:
    with pytest.raises(ServiceError) as caught:
        session.transport.call(
            "GetItem", {"TableName": session.table_name(User.__dynaorm__.table), "Key": {}}
        )
    assert caught.value.aws_code == "ValidationException"


NETWORK_FAULTS: list[tuple[str, Answer]] = [
    ("ConnectionClosedError", raising(lambda url: ConnectionClosedError(endpoint_url=url))),
    ("EndpointConnectionError", raising(lambda url: EndpointConnectionError(endpoint_url=url))),
    ("ReadTimeoutError", raising(lambda url: ReadTimeoutError(endpoint_url=url))),
    ("InternalServerError", respond(500, "InternalServerError", "boom")),
    ("ProvisionedThroughputExceededException", THROTTLE),
]


@pytest.mark.parametrize(("code", "answer"), NETWORK_FAULTS, ids=[c for c, _ in NETWORK_FAULTS])
def test_transient_faults_are_retried_then_reported_typed(
    session: Session, faults: Faults, code: str, answer: Answer
) -> None:
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    # Twice: botocore's retries absorb it.
    faults.add("GetItem", answer, times=2)
    assert session.get(User, user_id="u1") == ann
    assert operations(faults, "GetItem") == 3
    # Always: botocore gives up after its budget (4 attempts), dynaorm raises its own error.
    faults.clear()
    faults.add("GetItem", answer)
    with pytest.raises(DynaormError) as caught:
        session.get(User, user_id="u1")
    error = caught.value
    expected = Throttled if code.endswith("Exceeded" + "Exception") else ServiceError
    assert isinstance(error, expected), error
    assert not isinstance(error, ClientError)
    if isinstance(error, ServiceError):
        assert error.aws_code == code
    assert operations(faults, "GetItem") == 3 + 4


# -- (d) nothing is half-applied -------------------------------------------------------------


def test_commit_cancelled_on_its_last_retry_changes_nothing(
    session: Session, faults: Faults
) -> None:
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    old_posts = posts(3)
    session.batch_write(put=old_posts)
    before = session.scan(User).all(), session.query(Post, user_id="u1").all()

    uow = session.unit_of_work()
    uow.retry.sleep = lambda _: None
    tracked = uow.get(User, user_id="u1")
    assert tracked is not None
    tracked.email = "b@x"  # Update + Delete old guard + Put new guard
    uow.add(posts(4)[3])
    uow.delete(old_posts[0])
    uow.update(old_posts[1], add={"likes": 5})
    # Conflicts on every attempt but the last; meanwhile someone else updates Ann, so the
    # last attempt really reaches the backend and is cancelled by the version check.
    faults.add("TransactWriteItems", conflict, times=uow.retry.attempts - 1)
    session.update(ann, set={"name": "Someone else"})

    with pytest.raises(VersionConflict):
        uow.commit()

    sent = [b for b in faults.sent("TransactWriteItems") if b["ClientRequestToken"] == uow.token]
    assert len(sent) == uow.retry.attempts
    assert {body["ClientRequestToken"] for body in sent} == {uow.token}
    users, stored_posts = session.scan(User).all(), session.query(Post, user_id="u1").all()
    assert stored_posts == before[1]
    assert [(u.email, u.name, u.version) for u in users] == [("a@x", "Someone else", 2)]
    assert session.query(User.by_email, email="b@x").all() == []
    assert session.query(User.by_email, email="a@x").count() == 1


def test_commit_conflicting_on_every_attempt_raises_and_changes_nothing(
    session: Session, faults: Faults
) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    uow = session.unit_of_work()
    uow.retry.sleep = lambda _: None
    tracked = uow.get(User, user_id="u1")
    assert tracked is not None
    tracked.name = "Changed"
    uow.add(posts(1)[0])
    faults.add("TransactWriteItems", conflict)
    with pytest.raises(TransactionCanceled) as caught:
        uow.commit()
    assert [r and r["Code"] for r in caught.value.reasons] == ["TransactionConflict"] * 2
    sent = [b for b in faults.sent("TransactWriteItems") if b["ClientRequestToken"] == uow.token]
    assert len(sent) == uow.retry.attempts
    stored = session.get(User, user_id="u1", consistent=True)
    assert stored is not None and (stored.name, stored.version) == ("Ann", 1)
    assert session.query(Post, user_id="u1").all() == []


# -- (e) a batch chunk that keeps failing is reported, and later chunks still go ------------


def poisoning(faults: Faults, operation: str, post_id: str, fault: Answer) -> Answer:
    """Answer attempts whose body names `post_id` with `fault`; deliver every other one."""

    def answer(request: Any, body: dict[str, Any]) -> AWSResponse | None:
        if f'{post_id}"' in json.dumps(body):  # the post_id attribute, or the end of SK
            return fault(request, body)
        return faults._deliver(request, f"before-send.dynamodb.{operation}")

    return answer


CHUNK_FAULTS: list[tuple[str, Answer]] = [
    ("InternalServerError", respond(500, "InternalServerError", "persistent")),
    ("ValidationException", respond(400, "ValidationException", "refused")),
    ("ConnectionClosedError", raising(lambda url: ConnectionClosedError(endpoint_url=url))),
]


@pytest.mark.parametrize(("code", "fault"), CHUNK_FAULTS, ids=[c for c, _ in CHUNK_FAULTS])
def test_batch_write_of_1000_with_one_chunk_failing_reports_exactly_the_unwritten(
    session: Session, faults: Faults, code: str, fault: Answer
) -> None:
    written = posts(1000)
    chunk = written[500:525]  # the 21st chunk of 25
    faults.add("BatchWriteItem", poisoning(faults, "BatchWriteItem", "p00510", fault))

    with pytest.raises(BatchIncomplete) as caught:
        session.batch_write(put=written)

    error = caught.value
    faults.clear()
    stored = session.query(Post, user_id="u1").all()
    assert error.unprocessed == chunk
    assert error.written == written[:500] + written[525:]
    assert len(error.written) + len(error.unprocessed) == 1000
    assert stored == error.written  # the table agrees with the report
    assert [r.aws_code for r in error.reasons] == [code] * 25
    assert all(isinstance(r, ServiceError) for r in error.reasons)
    # A refusal is final; a 500 or a dropped connection gets dynaorm's whole budget, each
    # attempt after botocore's own 4.
    tries = 1 if code == "ValidationException" else session._batches.retry.attempts
    failed = [b for b in faults.sent("BatchWriteItem") if '"p00510"' in json.dumps(b)]
    assert len(failed) == tries * (1 if code == "ValidationException" else 4)
    assert operations(faults, "BatchWriteItem") == 39 + len(failed)


def test_batch_get_with_one_chunk_failing_returns_what_it_read(
    session: Session, faults: Faults
) -> None:
    written = posts(300)
    session.batch_write(put=written)
    faults.add(
        "BatchGetItem",
        poisoning(faults, "BatchGetItem", "p00150", respond(500, "InternalServerError")),
    )
    keys = [p.get_key() for p in written]

    with pytest.raises(BatchIncomplete) as caught:
        session.batch_get(keys)

    assert caught.value.items == written[:100] + written[200:]
    assert caught.value.unprocessed == keys[100:200]
    assert {r.aws_code for r in caught.value.reasons} == {"InternalServerError"}


def test_batch_write_whose_responses_are_lost_reports_them_and_a_resend_is_safe(
    session: Session, faults: Faults
) -> None:
    written = posts(100)
    session._batches.retry.attempts = 2

    def applied_then_lost(request: Any, body: dict[str, Any]) -> AWSResponse:
        # The backend applies the chunk; the client only ever sees a read timeout.
        if faults.moto is not None:
            faults.moto(event_name="before-send.dynamodb.BatchWriteItem", request=request)
        else:
            faults.client._endpoint.http_session.send(request).content  # noqa: B018
        raise ReadTimeoutError(endpoint_url=request.url, error="injected read timeout")

    faults.add("BatchWriteItem", poisoning(faults, "BatchWriteItem", "p00030", applied_then_lost))

    with pytest.raises(BatchIncomplete) as caught:
        session.batch_write(put=written)

    error = caught.value
    faults.clear()
    # Not confirmed is all dynaorm can say: the chunk did land, as the docs warn.
    assert error.unprocessed == written[25:50]
    assert {r.aws_code for r in error.reasons} == {"ReadTimeoutError"}
    assert session.query(Post, user_id="u1").all() == written
    session.batch_write(put=error.unprocessed)  # the documented recovery: idempotent
    assert session.query(Post, user_id="u1").all() == written
