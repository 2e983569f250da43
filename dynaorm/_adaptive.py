"""`AWS_RETRY_MODE=adaptive`: the client-side rate limiter botocore adds to standard retries.

Until the first throttling answer it does nothing. From then on every attempt takes a
token from a bucket whose fill rate follows CUBIC (as TCP's congestion window does): cut
to 70% of the measured sending rate at each throttle, then grown back along a cubic curve
that is flat around the rate that last throttled, and never above twice the measured rate.
The constants and formulas are botocore's (botocore/retries/adaptive.py, bucket.py,
throttling.py); the bucket here hands out reservations (seconds to wait) instead of
blocking, so the blocking and the async transport can both wait their own way.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]

_MIN_RATE = 0.5  # tokens per second
_BETA = 0.7  # the share of the rate kept at a throttle
_SCALE = 0.4  # CUBIC's C
_SMOOTHING = 0.8
_BUCKET_SECONDS = 0.5  # the sending rate is measured per half second
_MAX_RATE_ADJUST_SCALE = 2.0


class RateLimiter:
    """A token bucket whose rate adapts to throttling; safe to share across threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.enabled = False
        now = clock()
        # CUBIC
        self._last_max_rate = _MIN_RATE
        self._last_throttle = now
        self._k = _zero_point(self._last_max_rate)
        # measured sending rate
        self.measured_rate = 0.0
        self._last_bucket = float(math.floor(now))
        self._requests = 0
        # token bucket
        self.fill_rate = _MIN_RATE
        self._capacity = 0.0
        self._refilled: float | None = None

    def reserve(self) -> float:
        """Take a token for the next attempt: the seconds to wait before sending it."""
        with self._lock:
            if not self.enabled:
                return 0.0
            self._refill()
            self._capacity -= 1
            return 0.0 if self._capacity >= 0 else -self._capacity / self.fill_rate

    def record(self, throttled: bool) -> None:
        """Adapt the rate to an answer: throttled, or anything else."""
        with self._lock:
            measured = self._measure()
            now = self._clock()
            if throttled:
                rate = measured if not self.enabled else min(measured, self.fill_rate)
                self._last_max_rate = rate
                self._k = _zero_point(rate)
                self._last_throttle = now
                new_rate = rate * _BETA
                self.enabled = True
            else:
                elapsed = now - self._last_throttle
                new_rate = _SCALE * (elapsed - self._k) ** 3 + self._last_max_rate
            self._set_rate(min(new_rate, _MAX_RATE_ADJUST_SCALE * measured))

    def _measure(self) -> float:
        now = self._clock()
        bucket = math.floor(now / _BUCKET_SECONDS) * _BUCKET_SECONDS
        self._requests += 1
        if bucket > self._last_bucket:
            current = self._requests / (bucket - self._last_bucket)
            self.measured_rate = current * _SMOOTHING + self.measured_rate * (1 - _SMOOTHING)
            self._requests = 0
            self._last_bucket = bucket
        return self.measured_rate

    def _set_rate(self, rate: float) -> None:
        self._refill()
        self.fill_rate = max(rate, _MIN_RATE)
        self._capacity = min(self._capacity, max(self.fill_rate, 1.0))

    def _refill(self) -> None:
        now = self._clock()
        if self._refilled is not None:
            room = max(self.fill_rate, 1.0)
            self._capacity = min(room, self._capacity + (now - self._refilled) * self.fill_rate)
        self._refilled = now


def _zero_point(max_rate: float) -> float:
    return float((max_rate * (1 - _BETA) / _SCALE) ** (1 / 3))
