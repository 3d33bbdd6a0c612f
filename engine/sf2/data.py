"""Cell-line radiation response joined to DepMap omics, subgroups, and the upload format.

Sources (copied into ``assets/data/``, provenance in ``assets/data/SOURCES.md``):

* ``yard2016_radiation_response.csv`` — Yard et al. 2016 (Nat Commun 7:11428): surviving
  fraction after 1–10 Gy for 498 cancer cell lines in our copy (some labels are withheld for
  independent validation), SF2 (the measured surviving fraction at 2 Gy), LQ fits, tissue and
  histology. A 9-day high-throughput *proliferation* assay (relative survival), not a classical
  clonogenic assay; 13 lines have SF2 > 1.
* ``yard2016_to_depmap_crosswalk.csv`` — Yard line → DepMap ``ACH-`` id (534 of 540 matched).
* ``ccle_expression_tgsa_depmap_zscore_580x706_census.csv`` — DepMap RNA-seq expression of 706
  COSMIC census genes for 580 lines, **already z-scored per gene across those 580 lines**
  (TGSA's preprocessing). This is the scale the SF2 model works on and the scale an upload must
  use. Fine for learning and correlation, not for the rank-based RSI.
* ``tgsa_ccle_mutation_580x706_census.csv`` (0/1 mutation calls) and
  ``ccle_copynumber_tgsa_depmap_580x706_census.csv`` (relative copy number, ≈1 = diploid) for the
  same lines and genes; ``tgsa_census706_gene_map.csv`` maps their Entrez ids to HGNC symbols.
* ``ccle_expression_radiogx_clevelandsmall_10x20049.csv`` — CCLE microarray (RMA, log2) of 10
  Yard lines with all RSI genes: the only data on which RSI can be computed as published.

Join: Yard line (``cell_line``) → crosswalk ``DepMap_ID`` → omics rows. Lines with an SF2 and a
row in the expression panel form the :class:`CellLinePanel` (273 lines, 57 of them lung).

Subgroups (the meta-learning tasks): within lung, histology (:data:`LUNG_HISTOLOGY_GROUPS`);
across the pan-cancer set, the primary site (Yard ``Primarysite``, which is right for the few
lines whose ``tissueid`` is odd), with sites of fewer than :data:`MIN_SUBGROUP_LINES` lines
pooled as ``"other"``.

Upload format (``docs/sf2.md``): CSV, one row per sample; first column ``sample_id``; optional
``tissue`` and ``histology``; then one column per gene symbol of the 706-gene panel on the
panel's z-score scale; optionally ``raw_<GENE>`` columns holding the 10 RSI genes on an absolute
expression scale (log2 RMA, TPM, log2 TPM, ...) for RSI and GARD. :func:`read_expression_upload`
validates it and raises :class:`engine.core.tabular.SchemaError` listing every problem, each naming
the row, column, value and accepted range.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from engine import settings
from engine.core.profiles import (
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
from engine.core.tabular import Problem, SchemaError, formula_safe, short

__all__ = [
    "DATA_DIR",
    "LUNG_HISTOLOGY_GROUPS",
    "LUNG_HISTOLOGY_LABELS",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_ROWS",
    "MIN_SUBGROUP_LINES",
    "RAW_PREFIX",
    "RSI_GENES",
    "SETTINGS",
    "Z_MEAN_LIMIT",
    "Z_VALUE_RANGE",
    "CellLinePanel",
    "ExpressionUpload",
    "load_panel",
    "load_rsi_profiles",
    "read_expression_upload",
    "subgroups",
    "write_example_uploads",
]

DATA_DIR = settings.DATA_DIR
"""The shipped data files (``assets/data``)."""

SETTINGS: tuple[str, ...] = ("lung", "pan_cancer")
"""Evaluation settings: lung lines with histology tasks; all lines with tissue tasks."""

RSI_GENES: tuple[str, ...] = (
    "AR", "JUN", "STAT1", "PRKCB", "RELA", "ABL1", "SUMO1", "PAK2", "HDAC1", "IRF1",
)
"""The 10 genes of the Radiosensitivity Index (Eschrich et al. 2009), in coefficient order."""

RAW_PREFIX = "raw_"
"""Prefix of upload columns holding an RSI gene on an absolute expression scale."""

LUNG_HISTOLOGY_GROUPS: dict[str, str] = {
    "adenocarcinoma": "adenocarcinoma",
    "bronchioloalveolar_adenocarcinoma": "adenocarcinoma",
    "squamous_cell_carcinoma": "squamous",
    "large_cell_carcinoma": "large_cell",
    "small_cell_carcinoma": "small_cell",
    "non_small_cell_carcinoma": "nsclc_other",
    "mixed_adenosquamous_carcinoma": "nsclc_other",
    "mucoepidermoid_carcinoma": "nsclc_other",
    "NS": "nsclc_other",
}
"""Yard ``Subhistology`` of a lung line → histology subgroup. Bronchioloalveolar carcinoma is an
adenocarcinoma; NSCLC not otherwise specified, adenosquamous (1 line) and unspecified (1 line)
are pooled as ``nsclc_other`` (too few lines for tasks of their own)."""

LUNG_HISTOLOGY_LABELS: dict[str, str] = {
    "adenocarcinoma": "Adenocarcinoma",
    "squamous": "Squamous cell carcinoma",
    "large_cell": "Large cell carcinoma",
    "small_cell": "Small cell carcinoma",
    "nsclc_other": "NSCLC, not otherwise specified / other",
}
"""Display names of the lung histology subgroups."""

MIN_SUBGROUP_LINES = 5
"""Pan-cancer: tissues with fewer labelled lines than this are pooled as ``"other"``."""

RAW_VALUE_RANGE: tuple[float, float] = (-30.0, 1e7)
"""Accepted ``raw_`` value: any absolute scale (log2 values may be negative, TPM up to 1e6)."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Largest accepted upload, bytes (a full 706-gene profile is ≈ 7 kB per sample)."""
MAX_UPLOAD_ROWS = 2000
"""Largest accepted number of samples in one upload."""

