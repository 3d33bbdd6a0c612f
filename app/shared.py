"""Read-only things the app loads once per process: protocols, models, populations, examples.

Paths come from this file's location so the app runs from any working directory. Nothing here
is per-session; sessions keep their own state in ``reactive.value``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly

from engine.cohort import ReferenceModel, population_table
from engine.protocols import PROTOCOL_NAMES, Protocol, load_protocol
from engine.schema import read_cases

__all__ = [
    "APP_DIR",
    "EXAMPLES",
    "MODELS",
    "PLOTLY_JS",
    "POPULATIONS",
    "PROTOCOLS",
    "PROTOCOL_CHOICES",
    "STARTUP_CASES",
    "WWW_DIR",
]

APP_DIR = Path(__file__).resolve().parent
ROOT_DIR = APP_DIR.parent
WWW_DIR = APP_DIR / "www"
EXAMPLES_DIR = ROOT_DIR / "assets" / "examples"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
"""plotly.js shipped inside the plotly package; served locally, never from a CDN."""

PROTOCOLS: dict[str, Protocol] = {name: load_protocol(name) for name in PROTOCOL_NAMES}
MODELS: dict[str, ReferenceModel] = {name: ReferenceModel(name) for name in PROTOCOL_NAMES}
"""The outcome model served per protocol: the virtual trial's reference (ground-truth) model."""
POPULATIONS: dict[str, pd.DataFrame] = {name: population_table(name) for name in PROTOCOL_NAMES}
"""Complete cases of each default virtual trial, for the population histograms."""
EXAMPLES: dict[str, pd.DataFrame] = {
    name: read_cases(EXAMPLES_DIR / f"{name}_patients.csv", PROTOCOLS[name])
    for name in PROTOCOL_NAMES
}
"""Validated example cases shipped in assets/examples/."""
STARTUP_CASES: dict[str, pd.DataFrame] = {
    name: examples.iloc[:1].reset_index(drop=True) for name, examples in EXAMPLES.items()
}
"""What a new session starts with: the first example patient of each protocol, so every panel
shows a worked example at once; "Remove all cases" empties it."""
PROTOCOL_CHOICES: dict[str, str] = {
    name: f"{name.upper()} ({p.n_eval_fractions} + {p.n_adapt_fractions} fractions)"
    for name, p in PROTOCOLS.items()
}
"""Short labels for the protocol selector (the full label is shown on the panels)."""
