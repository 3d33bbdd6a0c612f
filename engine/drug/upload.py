"""A tumour's molecular profile uploaded for drug-resistance prediction: the CSV format and its
validator (format in ``docs/data-format.md``, section "Drug-resistance profiles").

One row per sample:

* ``sample_id`` — first column, 1–64 printable characters, unique;
* ``tissue`` — optional, a DepMap lineage of the training lines (``lung``, ``liver``, …) or
  empty; it selects the tissue's gene ranking shown beside the prediction, nothing else;
* ``<SYMBOL>`` — **all 706 panel genes**, expression as z-scores on the training panel's scale
  (DepMap RNA-seq z-scored per gene over the 580 panel lines), between −15 and 25;
* ``mut_<SYMBOL>`` — optional, 0 (not mutated) or 1 (a mutation called), any subset of genes;
  genes without a column are taken as not mutated (:data:`engine.drug.serving.DEFAULT_MUTATION`);
* ``cn_<SYMBOL>`` — optional, relative copy number (1 = diploid), 0–20, any subset of genes;
  genes without a column are taken as diploid (:data:`engine.drug.serving.DEFAULT_COPY_NUMBER`);
* ``histology`` and ``raw_<GENE>`` — accepted and not read (they belong to the SF2 upload, so
  one file serves both panels).

:func:`read_profile_upload` refuses a file with every problem found, each naming the row, the
column, the value and what is accepted (:class:`engine.core.tabular.SchemaError`), using the
file-level checks of :mod:`engine.core.tabular` (size, encoding, quoting, separator) and the
row-level checks every profile upload makes (:mod:`engine.core.profiles`: sample id, tissue,
expression z-scores and their scale).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from engine.core.profiles import (
    MAX_ID_CHARS,
    Z_MEAN_LIMIT,
    Z_VALUE_RANGE,
    case_hint,
    names,
    parse_number,
    sample_id_problem,
    scale_problem,
    tissue_problem,
    z_score_problem,
)
from engine.core.tabular import (
    Problem,
    SchemaError,
    check_separator,
    csv_records,
    decode,
    fatal,
    is_blank,
    read_bytes,
    short,
)

__all__ = [
    "CN_PREFIX",
    "CN_RANGE",
    "IGNORED_COLUMNS",
    "MAX_ID_CHARS",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_ROWS",
    "MUT_PREFIX",
    "Z_MEAN_LIMIT",
    "Z_VALUE_RANGE",
    "ProfileUpload",
    "read_profile_upload",
    "write_example_upload",
]

MUT_PREFIX = "mut_"
"""Prefix of a mutation column (``mut_EGFR``)."""
CN_PREFIX = "cn_"
"""Prefix of a copy-number column (``cn_EGFR``)."""
IGNORED_COLUMNS: tuple[str, ...] = ("histology",)
"""Columns accepted and not read (with ``raw_…``: the SF2 upload's)."""
CN_RANGE: tuple[float, float] = (0.0, 20.0)
"""Accepted relative copy number (1 = diploid). The panel's own range is 0 … 7.2."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Largest accepted file (a full profile with mutation and copy-number columns is ≈ 25 kB)."""
MAX_UPLOAD_ROWS = 500
"""Most samples in one file."""


@dataclass(frozen=True, eq=False)
class ProfileUpload:
    """A validated upload."""

    samples: pd.DataFrame
    """Index ``sample_id`` (file order); column ``tissue`` (empty text when not given)."""
    x: np.ndarray
    """float32 ``[n, 3 · 706]``: the model's features in its column order; mutation and copy
    number filled with the defaults where the file has no column."""
    n_mutation_columns: int
    """Genes with a ``mut_`` column (the others taken as not mutated)."""
    n_copy_number_columns: int
    """Genes with a ``cn_`` column (the others taken as diploid)."""
    ignored_columns: tuple[str, ...]
    """Columns accepted and not read."""

    @property
    def notes(self) -> list[str]:
        """What the file did not give and what was assumed instead."""
        n_genes = self.x.shape[1] // 3
        out = []
        if self.n_mutation_columns < n_genes:
            out.append(f"mutations given for {self.n_mutation_columns} of {n_genes} genes; the "
                       "others are taken as not mutated")
        if self.n_copy_number_columns < n_genes:
            out.append(f"copy numbers given for {self.n_copy_number_columns} of {n_genes} "
                       "genes; the others are taken as diploid (1)")
        if self.ignored_columns:
            out.append(f"not read (SF2 columns): {', '.join(self.ignored_columns[:5])}"
                       + (f" and {len(self.ignored_columns) - 5} more"
                          if len(self.ignored_columns) > 5 else ""))
        return out


def read_profile_upload(
    source: str | bytes | os.PathLike | IO,
    *,
    feature_names: Sequence[str],
    tissues: Sequence[str] = (),
    default_mutation: float = 0.0,
    default_copy_number: float = 1.0,
) -> ProfileUpload:
    """Read and validate uploaded profiles (module docstring: the format).

    Args:
        source: a path (``pathlib.Path``), the file's bytes, CSV text, or an open file.
        feature_names: the model's features ``"<modality>:<SYMBOL> (<Entrez>)"`` in column
            order (expr, mut, cn blocks of the same genes).
        tissues: accepted ``tissue`` values (empty: any text).
        default_mutation: value of a gene without a ``mut_`` column.
        default_copy_number: value of a gene without a ``cn_`` column.

    Raises:
        SchemaError: every problem found (row, column, value, accepted range).
    """
    text = decode(read_bytes(source, MAX_UPLOAD_BYTES, reader="read_profile_upload"))
    records = [(row, rec) for row, rec in csv_records(text) if not is_blank(rec)]
    if not records:
        raise fatal("the file is empty: expected a header row starting with sample_id")
    header_row, header = records[0]
    check_separator(header)
    header = [h.strip() for h in header]
    while header and not header[-1]:
        header.pop()  # trailing commas a spreadsheet writes
    genes = [n.split(":", 1)[1].split(" (", 1)[0] for n in feature_names
             if n.startswith("expr:")]
    gene_set = set(genes)
    upper = {g.upper(): g for g in genes}
    problems: list[Problem] = []
    if not header or header[0] != "sample_id":
        first = header[0] if header else ""
        problems.append(Problem(header_row, first or None, short(first),
                                f"first column is {short(first)!r}; it must be 'sample_id' "
                                "(then tissue, then one column per gene)"))
    seen: dict[str, int] = {}
    expr_cols: dict[str, int] = {}
    mut_cols: dict[str, int] = {}
    cn_cols: dict[str, int] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    tissue_j: int | None = None
    for j, name in enumerate(header):
        if j == 0:
            continue
        if not name:
            problems.append(Problem(header_row, None, None,
                                    f"column {j + 1} has no name in the header row; name it or "
                                    "remove it"))
            continue
        if name in seen:
            problems.append(Problem(header_row, name, short(name),
                                    f"column {short(name)!r} appears twice (columns "
                                    f"{seen[name] + 1} and {j + 1}); keep exactly one"))
            continue
        seen[name] = j
        if name == "tissue":
            tissue_j = j
        elif name in IGNORED_COLUMNS or name.startswith("raw_"):
            ignored.append(name)
        elif name in gene_set:
            expr_cols[name] = j
        elif name.startswith(MUT_PREFIX) and name[len(MUT_PREFIX):] in gene_set:
            mut_cols[name[len(MUT_PREFIX):]] = j
        elif name.startswith(CN_PREFIX) and name[len(CN_PREFIX):] in gene_set:
            cn_cols[name[len(CN_PREFIX):]] = j
        else:
            unknown.append(name)
    if unknown:
        hint = case_hint(unknown, upper, ("", MUT_PREFIX, CN_PREFIX))
        problems.append(Problem(header_row, unknown[0], short(unknown[0]),
                                f"unknown column(s) {names(unknown)}: accepted are sample_id, "
                                f"tissue, the {len(genes)} panel genes (expression z-scores), "
                                f"mut_<GENE> (0/1) and cn_<GENE> (copy number) of those genes"
                                f"{hint}"))
    missing = [g for g in genes if g not in expr_cols]
    if missing:
        problems.append(Problem(header_row, missing[0], None,
                                f"missing gene column(s) {names(missing)}: the drug models need "
                                f"the expression z-score of all {len(genes)} panel genes "
                                "(docs/data-format.md lists them; "
                                "assets/examples/drug_profiles.csv has every column)"))
    if problems:
        raise SchemaError(problems)

    body = records[1:]
    if not body:
        raise fatal("the file has a header row but no samples")
    if len(body) > MAX_UPLOAD_ROWS:
        raise fatal(f"the file has {len(body):,} samples, more than the limit of "
                    f"{MAX_UPLOAD_ROWS:,}; split it into smaller files")
    n_genes = len(genes)
    gene_pos = {g: i for i, g in enumerate(genes)}
    x = np.empty((len(body), 3 * n_genes), dtype=np.float32)
    x[:, n_genes:2 * n_genes] = default_mutation
    x[:, 2 * n_genes:] = default_copy_number
    ids: list[str] = []
    tissue_values: list[str] = []
    id_rows: dict[str, int] = {}
    value_rows: dict[bytes, tuple[int, str]] = {}
    accepted_tissues = set(tissues)
    clo, chi = CN_RANGE
    width = len(header)
    for i, (row, rec) in enumerate(body):
        rec = list(rec)
        while len(rec) > width and not rec[-1].strip():
            rec.pop()
        if len(rec) != width:
            problems.append(Problem(row, None, None,
                                    f"row {row} has {len(rec)} fields but the header has "
                                    f"{width} columns; check for a missing value or an unquoted "
                                    "comma inside a value"))
            ids.append("")
            tissue_values.append("")
            continue
        sid = rec[0].strip()
        found = [sample_id_problem(row, sid, id_rows)]
        ids.append(sid)
        tissue = rec[tissue_j].strip() if tissue_j is not None else ""
        found.append(tissue_problem(row, tissue, accepted_tissues,
                                    "a lineage of the training lines"))
        tissue_values.append(tissue)
        problems += [p for p in found if p is not None]
        ok = True
        for cols, offset, check in ((expr_cols, 0, "z"), (mut_cols, n_genes, "mut"),
                                    (cn_cols, 2 * n_genes, "cn")):
            for gene, j in cols.items():
                cell = rec[j].strip()
                column = header[j]
                if check == "z":
                    value, problem = z_score_problem(row, column, f"column {column}", cell)
                    if problem is not None:
                        ok = False
                        problems.append(problem)
                    else:
                        x[i, offset + gene_pos[gene]] = value
                    continue
                value = parse_number(cell)
                what = None
                if not cell:
                    what = "is empty"
                elif value is None:
                    what = f"value {short(cell)!r} is not a number"
                elif check == "mut" and value not in (0.0, 1.0):
                    what = f"value {short(cell)!r} is not 0 or 1"
                elif check == "cn" and not clo <= value <= chi:
                    what = f"value {short(cell)} is out of range"
                if what is not None:
                    ok = False
                    accepted = ("0 (not mutated) or 1 (mutated)" if check == "mut" else
                                f"a relative copy number between {clo:g} and {chi:g} "
                                "(1 = diploid)")
                    problems.append(Problem(row, column, short(cell),
                                            f"row {row}, column {column}: {what}; accepted: "
                                            f"{accepted}"))
                else:
                    x[i, offset + gene_pos[gene]] = value
        if not ok:
            continue
        problem = scale_problem(row, x[i, :n_genes])
        if problem is not None:
            problems.append(problem)
            continue
        key = x[i].tobytes()
        if key in value_rows:
            first_row, first_id = value_rows[key]
            problems.append(Problem(row, None, short(sid),
                                    f"row {row} (sample {short(sid)!r}) repeats the values of "
                                    f"row {first_row} (sample {short(first_id)!r}) exactly; "
                                    "remove the duplicate row"))
        else:
            value_rows[key] = (row, sid)
    if problems:
        raise SchemaError(problems)
    index = pd.Index(ids, name="sample_id")
    return ProfileUpload(samples=pd.DataFrame({"tissue": tissue_values}, index=index), x=x,
                         n_mutation_columns=len(mut_cols), n_copy_number_columns=len(cn_cols),
                         ignored_columns=tuple(ignored))


def write_example_upload(path: Path, data_dir: Path | None = None) -> Path:
    """Write ``assets/examples/drug_profiles.csv``: the panel lines with no drug label at all
    (no served model was trained on them), every column (expression, mutation, copy number)."""
    from engine.core.tabular import formula_safe
    from engine.drug.data import MISSING, load_drug_data

    data = load_drug_data(data_dir)
    unlabelled = np.flatnonzero((data.y != MISSING).sum(1) == 0)
    genes = [g.split(" (", 1)[0] for g in data.genes]
    n = len(genes)
    rows = []
    for i in unlabelled:
        row: dict[str, object] = {"sample_id": data.cell_line_names[i],
                                  "tissue": data.lineages[i]}
        row.update({g: round(float(v), 5) for g, v in zip(genes, data.x[i, :n], strict=True)})
        row.update({f"{MUT_PREFIX}{g}": int(v) for g, v in
                    zip(genes, data.x[i, n:2 * n], strict=True)})
        row.update({f"{CN_PREFIX}{g}": round(float(v), 5) for g, v in
                    zip(genes, data.x[i, 2 * n:], strict=True)})
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    formula_safe(pd.DataFrame(rows)).to_csv(path, index=False, lineterminator="\n")
    return path