_FILES = {
    "response": "yard2016_radiation_response.csv",
    "crosswalk": "yard2016_to_depmap_crosswalk.csv",
    "expression": "ccle_expression_tgsa_depmap_zscore_580x706_census.csv",
    "mutation": "tgsa_ccle_mutation_580x706_census.csv",
    "copy_number": "ccle_copynumber_tgsa_depmap_580x706_census.csv",
    "gene_map": "tgsa_census706_gene_map.csv",
    "rsi_profiles": "ccle_expression_radiogx_clevelandsmall_10x20049.csv",
}


@dataclass(frozen=True)
class CellLinePanel:
    """Cell lines with a measured SF2 joined to their DepMap omics (read-only)."""

    lines: pd.DataFrame
    """One row per line, index ``DepMap_ID``: ``cell_line`` (Yard name), ``tissue`` (primary
    site), ``histology`` (Yard subhistology), ``lung_histology`` (lung subgroup, empty for other
    tissues), ``sf2`` (measured surviving fraction at 2 Gy, proliferation assay),
    ``lq_alpha_per_gy``, ``lq_beta_per_gy2``, ``good_lq_fit``, ``match_method``. Sorted by id."""
    expression: pd.DataFrame
    """Lines × 706 genes (HGNC symbols), per-gene z-scores over the 580-line DepMap panel."""
    mutation: pd.DataFrame
    """Lines × 706 genes, 1 = mutated."""
    copy_number: pd.DataFrame
    """Lines × 706 genes, relative copy number (≈ 1 = diploid)."""
    panel_expression: pd.DataFrame
    """All 580 panel lines × 706 genes (z-scores), including lines without an SF2."""
    version: str
    """``"yard2016-tgsa706-<12 hex>"``: hash of the joined labels and expression."""

    @property
    def genes(self) -> list[str]:
        """The 706 panel gene symbols, in file order."""
        return list(self.expression.columns)

    def setting(self, name: str) -> CellLinePanel:
        """The lines of one evaluation setting: ``"lung"`` or ``"pan_cancer"`` (all lines)."""
        if name == "pan_cancer":
            return self
        if name != "lung":
            raise ValueError(f"setting {name!r} must be one of {', '.join(SETTINGS)}")
        keep = self.lines.index[self.lines["tissue"] == "lung"]
        return CellLinePanel(
            lines=self.lines.loc[keep],
            expression=self.expression.loc[keep],
            mutation=self.mutation.loc[keep],
            copy_number=self.copy_number.loc[keep],
            panel_expression=self.panel_expression,
            version=self.version,
        )


