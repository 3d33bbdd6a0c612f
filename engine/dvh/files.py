"""DVH tables: the documented CSV and the text export of Varian Eclipse, read into
:class:`~engine.dvh.dvh.DVH` per structure; and the CSV written back.

**CSV** (docs/data-format.md, "DVH files"): UTF-8, comma-separated, a header row with
``structure``, ``dose_gy`` and exactly one of ``volume_cc`` / ``volume_percent``, optionally
``kind`` (``cumulative``, the default, or ``differential``). A cumulative row gives the volume
receiving at least ``dose_gy``; a differential row the volume in the bin centred on ``dose_gy``.
Rows of a structure are in ascending dose.

**Eclipse text export** ("Export DVH in tabular format"): a header of ``Key: value`` lines (its
``Type:`` line says cumulative or differential), then one section per structure starting with
``Structure: NAME``, its ``Volume [cm³]:`` line, a column header (``Dose [Gy]`` or
``Dose [cGy]``, ``Relative dose [%]``, and ``Ratio of Total Structure Volume [%]``,
``Structure Volume [cm³]`` or ``dVolume / dDose [cm³ / Gy]``) and rows of numbers separated by
tabs or spaces. The patient's name and id in its header are never read.

Every problem is refused with a :class:`~engine.dvh.sources.PlanError` listing all of them (row or
line numbers, column, value, what is expected).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.core.tabular import (
    SchemaError,
    check_separator,
    csv_records,
    decode,
    is_blank,
    neutralise_formula,
    restore_formula,
    short,
)
from engine.dvh.dvh import DVH, from_cumulative, from_differential
from engine.dvh.sources import FileInput, ImportLimits, PlanError, display_name, read_limited

__all__ = [
    "CSV_COLUMNS",
    "DVHTable",
    "dvh_csv",
    "read_dvh_file",
]

CSV_COLUMNS = ("structure", "dose_gy", "volume_cc", "volume_percent", "kind")
"""Columns of the DVH CSV (``volume_cc`` and ``volume_percent``: exactly one)."""
KINDS = ("cumulative", "differential")
MAX_STRUCTURES = 500
"""Most structures in one DVH file."""
MAX_DOSE_GY = 300.0
"""Highest dose a DVH table may hold, Gy: above it the column is taken to be in cGy."""
_VOLUME_TOLERANCE = 1e-6
"""Relative rise a cumulative volume may show (rounding in exports) before it is refused."""


@dataclass(frozen=True)
class DVHTable:
    """The DVHs of one file, by structure name (in file order)."""

    dvhs: dict[str, DVH]
    """Structure name → DVH."""
    file: str
    """Display name of the file."""
    format: str
    """``"csv"`` or ``"eclipse"``."""
    prescription_gy: float | None = None
    """Prescribed dose in the file's header (Eclipse), Gy."""
    warnings: tuple[str, ...] = field(default=())
    """Remarks on the reading (e.g. volumes only relative)."""


def read_dvh_file(source: FileInput, limits: ImportLimits | None = None) -> DVHTable:
    """Read a DVH table, CSV or Eclipse text (recognised by its ``Structure:`` sections).

    Raises:
        PlanError: naming the file and every problem found.
    """
    name = display_name(source)
    data = read_limited(source, (limits or ImportLimits()).dvh_bytes, "DVH")
    text = _eclipse_text(data)
    if text is not None:
        return _read_eclipse(text, name)
    try:
        return _read_csv(decode(data), name)
    except SchemaError as err:
        problems = tuple(f"{name}: {p.message}" for p in err.problems)
        raise PlanError(f"{name}: {err}", problems) from err


