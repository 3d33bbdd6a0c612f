"""Drug response of cancer cell lines (GDSC) joined to their DepMap omics: one frozen data set.

Sources (copied into ``assets/data/``, provenance in ``assets/data/SOURCES.md``):

* ``ccle_expression_tgsa_depmap_zscore_580x706_census.csv`` — DepMap RNA-seq of 706 COSMIC
  census genes for 580 lines, **z-scored per gene over those 580 lines** by TGSA (so the
  standardisation saw every line's expression, never a drug label);
  ``tgsa_ccle_mutation_580x706_census.csv`` (0/1 calls) and
  ``ccle_copynumber_tgsa_depmap_580x706_census.csv`` (relative copy number, ≈ 1 = diploid) for the
  same lines and genes. These three panels are the features: 3 × 706 columns.
* ``depmap_cell_line_annotation.csv`` — DepMap ``sample_info``: DepMap id ↔ COSMIC id, lineage.
* ``gdsc_nihgcn_cell_drug.csv``, ``gdsc_nihgcn_cell_drug_binary.csv``,
  ``gdsc_nihgcn_null_mask.csv``, ``gdsc_nihgcn_threshold.csv`` — NIHGCN's GDSC matrices: 962
  lines (COSMIC ids) × 228 drugs (PubChem CIDs), ln IC50 (µM), the sensitive calls (ln IC50 below
  the drug's threshold), the missing-measurement mask and the thresholds.
* ``tgsa_gdsc_lnic50_580lines_170drugs.csv`` — TGSA's long table: ln IC50 of 170 drugs on the
  580 panel lines (DepMap ids), with a threshold and a sensitive call for 54 drugs.
* ``gdsc_drug_pubchem_cids.csv`` — drug name ↔ PubChem CID for the drugs used here (from TGSA's
  and NIHGCN's own name/CID tables), and the CID of the drug's column in the NIHGCN matrices.

**Which labels.** The two tables are different GDSC screens: TGSA's ln IC50 values are GDSC2's
(for 8 drugs checked they correlate only 0.37–0.75 with NIHGCN's GDSC1 values on shared lines,
with mean shifts up to 2.2 ln units), but its sensitive calls use the *GDSC1* thresholds (they
equal NIHGCN's to the last digit). A GDSC1 threshold applied to GDSC2 values mislabels drugs
whose scale moved: 3 of 548 lines are "sensitive" to gemcitabine in TGSA's calls against 28 of
513 in GDSC1. So a drug's labels come from NIHGCN (GDSC1 values, thresholds fitted on the same
screen) when the drug is there, else from TGSA (``prefer="gdsc2_tgsa"`` reverses this for TGSA's
54 thresholded drugs).

**Labels.** ``resistant = 1`` (ln IC50 at or above the threshold), ``sensitive = 0``; a line
without a measurement for a drug is **masked** (``y = -1``, ``mask = False``), never given a
label. The drugs (the catalogue): every drug with a threshold in TGSA's table (54) plus the
drugs given with radiotherapy in lung and liver cancer that the data hold with a threshold
(:data:`RT_DRUGS`); :attr:`DrugDataset.not_held` says which listed drugs the data do not hold.

Join: panel line (DepMap id) → annotation ``COSMICID`` → NIHGCN row; TGSA rows are keyed by
DepMap id already. Every panel line stays in :attr:`DrugDataset.x` (lines without any label still
serve unsupervised pre-training).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine import settings

__all__ = [
    "DATA_DIR",
    "LABEL_SOURCES",
    "MISSING",
    "MODALITIES",
    "RESISTANT",
    "RT_DRUGS",
    "SENSITIVE",
    "DrugDataset",
    "load_drug_data",
]

DATA_DIR = settings.DATA_DIR
"""The shipped data files (``assets/data``)."""

RESISTANT = 1
"""Label of a line resistant to a drug (ln IC50 ≥ the drug's threshold): the predicted class."""
SENSITIVE = 0
"""Label of a sensitive line (ln IC50 < threshold)."""
MISSING = -1
"""Value of :attr:`DrugDataset.y` where the line was not measured (masked, not a label)."""

MODALITIES: tuple[str, ...] = ("expr", "mut", "cn")
"""Feature blocks, in column order: expression z-score, mutation (0/1), relative copy number.
A feature is named ``"<modality>:<SYMBOL> (<Entrez>)"``, e.g. ``"expr:EGFR (1956)"``."""

LABEL_SOURCES: tuple[str, ...] = ("gdsc1_nihgcn", "gdsc2_tgsa")
"""Label sources: NIHGCN's GDSC1 matrices; TGSA's GDSC2 table with GDSC1 thresholds."""

RT_DRUGS: dict[str, str] = {
    "Cisplatin": "lung, liver",
    "Carboplatin": "lung",
    "Paclitaxel": "lung",
    "Docetaxel": "lung",
    "Etoposide": "lung",
    "Gemcitabine": "lung",
    "Pemetrexed": "lung",
    "Vinorelbine": "lung",
    "Gefitinib": "lung",
    "Erlotinib": "lung",
    "Afatinib": "lung",
    "Osimertinib": "lung",
    "Sorafenib": "liver",
    "Lenvatinib": "liver",
    "Doxorubicin": "liver",
    "5-Fluorouracil": "liver",
    "Oxaliplatin": "liver",
}
"""Drugs given with (chemo)radiotherapy or around it in lung cancer (concurrent platinum doublets,
EGFR inhibitors) and liver cancer (sorafenib/lenvatinib, doxorubicin in TACE, 5-FU/oxaliplatin in
hepatic arterial infusion), with the site. The catalogue holds those the data hold with a
threshold."""

_FILES = {
    "expression": "ccle_expression_tgsa_depmap_zscore_580x706_census.csv",
    "mutation": "tgsa_ccle_mutation_580x706_census.csv",
    "copy_number": "ccle_copynumber_tgsa_depmap_580x706_census.csv",
    "annotation": "depmap_cell_line_annotation.csv",
    "nihgcn_ic50": "gdsc_nihgcn_cell_drug.csv",
    "nihgcn_binary": "gdsc_nihgcn_cell_drug_binary.csv",
    "nihgcn_mask": "gdsc_nihgcn_null_mask.csv",
    "nihgcn_threshold": "gdsc_nihgcn_threshold.csv",
    "tgsa": "tgsa_gdsc_lnic50_580lines_170drugs.csv",
    "cids": "gdsc_drug_pubchem_cids.csv",
}
_ENTREZ = re.compile(r"\((\d+)\)\s*$")


@dataclass(frozen=True, eq=False)
class DrugDataset:
    """Cell lines × molecular features, with per-drug resistance labels (read-only arrays)."""

    x: np.ndarray
    """Features, float32 ``[n_lines, n_features]``: 706 expression z-scores, 706 mutation calls
    (0/1), 706 relative copy numbers (≈ 1 = diploid), in :data:`MODALITIES` order."""
    feature_names: tuple[str, ...]
    """``n_features`` names ``"<modality>:<SYMBOL> (<Entrez>)"``."""
    lines: tuple[str, ...]
    """DepMap ids (``ACH-…``) of the rows of :attr:`x`, sorted."""
    cell_line_names: tuple[str, ...]
    """Common names of the lines (DepMap ``cell_line_name``)."""
    lineages: tuple[str, ...]
    """DepMap lineage of each line (``lung``, ``liver``, ``breast``, …)."""
    lineage_subtypes: tuple[str, ...]
    """DepMap lineage subtype (``NSCLC``, ``SCLC``, …; empty when not given)."""
    drugs: tuple[str, ...]
    """The catalogue's drug names (columns of :attr:`y`), sorted case-insensitively."""
    y: np.ndarray
    """Labels, int8 ``[n_lines, n_drugs]``: :data:`RESISTANT` (1), :data:`SENSITIVE` (0) or
    :data:`MISSING` (−1: not measured, masked)."""
    ln_ic50: np.ndarray
    """ln IC50 (µM) behind each label, float64 ``[n_lines, n_drugs]``; NaN where masked."""
    drug_info: pd.DataFrame
    """One row per drug (index = name): ``label_source``, ``pubchem_cid``, ``source_column``,
    ``threshold_ln_ic50``, ``n_lines``, ``n_sensitive``, ``n_resistant``, ``rt_context`` (lung
    / liver / both / empty), ``tgsa_thresholded`` and ``note``."""
    not_held: dict[str, str]
    """Drugs of :data:`RT_DRUGS` the data do not hold with a threshold → why."""
    data_hash: str
    """SHA-256 (hex) of the features, labels and names: the manifests' ``data_hash``."""
    lineage_sub_subtypes: tuple[str, ...] = ()
    """DepMap ``lineage_sub_subtype`` of each line (``NSCLC_adenocarcinoma``, …; empty when not
    given, or for every line when the annotation has no such column)."""

    @property
    def version(self) -> str:
        """``"gdsc-depmap706-<12 hex>"``: short form of :attr:`data_hash`."""
        return f"gdsc-depmap706-{self.data_hash[:12]}"

    @property
    def mask(self) -> np.ndarray:
        """bool ``[n_lines, n_drugs]``: True where the line has a label for the drug."""
        return self.y != MISSING

    @property
    def genes(self) -> tuple[str, ...]:
        """The panel genes ``"<SYMBOL> (<Entrez>)"`` (706 in the shipped data), column order."""
        prefix = f"{MODALITIES[0]}:"
        return tuple(f[len(prefix):] for f in self.feature_names if f.startswith(prefix))

    def modality_columns(self, modality: str) -> np.ndarray:
        """Column indices of one feature block of :data:`MODALITIES`."""
        if modality not in MODALITIES:
            raise ValueError(f"modality {modality!r}; accepted {', '.join(MODALITIES)}")
        return np.array([i for i, f in enumerate(self.feature_names)
                         if f.startswith(f"{modality}:")], dtype=np.int64)

    @property
    def binary_columns(self) -> np.ndarray:
        """Column indices of the 0/1 features (the mutation calls)."""
        return self.modality_columns("mut")

    def drug_index(self, drug: str) -> int:
        """Column of ``drug`` in :attr:`y`; a clear error names the accepted drugs."""
        try:
            return self.drugs.index(drug)
        except ValueError:
            hint = self.not_held.get(drug)
            why = f" ({hint})" if hint else ""
            raise ValueError(f"drug {drug!r} is not in the data set{why}; accepted: "
                             f"{', '.join(self.drugs)}") from None

    def labelled(self, drug: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows with a label for ``drug`` and those labels.

        Returns:
            ``(rows, y)``: int64 indices into :attr:`lines` (sorted) and int64 labels
            (1 = resistant, 0 = sensitive), same length.
        """
        col = self.y[:, self.drug_index(drug)]
        rows = np.flatnonzero(col != MISSING)
        return rows, col[rows].astype(np.int64)


def _read_int_index(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col=0)
    frame.index = frame.index.astype(np.int64)
    frame.columns = frame.columns.astype(str)
    return frame


def _entrez(column: str) -> str:
    match = _ENTREZ.search(column)
    if match is None:
        raise ValueError(f"gene column {column!r} lacks an '(Entrez)' id")
    return match.group(1)


def _features(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """Lines × (expr | mut | cn) with prefixed names, rows sorted by DepMap id."""
    expression = pd.read_csv(root / _FILES["expression"], index_col="DepMap_ID")
    mutation = pd.read_csv(root / _FILES["mutation"], index_col="DepMap_ID")
    copy_number = pd.read_csv(root / _FILES["copy_number"], index_col="DepMap_ID")
    genes = list(expression.columns)
    by_entrez = {_entrez(c): c for c in genes}
    # The mutation file labels columns "(Entrez)" only: name them like the expression columns.
    mutation.columns = [by_entrez.get(_entrez(c), c) for c in mutation.columns]
    for name, frame in (("mutation", mutation), ("copy_number", copy_number)):
        if set(frame.columns) != set(genes):
            raise ValueError(f"{_FILES[name]}: genes differ from {_FILES['expression']}")
        if set(frame.index) != set(expression.index):
            raise ValueError(f"{_FILES[name]}: lines differ from {_FILES['expression']}")
    ids = sorted(expression.index)
    blocks = [expression.loc[ids, genes], mutation.loc[ids, genes], copy_number.loc[ids, genes]]
    names = [f"{m}:{g}" for m, block in zip(MODALITIES, blocks, strict=True) for g in block.columns]
    table = pd.concat(blocks, axis=1)
    table.columns = names
    if table.isna().any().any():
        raise ValueError("the omics panels have missing values")
    return table, names


def _catalogue(cids: pd.DataFrame, tgsa: pd.DataFrame, nih_columns: set[str],
               prefer: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per drug: where its labels come from; and the RT drugs not held with a threshold."""
    thresholded = set(tgsa.loc[tgsa["threshold_ln_ic50"].notna(), "drug"])
    rows, not_held = [], {}
    for rec in cids.itertuples(index=False):
        nih = "" if pd.isna(rec.nihgcn_cid) else str(int(rec.nihgcn_cid))
        in_nih = bool(nih) and nih in nih_columns
        in_tgsa = rec.drug in thresholded
        if not (in_nih or in_tgsa):
            if rec.drug in RT_DRUGS:
                not_held[rec.drug] = ("held only as GDSC2 ln IC50 without a sensitivity "
                                      "threshold (TGSA table)" if rec.drug in set(tgsa["drug"])
                                      else "no column in either GDSC table")
            continue
        if rec.drug not in RT_DRUGS and not in_tgsa:
            continue  # the catalogue: thresholded in TGSA, or a radiotherapy drug
        use_tgsa = in_tgsa and (prefer == "gdsc2_tgsa" or not in_nih)
        rows.append({"drug": rec.drug, "label_source": "gdsc2_tgsa" if use_tgsa
                     else "gdsc1_nihgcn", "pubchem_cid": int(rec.pubchem_cid),
                     "source_column": rec.drug if use_tgsa else nih,
                     "rt_context": RT_DRUGS.get(rec.drug, ""), "tgsa_thresholded": in_tgsa,
                     "note": "" if pd.isna(rec.nihgcn_match) or rec.nihgcn_match == "same CID"
                     else str(rec.nihgcn_match)})
    listed = set(cids["drug"])
    for drug in RT_DRUGS:
        if drug not in listed:
            not_held[drug] = "no column in either GDSC table"
    info = pd.DataFrame(rows)
    if info.empty:
        raise ValueError(f"{_FILES['cids']}: no drug has labels in the GDSC tables")
    info = info.set_index("drug")
    return info.loc[sorted(info.index, key=str.lower)], not_held


@functools.lru_cache(maxsize=4)
def load_drug_data(data_dir: Path | None = None, prefer: str = "gdsc1_nihgcn") -> DrugDataset:
    """Read and join the shipped files (cached per process; the arrays are read-only).

    Args:
        data_dir: folder holding the files (default :data:`DATA_DIR`).
        prefer: label source of drugs in both tables, one of :data:`LABEL_SOURCES`
            (module docstring: why ``"gdsc1_nihgcn"`` is the default).

    Raises:
        ValueError: a file whose genes, lines or drugs do not agree with the others.
    """
    if prefer not in LABEL_SOURCES:
        raise ValueError(f"prefer = {prefer!r}; accepted {', '.join(LABEL_SOURCES)}")
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    features, names = _features(root)
    ids = list(features.index)
    wanted = {"DepMap_ID", "cell_line_name", "COSMICID", "lineage", "lineage_subtype",
              "lineage_sub_subtype"}
    annotation = pd.read_csv(root / _FILES["annotation"], index_col="DepMap_ID",
                             usecols=lambda c: c in wanted)
    missing = [i for i in ids if i not in annotation.index]
    if missing:
        raise ValueError(f"{_FILES['annotation']}: no row for {', '.join(missing[:5])}")
    ann = annotation.loc[ids]

    ic50 = _read_int_index(root / _FILES["nihgcn_ic50"])
    binary = _read_int_index(root / _FILES["nihgcn_binary"])
    null = _read_int_index(root / _FILES["nihgcn_mask"])
    thresholds = pd.read_csv(root / _FILES["nihgcn_threshold"], index_col=0)["Threshold"]
    thresholds.index = thresholds.index.astype(str)
    if not (ic50.shape == binary.shape == null.shape):
        raise ValueError("the NIHGCN ln IC50, binary and mask matrices differ in shape")
    tgsa = pd.read_csv(root / _FILES["tgsa"])
    if tgsa.duplicated(["depmap_id", "drug"]).any():
        raise ValueError(f"{_FILES['tgsa']}: a (line, drug) pair appears twice")
    cids = pd.read_csv(root / _FILES["cids"])
    info, not_held = _catalogue(cids, tgsa, set(ic50.columns), prefer)

    cosmic = ann["COSMICID"].to_numpy(dtype=float)
    in_nih = np.isfinite(cosmic) & np.isin(np.nan_to_num(cosmic, nan=-1).astype(np.int64),
                                           ic50.index.to_numpy())
    nih_rows = np.where(in_nih, np.nan_to_num(cosmic, nan=-1), -1).astype(np.int64)
    n_lines, n_drugs = len(ids), len(info)
    y = np.full((n_lines, n_drugs), MISSING, dtype=np.int8)
    ln_ic50 = np.full((n_lines, n_drugs), np.nan)
    threshold = np.full(n_drugs, np.nan)
    for j, (drug, rec) in enumerate(info.iterrows()):
        if rec["label_source"] == "gdsc1_nihgcn":
            col = rec["source_column"]
            measured = in_nih.copy()
            rows = nih_rows[in_nih]
            measured[in_nih] = null.loc[rows, col].to_numpy() == 0
            sens = binary.loc[nih_rows[measured], col].to_numpy()
            y[measured, j] = np.where(sens == 1, SENSITIVE, RESISTANT)
            ln_ic50[measured, j] = ic50.loc[nih_rows[measured], col].to_numpy()
            threshold[j] = float(thresholds[col])
        else:
            part = tgsa[(tgsa["drug"] == drug) & tgsa["sensitive"].notna()]
            part = part[part["depmap_id"].isin(ids)].set_index("depmap_id")
            pos = np.searchsorted(ids, part.index.to_numpy())
            y[pos, j] = np.where(part["sensitive"].to_numpy() == 1, SENSITIVE, RESISTANT)
            ln_ic50[pos, j] = part["ln_ic50"].to_numpy()
            threshold[j] = float(part["threshold_ln_ic50"].iloc[0])
    info = info.assign(threshold_ln_ic50=threshold,
                       n_lines=(y != MISSING).sum(0), n_sensitive=(y == SENSITIVE).sum(0),
                       n_resistant=(y == RESISTANT).sum(0))

    x = features.to_numpy(dtype=np.float32)
    digest = hashlib.sha256()
    for part_text in ("\n".join(names), "\n".join(ids), "\n".join(info.index),
                      "\n".join(info["label_source"])):
        digest.update(part_text.encode("utf-8"))
        digest.update(b"\0")
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    for arr in (x, y, ln_ic50):
        arr.setflags(write=False)
    return DrugDataset(
        x=x, feature_names=tuple(names), lines=tuple(ids),
        cell_line_names=tuple(ann["cell_line_name"].fillna("").astype(str)),
        lineages=tuple(ann["lineage"].fillna("unknown").astype(str)),
        lineage_subtypes=tuple(ann["lineage_subtype"].fillna("").astype(str)),
        drugs=tuple(info.index), y=y, ln_ic50=ln_ic50, drug_info=info,
        not_held=dict(sorted(not_held.items())), data_hash=digest.hexdigest(),
        lineage_sub_subtypes=tuple(ann["lineage_sub_subtype"].fillna("").astype(str))
        if "lineage_sub_subtype" in ann.columns else ("",) * len(ids),
    )
