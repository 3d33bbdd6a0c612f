"""A tiny copy of the drug data files (same names and layout as ``assets/data``) with known joins.

Lines (DepMap id → COSMIC id, lineage):

    ACH-000001 → 101 lung        ACH-000004 → 104 liver
    ACH-000002 → 102 lung        ACH-000005 → 555 breast (COSMIC id not in the NIHGCN matrices)
    ACH-000003 → 103 breast      ACH-000006 → none  liver

Drugs: ``DrugA`` (NIHGCN column 11 and thresholded in TGSA: NIHGCN labels by default),
``Cisplatin`` (NIHGCN column 22 only: a radiotherapy drug), ``DrugT`` (thresholded in TGSA only),
``Oxaliplatin`` (TGSA ln IC50 without a threshold), ``OtherNIH`` (NIHGCN column 33, neither
thresholded in TGSA nor a radiotherapy drug: left out of the catalogue).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

LINES = ["ACH-000001", "ACH-000002", "ACH-000003", "ACH-000004", "ACH-000005", "ACH-000006"]
GENES = ["G1 (1)", "G2 (2)", "G3 (3)"]

# NIHGCN, rows = COSMIC ids; 1 = sensitive in the binary matrix, 1 = missing in the mask.
NIH_ROWS = [101, 102, 103, 104, 999]
NIH_IC50 = {"11": [0.5, 2.5, None, 3.0, 1.0],
            "22": [-1.0, 2.0, 1.5, None, 0.0],
            "33": [1.0, 1.0, 1.0, 1.0, 1.0]}
NIH_THRESHOLD = {"11": 1.0, "22": 1.0, "33": 2.0}


def write_fixture(root: Path) -> Path:
    """Write the tiny files into ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    expr = pd.DataFrame([[float(10 * i + j) for j in range(3)] for i in range(6)],
                        index=pd.Index(LINES[::-1], name="DepMap_ID"), columns=GENES)
    expr.to_csv(root / "ccle_expression_tgsa_depmap_zscore_580x706_census.csv")
    # mutation columns in another order and labelled "(Entrez)" only, as in the TGSA file
    mut = pd.DataFrame({"(3)": [1, 0, 0, 0, 0, 1], "(1)": [0, 1, 0, 0, 0, 0],
                        "(2)": [0, 0, 1, 1, 0, 0]}, index=pd.Index(LINES, name="DepMap_ID"))
    mut.to_csv(root / "tgsa_ccle_mutation_580x706_census.csv")
    cn = pd.DataFrame([[1.0 + 0.1 * i, 1.0, 0.9] for i in range(6)],
                      index=pd.Index(LINES, name="DepMap_ID"), columns=GENES)
    cn.to_csv(root / "ccle_copynumber_tgsa_depmap_580x706_census.csv")
    pd.DataFrame({
        "DepMap_ID": [*LINES, "ACH-999999"],
        "cell_line_name": ["L1", "L2", "L3", "L4", "L5", "L6", "NotInPanel"],
        "COSMICID": [101.0, 102.0, 103.0, 104.0, 555.0, None, 999.0],
        "lineage": ["lung", "lung", "breast", "liver", "breast", "liver", "skin"],
        "lineage_subtype": ["NSCLC", "SCLC", "", "", "", "", ""],
        "sex": ["x"] * 7,
    }).to_csv(root / "depmap_cell_line_annotation.csv", index=False)
    ic50 = pd.DataFrame(NIH_IC50, index=NIH_ROWS)
    ic50.to_csv(root / "gdsc_nihgcn_cell_drug.csv")
    thr = pd.Series(NIH_THRESHOLD)
    binary = (ic50 < thr).astype(float).where(ic50.notna(), 0.0)
    binary.to_csv(root / "gdsc_nihgcn_cell_drug_binary.csv")
    ic50.isna().astype(float).to_csv(root / "gdsc_nihgcn_null_mask.csv")
    pd.DataFrame({"Threshold": thr}).to_csv(root / "gdsc_nihgcn_threshold.csv")
    tgsa = [
        # DrugA in TGSA says line 1 is resistant (NIHGCN: sensitive) — tells the sources apart
        ("ACH-000001", "DrugA", 5.0, 1.0, 0.0), ("ACH-000002", "DrugA", 0.0, 1.0, 1.0),
        ("ACH-000001", "DrugT", -1.0, 0.0, 1.0), ("ACH-000003", "DrugT", 2.0, 0.0, 0.0),
        ("ACH-000006", "DrugT", 3.0, 0.0, 0.0),
        ("ACH-000001", "Oxaliplatin", 1.0, None, None),
    ]
    pd.DataFrame(tgsa, columns=["depmap_id", "drug", "ln_ic50", "threshold_ln_ic50",
                                "sensitive"]).to_csv(
        root / "tgsa_gdsc_lnic50_580lines_170drugs.csv", index=False)
    pd.DataFrame({
        "drug": ["Cisplatin", "DrugA", "DrugT", "OtherNIH", "Oxaliplatin"],
        "pubchem_cid": [22, 11, 44, 33, 55],
        "nihgcn_cid": [22, 11, None, 33, None],
        "nihgcn_match": ["same CID", "same CID", None, "same CID", None],
        "name_cid_source": ["fixture"] * 5,
    }).to_csv(root / "gdsc_drug_pubchem_cids.csv", index=False)
    return root
