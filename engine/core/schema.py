"""The CSV format for a clinic's own cases, and its validator.

One row per case: a patient (NSCLC) or one tumour site of a patient (HCC). The accepted columns
of a protocol come from :func:`column_specs`, which derives them from the protocol data:

* required: the protocol's id columns (``patient_id``; ``site_id`` for HCC), every feature of the
  protocol, and ``dose_eval_gy`` (evaluation-phase dose per fraction, Gy);
* optional: ``dose_adapt_gy`` (adaptive dose per fraction actually given, Gy),
  ``proposed_dose_adapt_gy`` (the physician's own proposed adaptive dose per fraction, Gy, which
  the recommendation is compared with), the two outcome columns (0/1, 1 = event) and ``note``
  (free text).

:func:`read_cases` turns CSV text (UTF-8, comma-separated, header in the first row) into a typed
table or raises :class:`SchemaError` listing every problem found; it never returns a partially
imported table. :func:`validate_dataframe` applies the same checks to an in-memory table. Each
check has exactly one home: file checks (size, encoding, quoting, separator) in
:mod:`engine.core.tabular`, which also defines :class:`~engine.core.tabular.Problem` and
:class:`~engine.core.tabular.SchemaError`; header checks in ``_check_header``, cell checks in
``_check_cell``, table checks in ``_validate_table``.

Problem messages quote the offending text (so the user can find it) but nothing here logs.
The documented format is ``docs/data-format.md``; its column tables are :func:`columns_markdown`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from engine.core.protocols import PROTOCOL_NAMES, Protocol, load_protocol
from engine.core.tabular import (
    Problem,
    SchemaError,
    cell_text,
    check_separator,
    column_letter,
    csv_records,
    decode,
    fatal,
    format_number,
    is_blank,
    read_bytes,
    restore_formula,
    short,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_ID_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_ROWS",
    "PROPOSAL_COLUMN",
    "ColumnSpec",
    "case_label",
    "case_labels",
    "column_specs",
    "columns_markdown",
    "read_cases",
    "validate_dataframe",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Largest accepted file, bytes."""
MAX_ROWS = 10_000
"""Largest accepted number of (non-empty) data rows."""
MAX_ID_CHARS = 64
"""Longest accepted ``patient_id``, characters."""
MAX_NOTE_CHARS = 2000
"""Longest accepted ``note``, characters."""
SITE_ID_MIN = 1
"""Smallest accepted ``site_id``."""
SITE_ID_MAX = 5
"""Largest accepted ``site_id``."""
PROPOSAL_COLUMN = "proposed_dose_adapt_gy"
"""Optional column: the physician's own proposed adaptive dose per fraction, Gy, which
:func:`engine.arclids.recommend.recommend` compares the recommendation with."""

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NONFINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"[+-]?\d+(?:,\d+)+")
_NUMBER_WITH_UNIT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*[^\d\s.,+-].*")
_NA_TOKENS = frozenset({"na", "n/a", "#n/a", "null", "none", "missing", "-", "?", "."})
# Units written as words read better in parentheses: "between -1 and 1.5 (fraction)".
_WORD_UNITS = frozenset({"", "fraction", "score", "SUV", "points", "alleles", "sites"})
# Column-name suffix of each physical unit (for "unit changed" hints on unknown columns).
_UNIT_SUFFIXES = {"Gy": "gy", "pg/mL": "pg_ml", "ng/mL": "ng_ml", "g/dL": "g_dl", "cm³": "cc"}


def _with_unit(text: str, unit: str) -> str:
    if unit in _WORD_UNITS:
        return f"{text} ({unit})" if unit else text
    return f"{text} {unit}"


# --------------------------------------------------------------------------------------------
# Case identity


def case_label(patient_id: str, site_id: int | None) -> str:
    """How a case is named on screen, in reports and in the audit trail: ``"P-001"``, or
    ``"HCC-012 site 2"`` for one tumour site of a patient."""
    return patient_id if site_id is None else f"{patient_id} site {site_id}"


