"""Timing helpers of the benchmarks: repeat a call, print one JSON line of its latency."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()  # warm caches (calibration, imports, stacked ensemble weights)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def timed_cpu(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds of ``repeats`` calls after one warm-up call.

    On a loaded machine the wall clock also counts the time spent waiting for a core; the CPU
    time (all threads of this process) is the work itself.
    """
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - start_cpu) * 1000.0)
        wall.append((time.perf_counter() - start) * 1000.0)
    return wall, cpu


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``samples``: the nearest-rank element of the sorted list."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def emit(name: str, samples_ms: list[float], **extra: object) -> None:
    """Print ``{"bench", "n", "median_ms", "p95_ms", **extra}`` as one JSON line."""
    p95 = percentile(samples_ms, 0.95)
    print(
        json.dumps(
            {
                "bench": name,
                "n": len(samples_ms),
                "median_ms": round(statistics.median(samples_ms), 3),
                "p95_ms": round(p95, 3),
                **extra,
            }
        )
    )