# --------------------------------------------------------------------------------------------
# CSV


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_csv(text: str, name: str) -> DVHTable:
    from engine.core.tabular import Problem, fatal

    records = csv_records(text)
    records = [(row, rec) for row, rec in records if not is_blank(rec)]
    if not records:
        raise fatal("the file is empty; expected a header row: structure,dose_gy,volume_cc")
    _header_row, header = records[0]
    check_separator(header)
    columns = [h.strip() for h in header]
    problems: list[Problem] = []
    for col in columns:
        if col not in CSV_COLUMNS:
            hint = ""
            if col.lower() in CSV_COLUMNS:
                hint = f": column names are lower case, write {col.lower()!r}"
            elif col.lower() == "dose_cgy":
                hint = ": the column expects Gy — divide by 100 and name it 'dose_gy'"
            problems.append(Problem(None, col, short(col), (
                f"column {short(col)!r} is not accepted{hint}; accepted columns are "
                f"{', '.join(CSV_COLUMNS)}")))
    for col in set(columns):
        if columns.count(col) > 1:
            problems.append(Problem(None, col, col, f"column {col!r} appears "
                                    f"{columns.count(col)} times; keep exactly one"))
    volume_cols = [c for c in ("volume_cc", "volume_percent") if c in columns]
    for col in ("structure", "dose_gy"):
        if col not in columns:
            problems.append(Problem(None, col, None, f"missing required column {col}"))
    if len(volume_cols) != 1:
        problems.append(Problem(None, None, None, (
            "expected exactly one volume column, volume_cc (cm³) or volume_percent (% of the "
            f"structure); found {', '.join(volume_cols) or 'none'}")))
    if problems:
        raise SchemaError(problems)
    vcol = volume_cols[0]
    percent = vcol == "volume_percent"
    idx = {c: columns.index(c) for c in columns}
    rows: dict[str, list[tuple[int, float, float]]] = {}
    kinds: dict[str, tuple[str, int]] = {}
    for row, rec in records[1:]:
        if len(rec) != len(columns):
            problems.append(Problem(row, None, None, (
                f"row {row} has {len(rec)} fields but the header has {len(columns)} columns")))
            continue
        structure = restore_formula(rec[idx["structure"]].strip())
        if not structure:
            problems.append(Problem(row, "structure", "", f"row {row}, column structure: value "
                                    "is missing; expected the structure's name"))
            continue
        if len(structure) > 64:
            problems.append(Problem(row, "structure", short(structure), (
                f"row {row}, column structure: the name is {len(structure)} characters long; "
                "expected at most 64")))
            continue
        dose = _number(rec[idx["dose_gy"]])
        if dose is None or dose < 0:
            problems.append(Problem(row, "dose_gy", short(rec[idx["dose_gy"]]), (
                f"row {row}, column dose_gy: value {short(rec[idx['dose_gy']])!r} is not a "
                "dose; expected a number ≥ 0 (Gy)")))
            continue
        volume = _number(rec[idx[vcol]])
        hi = 100.0 + 1e-6 if percent else math.inf
        if volume is None or not 0 <= volume <= hi:
            accepted = "a number between 0 and 100 (%)" if percent else "a number ≥ 0 (cm³)"
            problems.append(Problem(row, vcol, short(rec[idx[vcol]]), (
                f"row {row}, column {vcol}: value {short(rec[idx[vcol]])!r} is out of range; "
                f"expected {accepted}")))
            continue
        kind = rec[idx["kind"]].strip().lower() if "kind" in idx else ""
        kind = kind or "cumulative"
        if kind not in KINDS:
            problems.append(Problem(row, "kind", short(kind), (
                f"row {row}, column kind: value {short(kind)!r}; expected cumulative or "
                "differential")))
            continue
        first = kinds.setdefault(structure, (kind, row))
        if first[0] != kind:
            problems.append(Problem(row, "kind", kind, (
                f"row {row}, column kind: structure {short(structure)!r} is {first[0]} in row "
                f"{first[1]} and {kind} here; one DVH per structure")))
            continue
        rows.setdefault(structure, []).append((row, dose, volume))
    if not rows and not problems:
        problems.append(Problem(None, None, None, "the file has a header row but no DVH rows"))
    top = max((v[1] for values in rows.values() for v in values), default=0.0)
    if top > MAX_DOSE_GY:
        problems.append(Problem(None, "dose_gy", f"{top:g}", (
            f"column dose_gy: doses up to {top:g} look like cGy; the column expects Gy — divide "
            f"by 100 (accepted up to {MAX_DOSE_GY:g} Gy)")))
    if len(rows) > MAX_STRUCTURES:
        problems.append(Problem(None, "structure", None, (
            f"the file holds {len(rows)} structures, more than the limit of {MAX_STRUCTURES}")))
    dvhs: dict[str, DVH] = {}
    for structure, values in rows.items():
        kind = kinds[structure][0]
        message = _check_curve(structure, values, kind, percent)
        if message:
            problems.append(Problem(values[0][0], None, None, message))
            continue
        dose = np.array([v[1] for v in values])
        vol = np.array([v[2] for v in values])
        if kind == "cumulative":
            dvhs[structure] = from_cumulative(dose, vol, percent=percent)
        else:
            dvhs[structure] = from_differential(dose, vol, percent=percent)
    if problems:
        raise SchemaError(problems)
    warnings = (f"{name} gives volumes in % only: absolute volumes (cm³), D0.03cc and cm³ "
                "metrics are not available; max is the highest dose in the table",) if percent \
        else ()
    return DVHTable(dvhs=dvhs, file=name, format="csv", warnings=warnings)


