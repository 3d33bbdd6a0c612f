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


def emit(name: str, samples_ms: list[float], **extra: object) -> None:
    """Print ``{"bench", "n", "median_ms", "p95_ms", **extra}`` as one JSON line."""
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
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
