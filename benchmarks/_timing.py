"""Interleaved timing rounds shared by the client-cost and end-to-end benchmarks."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved_medians(
    functions: dict[str, Callable[[], Any]], numbers: dict[str, int], rounds: int
) -> dict[str, float]:
    """Median seconds per call of each function over `rounds`.

    Each round runs every function `numbers[name]` times, one library after another, so
    a slow moment of the machine falls on all of them rather than on one.
    """
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            number = numbers[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                function()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(values) for name, values in samples.items()}