def case_labels(cases: pd.DataFrame) -> list[str]:
    """:func:`case_label` of every row of a case table (``site_id`` used when the table has it
    and the row's value is present), in row order."""
    if cases.empty:
        return []
    ids = cases["patient_id"].tolist()  # column by column: a 10,000-row upload in milliseconds
    sites = cases["site_id"].tolist() if "site_id" in cases.columns else [None] * len(ids)
    return [case_label(str(pid), None if site is None or pd.isna(site) else int(site))
            for pid, site in zip(ids, sites, strict=True)]


# --------------------------------------------------------------------------------------------
# Accepted columns


@dataclass(frozen=True)
class ColumnSpec:
    """One accepted column of the case table."""

    name: str
    """Column name (unit-suffixed where the value has a physical unit)."""
    label: str
    """Human-readable name."""
    unit: str
    """Unit shown to users ("" when none)."""
    kind: str
    """``"id"`` (text id), ``"site"`` (integer id), ``"continuous"``, ``"genotype"``,
    ``"ordinal"``, ``"outcome"`` (0/1) or ``"text"``."""
    required: bool
    """True when the column and a value in every row are required."""
    min: float | None
    """Smallest accepted value (inclusive), None for text columns."""
    max: float | None
    """Largest accepted value (inclusive), None for text columns."""
    description: str
    """What the column means."""

    @property
    def numeric(self) -> bool:
        """True when values are numbers."""
        return self.kind not in ("id", "text")

    @property
    def integer(self) -> bool:
        """True when only whole numbers are valid."""
        return self.kind in ("site", "genotype", "ordinal", "outcome")

    def accepted(self) -> str:
        """What a valid value looks like, e.g. ``"a number between 0 and 500 pg/mL"``."""
        if self.kind == "id":
            return (
                f"non-empty text of at most {MAX_ID_CHARS} printable characters without "
                "leading or trailing spaces"
            )
        if self.kind == "text":
            return f"free text of at most {MAX_NOTE_CHARS} characters"
        lo, hi = format_number(self.min), format_number(self.max)
        if self.kind == "outcome":
            return f"0 or 1 ({self.description})"
        if self.kind == "genotype":
            values = [format_number(v) for v in range(int(self.min), int(self.max) + 1)]
            listed = values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
            return _with_unit(listed, self.unit)
        if self.integer:
            return _with_unit(f"a whole number between {lo} and {hi}", self.unit)
        return _with_unit(f"a number between {lo} and {hi}", self.unit)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def column_specs(protocol: Protocol | str, *, require_outcomes: bool = False) -> tuple[
    ColumnSpec, ...
]:
    """Every accepted column of ``protocol``'s case table, in output order.

    Order: id columns, features (protocol order), ``dose_eval_gy``, ``dose_adapt_gy``,
    ``proposed_dose_adapt_gy``, the target and organ-at-risk outcomes, ``note``. With
    ``require_outcomes`` the outcomes are required.
    """
    p = load_protocol(protocol) if isinstance(protocol, str) else protocol
    specs: list[ColumnSpec] = []
    for name in p.id_columns:
        if name == "patient_id":
            specs.append(ColumnSpec(
                name, "Patient identifier", "", "id", True, None, None,
                "Pseudonymous patient identifier; unique per row"
                + (" together with site_id." if "site_id" in p.id_columns else "."),
            ))
        elif name == "site_id":
            specs.append(ColumnSpec(
                name, "Tumour site number", "", "site", True, SITE_ID_MIN, SITE_ID_MAX,
                "Number of the tumour site within the patient (one row per site).",
            ))
        else:
            raise ValueError(f"protocol {p.name}: no column rule for id column {name!r}")
    for f in p.features:
        specs.append(ColumnSpec(
            f.name, f.label, f.unit, f.kind, True, f.min, f.max, f.description,
        ))
    specs.append(ColumnSpec(
        "dose_eval_gy", "Evaluation-phase dose per fraction", "Gy", "continuous", True,
        p.dose_eval_min_gy, p.dose_eval_max_gy,
        f"Dose per fraction given in the {p.n_eval_fractions} evaluation fractions.",
    ))
    specs.append(ColumnSpec(
        "dose_adapt_gy", "Adaptive dose per fraction given", "Gy", "continuous", False,
        min(p.dose_grid_gy), max(p.dose_grid_gy),
        f"Dose per fraction actually given in the {p.n_adapt_fractions} adaptive fractions "
        "(historic decision; leave empty if unknown).",
    ))
    specs.append(ColumnSpec(
        PROPOSAL_COLUMN, "Proposed adaptive dose per fraction", "Gy", "continuous", False,
        min(p.dose_grid_gy), max(p.dose_grid_gy),
        f"The physician's own proposed dose per fraction for the {p.n_adapt_fractions} adaptive "
        "fractions, which the recommendation is compared with (leave empty for none).",
    ))
    for structure, yes, no in (
        (p.target, "achieved", "not achieved"), (p.oar, "occurred", "did not occur")
    ):
        specs.append(ColumnSpec(
            structure.outcome, structure.outcome_label, "", "outcome", require_outcomes, 0, 1,
            f"1 = {_lower_first(structure.outcome_label)} {yes}, 0 = {no}",
        ))
    specs.append(ColumnSpec(
        "note", "Note", "", "text", False, None, None,
        "Free text kept with the case and shown (escaped) in reports.",
    ))
    return tuple(specs)


