"""The drug data join: omics panels, COSMIC ↔ DepMap ids, label sources, masking, the catalogue."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from engine.drug.data import MISSING, RESISTANT, SENSITIVE, load_drug_data
from tests.unit.drug.fixtures import LINES, write_fixture


@pytest.fixture
def tiny(tmp_path):
    return write_fixture(tmp_path / "data")


def test_features_join_the_three_panels_by_gene(tiny):
    d = load_drug_data(tiny)
    assert d.lines == tuple(LINES)  # sorted, whatever the file order
    assert d.x.dtype == np.float32 and d.x.shape == (6, 9)
    assert d.feature_names[:3] == ("expr:G1 (1)", "expr:G2 (2)", "expr:G3 (3)")
    assert d.feature_names[3:6] == ("mut:G1 (1)", "mut:G2 (2)", "mut:G3 (3)")
    assert d.genes == ("G1 (1)", "G2 (2)", "G3 (3)")
    # the expression file lists ACH-000006 first with values 0, 1, 2
    np.testing.assert_array_equal(d.x[5, :3], [0.0, 1.0, 2.0])
    # mutation columns "(3)", "(1)", "(2)" land under their genes
    np.testing.assert_array_equal(d.x[:, d.modality_columns("mut")],
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0],
                                   [0, 0, 1]])
    np.testing.assert_array_equal(d.binary_columns, [3, 4, 5])
    assert d.lineages == ("lung", "lung", "breast", "liver", "breast", "liver")
    assert not d.x.flags.writeable and not d.y.flags.writeable


def test_nihgcn_labels_join_by_cosmic_id_and_missing_ones_are_masked(tiny):
    d = load_drug_data(tiny)
    j = d.drug_index("Cisplatin")
    assert d.drug_info.loc["Cisplatin", "label_source"] == "gdsc1_nihgcn"
    # COSMIC 101 → ln IC50 -1 < 1 sensitive; 102 → 2 resistant; 103 → 1.5 resistant;
    # 104 missing in the matrix; line 5's COSMIC id is not in NIHGCN; line 6 has none
    assert d.y[:, j].tolist() == [SENSITIVE, RESISTANT, RESISTANT, MISSING, MISSING, MISSING]
    np.testing.assert_array_equal(d.ln_ic50[:, j], [-1.0, 2.0, 1.5, np.nan, np.nan, np.nan])
    rows, y = d.labelled("Cisplatin")
    assert rows.tolist() == [0, 1, 2] and y.tolist() == [0, 1, 1]
    info = d.drug_info.loc["Cisplatin"]
    assert (info["n_lines"], info["n_sensitive"], info["n_resistant"]) == (3, 1, 2)
    assert info["threshold_ln_ic50"] == 1.0 and info["rt_context"] == "lung, liver"


def test_label_source_prefers_the_screen_the_threshold_was_fitted_on(tiny):
    d = load_drug_data(tiny)
    j = d.drug_index("DrugA")
    assert d.drug_info.loc["DrugA", "label_source"] == "gdsc1_nihgcn"
    assert d.y[:, j].tolist() == [SENSITIVE, RESISTANT, MISSING, RESISTANT, MISSING, MISSING]
    t = load_drug_data(tiny, prefer="gdsc2_tgsa")
    assert t.drug_info.loc["DrugA", "label_source"] == "gdsc2_tgsa"
    assert t.y[:, j].tolist() == [RESISTANT, SENSITIVE, MISSING, MISSING, MISSING, MISSING]
    assert t.data_hash != d.data_hash
    # only in TGSA: TGSA labels either way, keyed by DepMap id (line 6 has no COSMIC id)
    k = d.drug_index("DrugT")
    assert d.drug_info.loc["DrugT", "label_source"] == "gdsc2_tgsa"
    assert d.y[:, k].tolist() == [SENSITIVE, MISSING, RESISTANT, MISSING, MISSING, RESISTANT]
    with pytest.raises(ValueError, match="prefer"):
        load_drug_data(tiny, prefer="ccle")


def test_catalogue_and_the_drugs_not_held(tiny):
    d = load_drug_data(tiny)
    assert d.drugs == ("Cisplatin", "DrugA", "DrugT")  # OtherNIH: neither thresholded nor RT
    assert "without a sensitivity threshold" in d.not_held["Oxaliplatin"]
    assert d.not_held["Carboplatin"] == "no column in either GDSC table"
    with pytest.raises(ValueError, match=r"Oxaliplatin.*without a sensitivity threshold"):
        d.drug_index("Oxaliplatin")
    with pytest.raises(ValueError, match="accepted: Cisplatin, DrugA, DrugT"):
        d.labelled("Aspirin")


def test_hash_follows_the_labels(tiny, tmp_path):
    d = load_drug_data(tiny)
    assert d.version == f"gdsc-depmap706-{d.data_hash[:12]}" and len(d.data_hash) == 64
    other = shutil.copytree(tiny, tmp_path / "other")
    path = other / "gdsc_nihgcn_cell_drug_binary.csv"
    frame = pd.read_csv(path, index_col=0)
    frame.iloc[1, 1] = 1.0  # COSMIC 102 now sensitive to Cisplatin
    frame.to_csv(path)
    assert load_drug_data(other).data_hash != d.data_hash


def test_mismatched_panels_are_refused(tiny):
    path = tiny / "ccle_copynumber_tgsa_depmap_580x706_census.csv"
    frame = pd.read_csv(path, index_col=0)
    frame.rename(columns={"G3 (3)": "G4 (4)"}).to_csv(path)
    with pytest.raises(ValueError, match="genes differ"):
        load_drug_data(tiny)


@pytest.fixture(scope="module")
def shipped():
    return load_drug_data()


def test_shipped_data(shipped):
    d = shipped
    assert d.x.shape == (580, 3 * 706) and np.isfinite(d.x).all()
    assert set(np.unique(d.y)) == {MISSING, SENSITIVE, RESISTANT}
    assert (np.isnan(d.ln_ic50) == (d.y == MISSING)).all()
    info = d.drug_info
    assert len(info) == 57 and info["tgsa_thresholded"].sum() == 54
    # every radiotherapy drug is either in the catalogue or said not to be held
    for drug in ("Cisplatin", "Paclitaxel", "Docetaxel", "Etoposide", "Gemcitabine",
                 "Gefitinib", "Erlotinib", "Sorafenib", "Vinorelbine", "Doxorubicin"):
        assert info.loc[drug, "label_source"] == "gdsc1_nihgcn"
    assert set(d.not_held) == {"Carboplatin", "Pemetrexed", "Lenvatinib", "Osimertinib",
                               "Oxaliplatin"}
    assert info.loc["I-BET-762", "label_source"] == "gdsc2_tgsa"
    # GDSC1 gemcitabine: 28 sensitive of 513 panel lines (TGSA's calls would give 3 of 548)
    assert (info.loc["Gemcitabine", "n_sensitive"], info.loc["Gemcitabine", "n_lines"]) == (
        28, 513)


def test_shipped_labels_are_the_thresholded_ln_ic50(shipped):
    d = shipped
    for j, drug in enumerate(d.drugs):
        rows = d.y[:, j] != MISSING
        resistant = d.ln_ic50[rows, j] >= d.drug_info.loc[drug, "threshold_ln_ic50"]
        np.testing.assert_array_equal(d.y[rows, j] == RESISTANT, resistant, err_msg=drug)


def test_tgsa_calls_apply_gdsc1_thresholds_to_gdsc2_values(shipped):
    """The facts behind the choice of label source (engine/drug/data.py's docstring)."""
    tgsa = load_drug_data(prefer="gdsc2_tgsa")
    # same thresholds, other values: moderate correlation and shifted means on shared lines
    checked = ("Gemcitabine", "Gefitinib", "Docetaxel", "Erlotinib", "Sorafenib", "Paclitaxel",
               "Tamoxifen", "Dasatinib")
    corr, shift = {}, {}
    for drug in checked:
        assert tgsa.drug_info.loc[drug, "label_source"] == "gdsc2_tgsa"
        assert tgsa.drug_info.loc[drug, "threshold_ln_ic50"] == pytest.approx(
            shipped.drug_info.loc[drug, "threshold_ln_ic50"], abs=1e-4)
        j = shipped.drug_index(drug)
        both = np.isfinite(shipped.ln_ic50[:, j]) & np.isfinite(tgsa.ln_ic50[:, j])
        a, b = shipped.ln_ic50[both, j], tgsa.ln_ic50[both, j]
        corr[drug], shift[drug] = np.corrcoef(a, b)[0, 1], b.mean() - a.mean()
    assert min(corr.values()) > 0.35 and max(corr.values()) < 0.8, corr
    assert shift["Gemcitabine"] > 2.0, shift
    gem = tgsa.drug_info.loc["Gemcitabine"]
    assert (gem["n_sensitive"], gem["n_lines"]) == (3, 548)