def subgroups(lines: pd.DataFrame, setting: str) -> pd.Series:
    """The task (subgroup) of each line: lung histology, or tissue with rare tissues pooled.

    Args:
        lines: :attr:`CellLinePanel.lines` (or a subset).
        setting: ``"lung"`` (histology subgroups; every line must be lung) or ``"pan_cancer"``.

    Returns:
        Series of subgroup names indexed like ``lines``.
    """
    if setting == "lung":
        if not (lines["tissue"] == "lung").all():
            raise ValueError("setting 'lung' needs lung lines only")
        return lines["lung_histology"].rename("subgroup")
    if setting != "pan_cancer":
        raise ValueError(f"setting {setting!r} must be one of {', '.join(SETTINGS)}")
    counts = lines["tissue"].value_counts()
    rare = set(counts.index[counts < MIN_SUBGROUP_LINES])
    return lines["tissue"].where(~lines["tissue"].isin(rare), "other").rename("subgroup")


def _symbol(column: str) -> str:
    """``"AKT3 (10000)"`` → ``"AKT3"``."""
    return column.split(" (", 1)[0].strip()


@functools.lru_cache(maxsize=4)
def load_panel(data_dir: Path | None = None) -> CellLinePanel:
    """Read and join the shipped files once per process (cached; treat the result as read-only).

    Args:
        data_dir: folder holding the files (default :data:`DATA_DIR`).
    """
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    response = pd.read_csv(root / _FILES["response"])
    crosswalk = pd.read_csv(root / _FILES["crosswalk"])
    expression = pd.read_csv(root / _FILES["expression"], index_col="DepMap_ID")
    expression.columns = [_symbol(c) for c in expression.columns]
    gene_map = pd.read_csv(root / _FILES["gene_map"], dtype=str)
    entrez_to_symbol = dict(zip(gene_map["column_in_tgsa_files"], gene_map["hgnc_symbol_2019"],
                                strict=True))
    mutation = pd.read_csv(root / _FILES["mutation"], index_col="DepMap_ID")
    mutation.columns = [entrez_to_symbol[c] for c in mutation.columns]
    copy_number = pd.read_csv(root / _FILES["copy_number"], index_col="DepMap_ID")
    copy_number.columns = [_symbol(c) for c in copy_number.columns]
    if not (list(mutation.columns) == list(expression.columns) == list(copy_number.columns)):
        raise ValueError("expression, mutation and copy-number panels list different genes")

    matched = crosswalk.loc[crosswalk["DepMap_ID"].notna(), ["cell_line", "DepMap_ID",
                                                              "match_method", "depmap_lineage"]]
    joined = response.merge(matched, on="cell_line", how="inner")
    joined = joined[joined["SF2"].notna() & joined["DepMap_ID"].isin(expression.index)].copy()
    if joined["DepMap_ID"].duplicated().any():
        raise ValueError("two Yard lines map to one DepMap_ID")
    # Primary site is right where Yard's tissueid is odd; a few lines lack it (and their
    # histology): for them Yard's tissueid (then DepMap's lineage) stands in.
    joined["Primarysite"] = (joined["Primarysite"].fillna(joined["tissueid"])
                             .fillna(joined["depmap_lineage"]))
    joined["Subhistology"] = joined["Subhistology"].fillna("NS")
    lung = joined["Primarysite"] == "lung"
    lines = pd.DataFrame({
        "cell_line": joined["cell_line"].astype(str).to_numpy(),
        "tissue": joined["Primarysite"].astype(str).to_numpy(),
        "histology": joined["Subhistology"].astype(str).to_numpy(),
        "lung_histology": np.where(
            lung, joined["Subhistology"].map(LUNG_HISTOLOGY_GROUPS).fillna("nsclc_other"), ""),
        "sf2": joined["SF2"].astype(float).to_numpy(),
        "lq_alpha_per_gy": joined["alpha"].astype(float).to_numpy(),
        "lq_beta_per_gy2": joined["beta"].astype(float).to_numpy(),
        "good_lq_fit": joined["good_LQ_fit"].astype(bool).to_numpy(),
        "match_method": joined["match_method"].astype(str).to_numpy(),
    }, index=pd.Index(joined["DepMap_ID"].astype(str), name="DepMap_ID")).sort_index()
    ids = lines.index
    digest = hashlib.sha256()
    digest.update(lines[["cell_line", "tissue", "sf2"]].to_csv().encode())
    digest.update(np.ascontiguousarray(expression.loc[ids].to_numpy(np.float64)).tobytes())
    return CellLinePanel(
        lines=lines,
        expression=expression.loc[ids].astype(np.float64),
        mutation=mutation.loc[ids].astype(np.int8),
        copy_number=copy_number.loc[ids].astype(np.float64),
        panel_expression=expression.astype(np.float64),
        version=f"yard2016-tgsa706-{digest.hexdigest()[:12]}",
    )


