"""Interleaved timing rounds shared by the client-cost and end-to-end benchmarks."""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measured:
    """One library's figures for one workload."""

    seconds: float  # median seconds per call over the rounds
    # Median over the rounds of (this library's time / the floor's time in that round):
    # a slow spell of a shared machine lasts seconds and hits both sides of a pair.
    ratio: float | None  # None when the floor itself could not run


def runnable(
    peers: list[Any], workload: str, prepare: Callable[[Any, str], Callable[[], Any]]
) -> tuple[dict[str, Callable[[], Any]], dict[str, Measured | str]]:
    """The function to time for each peer, and the reason for each peer that has none.

    `prepare(peer, workload)` returns the checked function; a peer that declares the
    workload unsupported is reported "n/a", one whose preparation raises "failed".
    """
    functions: dict[str, Callable[[], Any]] = {}
    results: dict[str, Measured | str] = {}
    for peer in peers:
        if workload in peer.unsupported:
            results[peer.name] = f"n/a: {peer.unsupported[workload]}"
            continue
        try:
            functions[peer.name] = prepare(peer, workload)
        except Exception as error:  # reported in the table, never timed
            results[peer.name] = f"failed: {type(error).__name__}: {error}"
    return functions, results


def interleaved(
    functions: dict[str, Callable[[], Any]], numbers: dict[str, int], rounds: int, floor: str
) -> dict[str, Measured]:
    """Time every function over `rounds`, each round running every library once.

    Each round runs every function `numbers[name]` times, one library after another in
    an order shuffled per round (seeded: the same orders in every run), so a slow moment
    of the machine falls on all of them rather than on one, and no library always runs
    right after the same other one. `floor` names the function the ratios are to.
    """
    order = random.Random(rounds)
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        names = list(functions)
        order.shuffle(names)
        for name in names:
            function, number = functions[name], numbers[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                function()
            samples[name].append((time.perf_counter() - start) / number)
    base = samples.get(floor)
    return {
        name: Measured(statistics.median(values), None if base is None else _ratio(values, base))
        for name, values in samples.items()
    }


def _ratio(mine: list[float], base: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(mine, base, strict=True))
