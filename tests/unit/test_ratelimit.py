"""The token bucket behind `--max-wcu`, on an injected clock (no wall-clock time)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm._ratelimit import TokenBucket
from dynaorm.errors import ConditionFailed, DefinitionError


class FakeTime:
    """A clock that only moves when someone sleeps (thread-safe)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now += seconds


def bucket(rate: float, fake: FakeTime, burst: float | None = None) -> TokenBucket:
    return TokenBucket(rate, burst=burst, clock=fake.monotonic, sleep=fake.sleep)


def test_writes_beyond_the_burst_wait_for_the_rate() -> None:
    fake = FakeTime()
    limit = bucket(10, fake)

    for _ in range(30):
        limit.wait()
        limit.charge(1)

    # the first 10 units come from the burst; the 30th write starts once 19 more were repaid
    assert fake.now == pytest.approx(1.9)


def test_a_large_write_puts_the_bucket_in_debt() -> None:
    fake = FakeTime()
    limit = bucket(4, fake)
    limit.wait()
    limit.charge(12)  # a 12 KB item: 12 WCU, known only from the response

    limit.wait()

    assert fake.now == pytest.approx(2.0)  # 8 units of debt at 4 per second


def test_idle_time_does_not_save_more_than_the_burst() -> None:
    fake = FakeTime()
    limit = bucket(5, fake)
    fake.now = 1000.0
    for _ in range(7):
        limit.wait()
        limit.charge(1)

    # a thousand idle seconds still hold 5 units: the 7th write waits for a fifth of a second
    assert fake.now == pytest.approx(1000.2)


@given(st.lists(st.floats(0.5, 40), max_size=40), st.floats(0.5, 200), st.floats(1, 50))
def test_writes_start_exactly_when_the_debt_is_repaid(
    charges: list[float], rate: float, burst: float
) -> None:
    fake = FakeTime()
    limit = bucket(rate, fake, burst)
    charged = 0.0
    for units in charges:
        limit.wait()
        # A write may start once the debt is repaid, and not a moment later.
        assert fake.now == pytest.approx(max(0.0, (charged - burst) / rate), abs=1e-6)
        limit.charge(units)
        charged += units


def test_the_listener_charges_what_writes_consumed() -> None:
    fake = FakeTime()
    limit = bucket(1, fake)
    limit.listener("Query", {}, {"ConsumedCapacity": {"CapacityUnits": 50.0}}, None)
    limit.listener("UpdateItem", {}, {"ConsumedCapacity": {"CapacityUnits": 3.0}}, None)
    limit.listener("BatchWriteItem", {}, {"ConsumedCapacity": [{"CapacityUnits": 2.0}] * 2}, None)
    limit.listener("PutItem", {}, None, ConditionFailed("the condition was false"))

    limit.wait()

    # 3 + 4 + 1 units charged (reads are not), 1 was in the bucket: 7 units of debt
    assert fake.now == pytest.approx(7)


def test_threads_share_one_bucket() -> None:
    fake = FakeTime()
    limit = bucket(10, fake)

    def write_ten() -> None:
        for _ in range(10):
            limit.wait()
            limit.charge(1)

    threads = [threading.Thread(target=write_ten) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 40 units at 10 per second after a burst of 10: the last write starts at 2.9 s at the
    # earliest; threads that woke together may each start one write before the debt shows.
    assert 2.9 - 1e-6 <= fake.now <= 2.9 + 0.4


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(DefinitionError, match="max_wcu must be a positive number"):
        TokenBucket(0)