@functools.lru_cache(maxsize=2)
def load_rsi_profiles(data_dir: Path | None = None) -> pd.DataFrame:
    """The 10 lines of the CCLE microarray file with all RSI genes (RMA, log2).

    Returns:
        Index ``cell_line`` (Yard name); columns ``DepMap_ID``, ``tissue``, the 10
        :data:`RSI_GENES` (log2 RMA) and ``sf2`` (measured, NaN when withheld from our copy).
    """
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    header = pd.read_csv(root / _FILES["rsi_profiles"], nrows=0).columns
    wanted = {c: _symbol(c.split("|", 1)[0]) for c in header if c.split("|", 1)[0] in RSI_GENES}
    raw = pd.read_csv(root / _FILES["rsi_profiles"], usecols=["cellid", "CCLE_Name", *wanted])
    raw = raw.rename(columns=wanted)
    # Tissue from the CCLE name ("SKNSH_AUTONOMIC_GANGLIA"): some of these lines' radiation
    # labels are withheld from our copy, so the response file cannot supply it.
    raw["tissue"] = raw["CCLE_Name"].str.split("_", n=1).str[1].str.lower()
    response = pd.read_csv(root / _FILES["response"])[["cellid", "SF2"]]
    crosswalk = pd.read_csv(root / _FILES["crosswalk"])[["cellid", "cell_line", "DepMap_ID"]]
    out = raw.merge(crosswalk, on="cellid", how="left").merge(response, on="cellid", how="left")
    out["cell_line"] = out["cell_line"].fillna(out["cellid"])
    out = out.rename(columns={"SF2": "sf2"}).set_index("cell_line")
    return out[["DepMap_ID", "tissue", *RSI_GENES, "sf2"]]


# --- upload -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpressionUpload:
    """A validated upload: samples with panel-scale expression and optional raw RSI genes."""

    samples: pd.DataFrame
    """Index ``sample_id`` (text, file order); columns ``tissue`` and ``histology`` (empty text
    when not given)."""
    expression: pd.DataFrame
    """Samples × panel genes given (z-scores on the panel's scale). May have no columns when the
    file carries only ``raw_`` RSI genes."""
    raw_rsi: pd.DataFrame
    """Samples × RSI genes given as ``raw_<GENE>`` (absolute scale); may have no columns."""

    @property
    def has_full_rsi(self) -> bool:
        """Whether all 10 RSI genes were given on an absolute scale."""
        return set(RSI_GENES) <= set(self.raw_rsi.columns)