def _check_curve(structure: str, values: list[tuple[int, float, float]], kind: str,
                 percent: bool) -> str | None:
    """Why a structure's rows are not a DVH (None when they are)."""
    label = f"structure {short(structure)!r}"
    for (r0, d0, _), (r1, d1, _) in itertools.pairwise(values):
        if not d1 > d0:
            return (f"{label}: dose_gy {d1:g} in row {r1} is not above {d0:g} in row {r0}; "
                    "rows of a structure must be in ascending dose, each dose once")
    vols = [v[2] for v in values]
    if not sum(vols) > 0:
        return f"{label}: every volume is 0; the DVH holds no volume"
    if kind == "cumulative":
        if len(values) < 2:
            return f"{label}: a cumulative DVH needs at least 2 rows"
        top = max(vols)
        for (_, _, v0), (r1, _, v1) in itertools.pairwise(values):
            if v1 > v0 + _VOLUME_TOLERANCE * top:
                return (f"{label}: the volume rises from {v0:g} to {v1:g} in row {r1}; a "
                        "cumulative DVH never rises with dose — if this is a differential DVH, "
                        "add a column kind with value differential")
    return None


def dvh_csv(dvhs: Mapping[str, DVH], *, n_points: int = 200) -> str:
    """A cumulative DVH CSV (``structure,dose_gy,volume_cc`` when every volume is known, else
    ``volume_percent``) that :func:`read_dvh_file` reads back; structure names are
    formula-safe."""
    absolute = all(d.total_volume_cc is not None for d in dvhs.values())
    lines = ["structure,dose_gy," + ("volume_cc" if absolute else "volume_percent")]
    for name, dvh in dvhs.items():
        dose, percent = dvh.cumulative(n_points)
        cell = neutralise_formula(name)
        if any(ch in cell for ch in ',"\n\r'):
            cell = '"' + cell.replace('"', '""') + '"'
        scale = dvh.total_volume_cc / 100.0 if absolute else 1.0
        for d, v in zip(dose, percent, strict=True):
            lines.append(f"{cell},{d:.4f},{v * scale:.6g}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Eclipse text export


def _eclipse_text(data: bytes) -> str | None:
    """The text of an Eclipse DVH export (None when ``data`` is not one): UTF-8, UTF-16 with a
    byte-order mark, or Windows-1252 (Eclipse writes "cm³" in the local code page)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    if re.search(r"^\s*Structure\s*:", text, flags=re.MULTILINE):
        return text
    return None


_COLUMN = re.compile(r"([^\[\]]+?)\s*\[([^\]]+)\]")


def _read_eclipse(text: str, name: str) -> DVHTable:
    lines = text.splitlines()
    problems: list[str] = []
    kind = "cumulative"
    prescription: float | None = None
    starts = [i for i, ln in enumerate(lines) if re.match(r"^\s*Structure\s*:", ln)]
    for ln in lines[: starts[0]]:
        key, _, value = ln.partition(":")
        if key.strip().lower() == "type" and "differential" in value.lower():
            kind = "differential"
        match = re.match(r"^\s*Prescribed dose\s*\[(c?Gy)\]\s*:\s*([-\d.]+)", ln, re.I)
        if match and _number(match.group(2)) is not None:
            prescription = float(match.group(2)) / (100.0 if match.group(1).lower() == "cgy"
                                                    else 1.0)
    dvhs: dict[str, DVH] = {}
    first_line: dict[str, int] = {}
    bounds = [*starts, len(lines)]
    for start, end in itertools.pairwise(bounds):
        structure = lines[start].split(":", 1)[1].strip()
        if not structure:
            problems.append(f"{name}, line {start + 1}: a Structure: line without a name")
            continue
        if structure in first_line:
            problems.append(f"{name}, line {start + 1}: structure {short(structure)!r} appears "
                            f"again (first on line {first_line[structure]}); export the DVHs of "
                            "one plan")
            continue
        first_line[structure] = start + 1
        dvh, problem = _eclipse_section(lines, start, end, structure, kind, name)
        if problem:
            problems.append(problem)
        elif dvh is not None:
            dvhs[structure] = dvh
    if not dvhs and not problems:
        problems.append(f"{name}: no structure section holds DVH rows")
    if problems:
        more = len(problems) - 1
        summary = problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})"
                                 if more else "")
        raise PlanError(summary, tuple(problems))
    return DVHTable(dvhs=dvhs, file=name, format="eclipse", prescription_gy=prescription)


def _eclipse_section(lines: list[str], start: int, end: int, structure: str, kind: str,
                     name: str) -> tuple[DVH | None, str | None]:
    label = f"{name}, structure {short(structure)!r}"
    total_cc: float | None = None
    header_at = None
    for i in range(start + 1, end):
        ln = lines[i]
        match = re.match(r"^\s*Volume\s*\[(cm³|cm3|cc|ccm)\]\s*:\s*(\S+)", ln, re.I)
        if match:
            total_cc = _number(match.group(2))
        if re.match(r"^\s*Dose\s*\[", ln, re.I) and "volume" in ln.lower():
            header_at = i
            break
    if header_at is None:
        return None, f"{label}: no column header (a line 'Dose [Gy] … Volume …') in its section"
    columns = [(c.strip().lower(), u.strip().lower()) for c, u in _COLUMN.findall(
        lines[header_at])]
    dose_col = next((i for i, (c, u) in enumerate(columns)
                     if c == "dose" and u in ("gy", "cgy")), None)
    if dose_col is None:
        if any(c == "dose" or c.startswith("relative dose") for c, _ in columns):
            return None, (f"{label}: the DVH gives only relative dose (%); export it with "
                          "absolute dose (Gy or cGy)")
        return None, f"{label}: no 'Dose [Gy]' or 'Dose [cGy]' column"
    dose_factor = 0.01 if columns[dose_col][1] == "cgy" else 1.0
    vol_col, vol_kind = None, None
    for i, (c, u) in enumerate(columns):
        if c.startswith("ratio of total structure volume") or (c == "volume" and u == "%"):
            vol_col, vol_kind = i, "percent"
        elif c.startswith("structure volume") or (c == "volume" and u.startswith("cm")):
            vol_col, vol_kind = i, "cc"
        elif c.startswith("dvolume / ddose") or c.startswith("dvolume/ddose"):
            vol_col, vol_kind = i, "percent_per_gy" if "%" in u else "cc_per_gy"
    if vol_col is None:
        return None, (f"{label}: no volume column (Ratio of Total Structure Volume [%], "
                      "Structure Volume [cm³] or dVolume / dDose)")
    dose, vol = [], []
    for i in range(header_at + 1, end):
        ln = lines[i].strip()
        if not ln:
            if dose:
                break
            continue
        fields = re.split(r"[\t ]+", ln)
        values = [_number(f) for f in fields]
        if len(fields) != len(columns) or any(v is None for v in values):
            return None, (f"{label}, line {i + 1}: {short(ln)!r} is not {len(columns)} numbers "
                          f"({', '.join(c for c, _ in columns)})")
        dose.append(values[dose_col] * dose_factor)  # type: ignore[operator]
        vol.append(values[vol_col])
    if not dose:
        return None, None  # an empty section (a structure without a DVH): skipped
    d = np.array(dose)
    v = np.array(vol, dtype=np.float64)
    if np.any(np.diff(d) <= 0):
        bad = int(np.nonzero(np.diff(d) <= 0)[0][0]) + 1
        return None, f"{label}: dose {d[bad]:g} Gy is not above the previous row's {d[bad - 1]:g}"
    if np.any(v < 0) or not v.sum() > 0:
        return None, f"{label}: volumes must be ≥ 0 and not all 0"
    percent = vol_kind.startswith("percent")
    if vol_kind.endswith("per_gy"):  # differential per unit dose: × the bin width
        width = np.diff(d, prepend=d[0] - (d[1] - d[0]) if len(d) > 1 else 2 * d[0])
        return from_differential(d, v * width, percent=percent, total_volume_cc=total_cc), None
    if kind == "differential":
        return from_differential(d, v, percent=percent, total_volume_cc=total_cc), None
    if np.any(np.diff(v) > _VOLUME_TOLERANCE * v.max()):
        return None, f"{label}: the cumulative volume rises with dose"
    return from_cumulative(d, v, percent=percent, total_volume_cc=total_cc), None