def columns_markdown(protocol: Protocol | str) -> str:
    """The column table of ``protocol`` as Markdown, exactly as documented in the data format."""
    lines = [
        "| Column | Unit | Required | Accepted values | Meaning |",
        "|---|---|---|---|---|",
    ]
    for s in column_specs(protocol):
        if s.kind == "outcome":
            required, accepted = "optional", "0 or 1"
        else:
            required = "required" if s.required else "optional"
            accepted = s.accepted()
        meaning = s.description if s.kind == "outcome" else s.label + ": " + s.description
        lines.append(
            f"| `{s.name}` | {s.unit or '–'} | {required} | {accepted} | "
            f"{meaning.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Header checks


def _unknown_column_hint(name: str, specs: Sequence[ColumnSpec]) -> str:
    """Why ``name`` may have been meant as an accepted column ("" when no idea)."""
    low = name.lower()
    for s in specs:
        if low == s.name:
            return f"column names are lower case, write '{s.name}'"
    for s in specs:
        suffix = _UNIT_SUFFIXES.get(s.unit)
        if suffix is None or not s.name.endswith("_" + suffix):
            continue
        stem = s.name[: -len(suffix) - 1]
        if low == stem:
            return f"the column name carries the unit ({s.unit}), write '{s.name}'"
        rest = low[len(stem) + 1 :]
        unit_like = re.fullmatch(r"[a-z0-9]{1,6}(_[a-z0-9]{1,6})?", rest)
        if low.startswith(stem + "_") and unit_like and not rest.startswith(suffix):
            if rest == "cgy" and s.unit == "Gy":
                return (
                    f"it looks like cGy; the column expects Gy — divide by 100 and rename the "
                    f"column to '{s.name}'"
                )
            return (
                f"it looks like '{s.name}' with the unit changed to {rest}; the column expects "
                f"{s.unit} — convert the values and rename the column to '{s.name}'"
            )
    close = difflib.get_close_matches(low, [s.name for s in specs], n=1, cutoff=0.75)
    return f"perhaps you meant '{close[0]}'" if close else ""


def _other_protocol(header: Sequence[str], protocol: Protocol) -> str | None:
    """Name of another protocol whose columns the header matches better, if any."""
    names = set(header)
    here = {s.name for s in column_specs(protocol)}
    for other in PROTOCOL_NAMES:
        if other == protocol.name:
            continue
        required = {s.name for s in column_specs(other) if s.required}
        foreign = (names & required) - here
        if len(foreign) >= 3 and len(names & required) > len(names & here):
            return other
    return None


def _check_header(
    header: list[str], records: Sequence[tuple[int, list[str]]], protocol: Protocol,
    specs: Sequence[ColumnSpec],
) -> list[Problem]:
    """Unnamed, duplicated, unknown and missing columns; a header row of data; wrong protocol."""
    problems: list[Problem] = []
    by_name = {s.name: s for s in specs}
    accepted = ", ".join(s.name for s in specs)
    if not any(h in by_name for h in header) and sum(
        bool(_NUMBER.fullmatch(h)) for h in header
    ) >= max(1, len(header) // 2):
        return [Problem(1, None, short(",".join(header)), (
            "row 1 looks like data, not a header; the first row must hold the column names "
            f"({accepted})"
        ))]
    other = _other_protocol(header, protocol)
    if other is not None:
        problems.append(Problem(None, None, None, (
            f"the columns match protocol {other}, not {protocol.name}; choose protocol {other} "
            f"for this file, or use the {protocol.name} columns ({accepted})"
        )))
    positions: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        positions.setdefault(h, []).append(i)
    for i in positions.get("", []):
        if any(i < len(rec) and rec[i].strip() for _, rec in records):
            problems.append(Problem(None, None, None, (
                f"column {column_letter(i)} has values but no name in the header row; give it "
                f"one of the accepted column names ({accepted}) or delete it"
            )))
    for name, where in positions.items():
        if name and len(where) > 1:
            cols = ", ".join(column_letter(i) for i in where[:-1])
            problems.append(Problem(None, name, short(name), (
                f"column '{name}' appears {len(where)} times in the header (columns {cols} and "
                f"{column_letter(where[-1])}); keep exactly one"
            )))
    for name in positions:
        if name and name not in by_name:
            hint = _unknown_column_hint(name, specs)
            problems.append(Problem(None, name, short(name), (
                f"column '{name}' is not accepted for protocol {protocol.name}"
                + (f": {hint}" if hint else "")
                + f"; accepted columns are {accepted}"
            )))
    missing = [s for s in specs if s.required and s.name not in positions]
    if missing:
        if len(missing) == 1:
            s = missing[0]
            message = f"missing required column {s.name} — {s.label}, {s.accepted()}"
        else:
            message = (
                f"missing {len(missing)} required columns: "
                + ", ".join(s.name for s in missing)
            )
        problems.append(Problem(
            None, missing[0].name if len(missing) == 1 else None, None, message,
        ))
    return problems


# --------------------------------------------------------------------------------------------
# Cell checks


def _check_cell(spec: ColumnSpec, raw: str) -> tuple[object, str | None]:
    """Parsed value of one cell, or an error message (without the row/column prefix).

    Missing values of optional columns parse to None; text values are kept verbatim.
    """
    shown = short(raw)
    text = raw.strip()
    if spec.kind == "id":
        if not text:
            return None, f"value is missing; this column is required, expected {spec.accepted()}"
        if len(raw) > MAX_ID_CHARS:
            return None, (
                f"value '{shown}' is {len(raw)} characters long; expected at most "
                f"{MAX_ID_CHARS} characters"
            )
        if not raw.isprintable():
            return None, (
                f"value '{shown}' contains a line break or control character; expected "
                f"{spec.accepted()}"
            )
        if raw != text:
            return None, f"value '{shown}' has leading or trailing spaces; remove them"
        return restore_formula(raw), None
    if spec.kind == "text":
        if len(raw) > MAX_NOTE_CHARS:
            return None, (
                f"the note is {len(raw)} characters long; expected at most {MAX_NOTE_CHARS} "
                "characters"
            )
        return restore_formula(raw), None
    if not text or text.lower() in _NA_TOKENS:
        if not spec.required:
            return None, None
        what = "value is missing" if not text else f"value '{shown}' marks a missing value"
        return None, f"{what}; this column is required, expected {spec.accepted()}"
    if _NONFINITE.fullmatch(text):
        return None, f"value '{shown}' is not a finite number; expected {spec.accepted()}"
    if not _NUMBER.fullmatch(text):
        if spec.kind == "outcome":
            return None, f"value '{shown}' is not 0 or 1; expected {spec.accepted()}"
        if _DECIMAL_COMMA.fullmatch(text):
            hint = " (use a point as the decimal separator and no thousands separators)"
        elif _NUMBER_WITH_UNIT.fullmatch(text):
            hint = " (write the number only, without a unit)"
        else:
            hint = ""
        return None, f"value '{shown}' is not a number{hint}; expected {spec.accepted()}"
    x = float(text)
    if not math.isfinite(x):
        return None, f"value '{shown}' is not a finite number; expected {spec.accepted()}"
    if spec.kind == "outcome":
        if x not in (0.0, 1.0):
            return None, f"value '{shown}' is not 0 or 1; expected {spec.accepted()}"
        return int(x), None
    if spec.integer and not x.is_integer():
        return None, f"value '{shown}' is not a whole number; expected {spec.accepted()}"
    if not spec.min <= x <= spec.max:
        if spec.name.endswith("_gy") and x > spec.max and spec.min <= x / 100 <= spec.max:
            return None, (
                f"value '{shown}' looks like cGy; the column expects Gy — divide by 100 "
                f"(expected {spec.accepted()})"
            )
        return None, f"value '{shown}' is out of range; expected {spec.accepted()}"
    return (int(x) if spec.kind == "site" else x), None


# --------------------------------------------------------------------------------------------
# Table checks and assembly


def _validate_table(
    header: list[str],
    records: list[tuple[int, list[str]]],
    protocol: Protocol,
    *,
    require_outcomes: bool,
) -> pd.DataFrame:
    """Check a table of raw text (header + numbered data records) and build the typed cases."""
    specs = column_specs(protocol, require_outcomes=require_outcomes)
    header = [h.replace("\ufeff", "").strip() for h in header]
    records = [(row, rec) for row, rec in records if not is_blank(rec)]
    if not records:
        no_rows = [Problem(None, None, None, "the file has a header row but no data rows")]
        raise SchemaError(no_rows + _check_header(header, records, protocol, specs))
    if len(records) > MAX_ROWS:
        raise fatal(
            f"the file has {len(records)} data rows, more than the limit of {MAX_ROWS}; "
            "split it into smaller files"
        )
    problems = _check_header(header, records, protocol, specs)
    position = {}
    for i, h in enumerate(header):
        position.setdefault(h, i)
    present = [s for s in specs if s.name in position]
    row_problems: list[tuple[int, int, Problem]] = []
    parsed: list[tuple[int, dict[str, object]]] = []
    n_cols = len(header)
    for row, rec in records:
        if len(rec) > n_cols and is_blank(rec[n_cols:]):
            rec = rec[:n_cols]
        if len(rec) != n_cols:
            row_problems.append((row, -1, Problem(row, None, short(",".join(rec)), (
                f"row {row} has {len(rec)} fields but the header has {n_cols} columns; check "
                "for a missing value or an unquoted comma inside a value (write decimals with "
                "a point, e.g. 2.3)"
            ))))
            continue
        values: dict[str, object] = {}
        for spec in present:
            col = position[spec.name]
            value, error = _check_cell(spec, rec[col])
            if error is not None:
                row_problems.append((row, col, Problem(
                    row, spec.name, short(rec[col]), f"row {row}, column {spec.name}: {error}",
                )))
            values[spec.name] = value
        parsed.append((row, values))
    row_problems.extend(_duplicate_ids(parsed, protocol, position))
    row_problems.sort(key=lambda t: (t[0], t[1]))
    problems.extend(p for _, _, p in row_problems)
    if problems:
        raise SchemaError(problems)
    return _build_frame([v for _, v in parsed], present)


def _duplicate_ids(
    parsed: list[tuple[int, dict[str, object]]], protocol: Protocol, position: dict[str, int]
) -> list[tuple[int, int, Problem]]:
    """A problem for every row whose (valid) case id repeats an earlier row's."""
    ids = protocol.id_columns
    if not all(c in position for c in ids):
        return []
    column = ids[-1]
    first: dict[tuple, int] = {}
    out = []
    for row, values in parsed:
        key = tuple(values[c] for c in ids)
        if None in key:  # an invalid id, reported by its own cell check
            continue
        if key not in first:
            first[key] = row
            continue
        earlier = first[key]
        case = f"patient '{short(str(key[0]))}'"
        if len(ids) > 1:
            case += " " + " ".join(f"{c.removesuffix('_id')} {values[c]}" for c in ids[1:])
        unit = "patient" if len(ids) == 1 else "tumour site" if column == "site_id" else "case"
        message = (
            f"row {row}, column {column}: {case} also appears in row {earlier}; "
            f"each {unit} must appear once"
        )
        out.append((row, position[column], Problem(row, column, short(str(values[column])),
                                                    message)))
    return out


def _build_frame(rows: list[dict[str, object]], present: Sequence[ColumnSpec]) -> pd.DataFrame:
    data: dict[str, object] = {}
    for spec in present:
        values = [r[spec.name] for r in rows]
        if spec.kind == "id":
            data[spec.name] = pd.Series(values, dtype=str)
        elif spec.kind == "site":
            data[spec.name] = pd.Series(np.asarray(values, dtype=np.int64))
        elif spec.kind == "outcome":
            data[spec.name] = pd.Series(pd.array(values, dtype="Int64"))
        elif spec.kind == "text":
            data[spec.name] = pd.Series(["" if v is None else v for v in values], dtype=str)
        else:
            data[spec.name] = pd.Series(
                np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            )
    return pd.DataFrame(data).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Public entry points


def read_cases(
    source: str | bytes | Path | IO,
    protocol: Protocol | str,
    *,
    require_outcomes: bool = False,
) -> pd.DataFrame:
    """Parse and validate a clinic's case table (CSV, format in ``docs/data-format.md``).

    Args:
        source: the CSV. A ``pathlib.Path`` (or other ``os.PathLike``) is read from disk; ``bytes``
            are an upload's raw content; a ``str`` is CSV *text* (never a file name); a binary or
            text file object is read from its current position. At most ``MAX_FILE_BYTES`` + 1
            bytes are read.
        protocol: the protocol (or its name) whose columns and ranges apply.
        require_outcomes: when True the two outcome columns and a 0/1 value in every row are
            required (e.g. for training or calibrating a model on the clinic's data).

    Returns:
        One row per case, index 0..n-1, columns in this order: the id columns (``patient_id``
        str; ``site_id`` int64 for HCC), every feature (float64, in the protocol's units; integer
        kinds hold whole numbers), ``dose_eval_gy`` (float64, Gy), then whichever optional
        columns the file has: ``dose_adapt_gy`` and ``proposed_dose_adapt_gy`` (float64, Gy,
        NaN when empty), the outcomes
        (Int64, 0/1, <NA> when empty) and ``note`` (str, "" when empty).

    Raises:
        SchemaError: listing every problem found; nothing is returned partially.
        TypeError: ``source`` is of an unsupported type, or a str that looks like a file name.
    """
    p = load_protocol(protocol) if isinstance(protocol, str) else protocol
    text = decode(read_bytes(source, MAX_FILE_BYTES))
    records = csv_records(text)
    start = next(i for i, (_, rec) in enumerate(records) if not is_blank(rec))
    header = records[start][1]
    check_separator(header)
    return _validate_table(header, records[start + 1 :], p, require_outcomes=require_outcomes)


def validate_dataframe(
    df: pd.DataFrame, protocol: Protocol | str, *, require_outcomes: bool = False
) -> pd.DataFrame:
    """Apply :func:`read_cases`' column, cell and table checks to an in-memory table.

    Rows are numbered as if the table were a CSV file (first row = row 2); the index is ignored.
    Returns the typed cases exactly as :func:`read_cases` would, or raises :class:`SchemaError`.
    """
    p = load_protocol(protocol) if isinstance(protocol, str) else protocol
    header = [str(c) for c in df.columns]
    records = [
        (i + 2, [cell_text(v) for v in row])
        for i, row in enumerate(df.itertuples(index=False, name=None))
    ]
    return _validate_table(header, records, p, require_outcomes=require_outcomes)