def read_expression_upload(
    source: str | Path | bytes | IO[str],
    *,
    required_genes: Sequence[str],
    panel_genes: Sequence[str],
    tissues: Sequence[str] = (),
) -> ExpressionUpload:
    """Read and validate a user's expression profiles (format in ``docs/sf2.md``).

    Args:
        source: a path, the file's bytes, or an open text stream.
        required_genes: genes the served SF2 model needs (must all be present when the file has
            any panel-gene column).
        panel_genes: every accepted gene column (the 706-gene panel).
        tissues: accepted ``tissue`` values (empty: any non-empty text is accepted).

    Returns:
        The validated :class:`ExpressionUpload`.

    Raises:
        SchemaError: every problem found, each naming row, column, value and accepted range.
    """
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | Path):
        data = Path(source).read_bytes()
    else:
        data = source.read().encode("utf-8")
    if len(data) > MAX_UPLOAD_BYTES:
        raise SchemaError([Problem(None, None, None,
                                   f"file is {len(data):,} bytes; at most {MAX_UPLOAD_BYTES:,} "
                                   "bytes are accepted (split it into several files)")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SchemaError([Problem(None, None, None,
                                   "file is not UTF-8 text: save it as CSV UTF-8")]) from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        raise SchemaError([Problem(None, None, None, "file is empty: expected a header row "
                                   "starting with sample_id, then one row per sample")])
    header = [h.strip() for h in rows[0]]
    problems: list[Problem] = []
    if header[0] != "sample_id":
        problems.append(Problem(1, header[0], short(header[0]),
                                f"first column is {short(header[0])!r}; it must be 'sample_id'"))
    panel = set(panel_genes)
    upper = {g.upper(): g for g in panel}
    seen: dict[str, int] = {}
    gene_cols: list[tuple[int, str]] = []
    raw_cols: list[tuple[int, str]] = []
    unknown: list[str] = []
    for j, name in enumerate(header[1:], start=1):
        if name in seen:
            problems.append(Problem(1, name, short(name),
                                    f"column {short(name)!r} appears twice (columns "
                                    f"{seen[name] + 1} and {j + 1})"))
            continue
        seen[name] = j
        if name in ("tissue", "histology"):
            continue
        if name.startswith(RAW_PREFIX):
            gene = name[len(RAW_PREFIX):]
            if gene not in RSI_GENES:
                accepted = ", ".join(RAW_PREFIX + g for g in RSI_GENES)
                problems.append(Problem(1, name, short(name),
                                        f"column {short(name)!r}: only the 10 RSI genes are read "
                                        f"on the raw scale ({accepted})"))
            else:
                raw_cols.append((j, gene))
        elif name in panel:
            gene_cols.append((j, name))
        else:
            unknown.append(name)
    if unknown:
        hint = case_hint(unknown, upper)
        problems.append(Problem(1, unknown[0], short(unknown[0]),
                                f"unknown gene column(s) {names(unknown)}: "
                                f"not on the {len(panel)}-gene training panel{hint}; remove them "
                                "or rename them to HGNC symbols of the panel (docs/sf2.md lists "
                                "the panel)"))
    present = {g for _, g in gene_cols}
    missing = [g for g in required_genes if g not in present]
    if gene_cols and missing:
        problems.append(Problem(1, missing[0], None,
                                f"missing gene column(s) {names(missing)}: the SF2 model needs "
                                f"all {len(required_genes)} of its genes "
                                f"({', '.join(required_genes)})"))
    if not gene_cols and len(raw_cols) < len(RSI_GENES):
        problems.append(Problem(1, None, None,
                                "no gene columns: give the SF2 model's "
                                f"{len(required_genes)} genes ({', '.join(required_genes)}) as "
                                "z-scores, and/or all 10 RSI genes as raw_<GENE> columns"))
    if problems:
        raise SchemaError(problems)

    width = len(header)
    tissue_j, histology_j = seen.get("tissue"), seen.get("histology")
    accepted_tissues = set(tissues)
    ids: list[str] = []
    id_rows: dict[str, int] = {}
    meta: list[tuple[str, str]] = []
    z = np.full((len(rows) - 1, len(gene_cols)), np.nan)
    raw = np.full((len(rows) - 1, len(raw_cols)), np.nan)
    if len(rows) - 1 > MAX_UPLOAD_ROWS:
        raise SchemaError([Problem(None, None, None,
                                   f"file has {len(rows) - 1:,} samples; at most "
                                   f"{MAX_UPLOAD_ROWS:,} are accepted")])
    if len(rows) == 1:
        raise SchemaError([Problem(None, None, None, "file has a header but no samples")])
    rlo, rhi = RAW_VALUE_RANGE
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != width:
            problems.append(Problem(line, None, None,
                                    f"row {line} has {len(row)} cells; the header has {width}"))
            continue
        sid = row[0].strip()
        tissue = row[tissue_j].strip() if tissue_j is not None else ""
        found = [sample_id_problem(line, sid, id_rows),
                 tissue_problem(line, tissue, accepted_tissues, "a tissue of the training panel")]
        problems += [p for p in found if p is not None]
        histology = row[histology_j].strip() if histology_j is not None else ""
        if histology and tissue == "lung" and histology not in LUNG_HISTOLOGY_GROUPS \
                and histology not in LUNG_HISTOLOGY_LABELS:
            problems.append(Problem(line, "histology", short(histology),
                                    f"row {line}, lung histology {short(histology)!r} is not "
                                    f"known; accepted: {', '.join(LUNG_HISTOLOGY_LABELS)} or "
                                    "empty"))
        ids.append(sid)
        meta.append((tissue, LUNG_HISTOLOGY_GROUPS.get(histology, histology)))
        for k, (j, gene) in enumerate(gene_cols):
            value, problem = z_score_problem(line, gene, f"gene {gene}", row[j].strip())
            if problem is not None:
                problems.append(problem)
            else:
                z[i, k] = value
        for k, (j, gene) in enumerate(raw_cols):
            cell = row[j].strip()
            value = parse_number(cell)
            if value is None or not rlo <= value <= rhi:
                problems.append(Problem(line, RAW_PREFIX + gene, short(cell),
                                        f"row {line}, {RAW_PREFIX}{gene}: value {short(cell)!r} "
                                        f"is not accepted; a number between {rlo:g} and "
                                        f"{rhi:g} on an absolute expression scale"))
            else:
                raw[i, k] = value
        if gene_cols and np.isfinite(z[i]).all():
            problem = scale_problem(line, z[i])
            if problem is not None:
                problems.append(problem)
    if problems:
        raise SchemaError(problems)
    index = pd.Index(ids, name="sample_id")
    return ExpressionUpload(
        samples=pd.DataFrame(meta, columns=["tissue", "histology"], index=index),
        expression=pd.DataFrame(z, columns=[g for _, g in gene_cols], index=index),
        raw_rsi=pd.DataFrame(raw, columns=[g for _, g in raw_cols], index=index),
    )



EXAMPLE_LINES: tuple[tuple[str, str, str], ...] = (
    ("Calu-3", "lung", "adenocarcinoma"),
    ("NCI-H226", "lung", "squamous"),
    ("DMS-114", "lung", "small_cell"),
    ("MCF7", "breast", ""),
    ("SF268", "central_nervous_system", ""),
    ("SW1463", "large_intestine", ""),
)
"""Example upload rows: Yard lines in the DepMap panel whose radiation labels are withheld from
our copy (so the served model never saw their SF2), with tissue and (lung) histology."""


def write_example_uploads(out_dir: Path, data_dir: Path | None = None) -> list[Path]:
    """Write the two example uploads of ``assets/examples/`` from the shipped data.

    * ``sf2_cell_lines.csv`` — :data:`EXAMPLE_LINES`, all 706 panel genes (z-scores);
    * ``sf2_full_profiles.csv`` — the panel lines of the 10-line CCLE microarray file
      (neuroblastoma), all 706 panel genes plus the 10 RSI genes as ``raw_`` columns (log2 RMA),
      so RSI and GARD are computed next to the model's SF2.
    """
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    panel = load_panel(data_dir)
    crosswalk = pd.read_csv(root / _FILES["crosswalk"]).set_index("cell_line")
    genes = panel.genes
    rows = []
    for name, tissue, histology in EXAMPLE_LINES:
        ach = crosswalk.loc[name, "DepMap_ID"]
        rows.append({"sample_id": name, "tissue": tissue, "histology": histology,
                     **panel.panel_expression.loc[ach, genes].round(5).to_dict()})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = out / "sf2_cell_lines.csv"
    formula_safe(pd.DataFrame(rows)).to_csv(first, index=False, lineterminator="\n")
    profiles = load_rsi_profiles(data_dir)
    profiles = profiles[profiles["DepMap_ID"].isin(panel.panel_expression.index)]
    rows = []
    for name, row in profiles.iterrows():
        rows.append({"sample_id": name, "tissue": row["tissue"], "histology": "",
                     **panel.panel_expression.loc[row["DepMap_ID"], genes].round(5).to_dict(),
                     **{RAW_PREFIX + g: round(float(row[g]), 5) for g in RSI_GENES}})
    second = out / "sf2_full_profiles.csv"
    formula_safe(pd.DataFrame(rows)).to_csv(second, index=False, lineterminator="\n")
    return [first, second]
