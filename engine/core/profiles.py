"""Gene-expression profile uploads: the row-level checks every profile upload makes.

A profile upload is a CSV, one row per sample: ``sample_id`` first, an optional ``tissue``, then
gene columns holding expression as z-scores on a training panel's scale (DepMap RNA-seq z-scored
per gene over the 580 panel lines). Two readers share these checks, each with its own columns:
the SF2 upload (:func:`engine.sf2.data.read_expression_upload`) and the drug-resistance upload
(:func:`engine.drug.upload.read_profile_upload`). Each check returns the
:class:`~engine.core.tabular.Problem` to report (naming the row, the column, the value and what
is accepted) or None; the reader collects them and refuses the file with all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from engine.core.tabular import Problem, short

__all__ = [
    "MAX_ID_CHARS",
    "Z_MEAN_LIMIT",
    "Z_VALUE_RANGE",
    "case_hint",
    "names",
    "parse_number",
    "sample_id_problem",
    "scale_problem",
    "tissue_problem",
    "z_score_problem",
]

Z_VALUE_RANGE: tuple[float, float] = (-15.0, 25.0)
"""Accepted expression z-score. The training panel's own range is −9.7 … 18.6."""
Z_MEAN_LIMIT = 2.5
"""Largest accepted |mean| of a sample's expression z-scores. The panel lines' means over all
706 genes lie within −1.1 … 0.8, over 20 random genes within ±1.9 (99.9 % within ±1.4); log2
expression averages 3–10."""
MAX_ID_CHARS = 64
"""Longest accepted ``sample_id``."""


def names(items: Sequence[str], n: int = 8) -> str:
    """The first ``n`` of ``items`` quoted (each :func:`~engine.core.tabular.short`), then
    "and N more"."""
    shown = ", ".join(repr(short(x)) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def parse_number(text: str) -> float | None:
    """``text`` as a finite float, or None (not a number, NaN or infinite)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def case_hint(unknown: Sequence[str], genes: Mapping[str, str],
              prefixes: Sequence[str] = ("",)) -> str:
    """" (gene symbols are case-sensitive: 'egfr' → 'EGFR', …)" for the unknown columns that
    name a gene (after one of ``prefixes``) in the wrong case; empty when none does.

    Args:
        unknown: the unknown column names, in header order.
        genes: upper-cased symbol → symbol, of every accepted gene.
        prefixes: column prefixes before the symbol (``""`` for an expression column).
    """
    hints = []
    for name in unknown:
        for prefix in prefixes:
            base = name[len(prefix):] if name.startswith(prefix) else None
            if base is not None and base.upper() in genes and genes[base.upper()] != base:
                hints.append(f"{name!r} → {prefix + genes[base.upper()]!r}")
                break
    return f" (gene symbols are case-sensitive: {', '.join(hints[:5])})" if hints else ""


def sample_id_problem(row: int, sid: str, seen: dict[str, int]) -> Problem | None:
    """A ``sample_id`` that is empty, too long, not printable or already in ``seen`` (id → row);
    an accepted one is added to ``seen``."""
    if not sid or len(sid) > MAX_ID_CHARS or not sid.isprintable():
        return Problem(row, "sample_id", short(sid),
                       f"row {row}, sample_id {short(sid)!r}: must be 1–{MAX_ID_CHARS} "
                       "printable characters")
    if sid in seen:
        return Problem(row, "sample_id", short(sid),
                       f"row {row}, sample_id {short(sid)!r} is also in row {seen[sid]}; "
                       "sample ids must be unique")
    seen[sid] = row
    return None


def tissue_problem(row: int, tissue: str, accepted: set[str], known_as: str) -> Problem | None:
    """A ``tissue`` not among ``accepted`` (any, when empty); empty is always accepted.

    Args:
        known_as: what the accepted values are, after "is not": e.g. "a tissue of the training
            panel".
    """
    if not tissue or not accepted or tissue in accepted:
        return None
    return Problem(row, "tissue", short(tissue),
                   f"row {row}, tissue {short(tissue)!r} is not {known_as}; accepted: "
                   f"{', '.join(sorted(accepted))} or empty")


def z_score_problem(row: int, column: str, label: str, cell: str) -> tuple[float | None,
                                                                           Problem | None]:
    """One expression cell: its value, or the problem (empty, not a number, outside
    :data:`Z_VALUE_RANGE`).

    Args:
        row: the spreadsheet row.
        column: the column's name (the problem's column).
        label: how the message names the column: "gene TET1", "column EGFR".
        cell: the cell's text, stripped.
    """
    value = parse_number(cell)
    if value is not None and Z_VALUE_RANGE[0] <= value <= Z_VALUE_RANGE[1]:
        return value, None
    if not cell:
        what = "is empty"
    elif value is None:
        what = f"value {short(cell)!r} is not a number"
    else:
        what = f"value {short(cell)} is out of range"
    lo, hi = Z_VALUE_RANGE
    return None, Problem(row, column, short(cell),
                         f"row {row}, {label}: {what}; accepted: an expression z-score on the "
                         f"training panel's scale between {lo:g} and {hi:g}")


def scale_problem(row: int, z: np.ndarray) -> Problem | None:
    """A sample whose expression z-scores ``z`` ``[n_genes]`` average beyond ±
    :data:`Z_MEAN_LIMIT`: most likely log2 expression or counts, not per-gene z-scores."""
    mean = float(z.mean())
    if abs(mean) <= Z_MEAN_LIMIT:
        return None
    looks = (" and none is negative: they look like log2 expression or counts, not per-gene "
             "z-scores" if (z >= 0).all() else "")
    return Problem(row, None, f"{mean:.3g}",
                   f"row {row}: the {len(z)} expression values average {mean:.3g}{looks}; on "
                   "the training panel's scale (z-scores over 580 DepMap lines) a sample's mean "
                   f"lies between {-Z_MEAN_LIMIT:g} and {Z_MEAN_LIMIT:g}; standardise each gene "
                   "against the DepMap panel first")
