"""Exponential backoff with full jitter, shared by batches and unit-of-work commits."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """A retry budget: `attempts` tries, sleeping a jittered, doubling delay between them.

    Full jitter (a uniform draw below the capped exponential delay) is what the AWS SDKs
    use, so many clients retrying at once spread out instead of colliding again.
    `sleep` is a parameter so tests can record delays instead of waiting.
    """

    def __init__(
        self,
        *,
        attempts: int,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep

    def pause(self, attempt: int) -> None:
        """Sleep before retry number `attempt` (1 for the first retry)."""
        self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
