"""Suite-wide settings.

Hypothesis: no per-example deadline (the first call of a cached engine function is slower, and
CI machines vary), and derandomised under CI so a run on the same commit is reproducible.
Locally the examples stay random, which finds more.

Torch: one intra-op thread per test process (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` default
to 1, also for the app and CLI subprocesses the tests start). ``pytest -n 2`` already runs two
processes on two cores; more OpenMP threads only oversubscribe, and their barrier spin-waits made
tiny training runs 10–40× slower on a loaded machine (a tiny Learning Mode training took 28.6 s
with two threads and 0.7 s with one beside two busy processes). Set the variables to override.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before anything imports torch

from hypothesis import settings  # noqa: E402

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
