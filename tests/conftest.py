"""Suite-wide settings.

Hypothesis: no per-example deadline (the first call of a cached engine function is slower, and
CI machines vary), and derandomised under CI so a run on the same commit is reproducible.
Locally the examples stay random, which finds more.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
