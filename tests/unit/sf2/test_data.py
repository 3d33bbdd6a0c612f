"""Cell-line panel join, subgroups, the upload format and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.core.tabular import SchemaError
from engine.sf2.data import (
    LUNG_HISTOLOGY_LABELS,
    RSI_GENES,
    load_panel,
    load_rsi_profiles,
    read_expression_upload,
    subgroups,
    write_example_uploads,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def panel():
    return load_panel()


def test_panel_join(panel):
    lines = panel.lines
    assert len(lines) == 273
    assert lines.index.is_unique and lines.index.str.startswith("ACH-").all()
    assert list(panel.expression.index) == list(lines.index)
    assert panel.expression.shape == panel.mutation.shape == panel.copy_number.shape == (273, 706)
    assert panel.panel_expression.shape == (580, 706)
    assert lines["sf2"].between(0.0, 1.5).all() and (lines["sf2"] > 1).any()  # proliferation
    assert set(panel.mutation.stack().unique()) <= {0, 1}
    # Spot checks against the source files: 22RV1 (prostate) SF2 and its DepMap id.
    row = lines[lines["cell_line"] == "22RV1"].iloc[0]
    assert row.name == "ACH-000956" and row["tissue"] == "prostate"
    assert row["sf2"] == pytest.approx(0.424906293)
    # AR expression is highest in prostate lines (a sanity check of the gene labels).
    assert panel.panel_expression["AR"].idxmax() in {"ACH-000956", "ACH-000977", "ACH-000073",
                                                     "ACH-000115"}
    assert panel.version.startswith("yard2016-tgsa706-")


def test_subgroups(panel):
    lung = panel.setting("lung")
    assert len(lung.lines) == 57
    sg = subgroups(lung.lines, "lung")
    assert set(sg) == set(LUNG_HISTOLOGY_LABELS)
    assert sg.value_counts()["adenocarcinoma"] == 20
    pan = subgroups(panel.lines, "pan_cancer")
    counts = pan.value_counts()
    assert counts.min() >= 5 and "other" in counts
    assert counts["lung"] == 57
    with pytest.raises(ValueError, match="lung lines only"):
        subgroups(panel.lines, "lung")
    with pytest.raises(ValueError, match="setting"):
        panel.setting("brain")


def test_rsi_profiles():
    profiles = load_rsi_profiles()
    assert len(profiles) == 10 and set(RSI_GENES) <= set(profiles.columns)
    assert profiles["sf2"].notna().sum() == 9
    assert profiles.loc["CHP-212", "tissue"] == "autonomic_ganglia"


GENES = ["PIK3CB", "TET1", "FAS"]


def _read(text: str, required=GENES, tissues=("lung", "breast")):
    return read_expression_upload(text.encode(), required_genes=list(required),
                                  panel_genes=load_panel().genes, tissues=list(tissues))


def _problems(text: str, **kw) -> list[str]:
    with pytest.raises(SchemaError) as err:
        _read(text, **kw)
    return [p.message for p in err.value.problems]


def test_upload_good_file():
    up = _read("sample_id,tissue,histology,PIK3CB,TET1,FAS,AR\n"
               "s1,lung,adenocarcinoma,0.5,-1.2,0.3,2\n"
               "s2,,,0,0,0,0\n")
    assert list(up.samples.index) == ["s1", "s2"]
    assert up.samples.loc["s1", "histology"] == "adenocarcinoma"
    assert up.samples.loc["s2", "tissue"] == ""
    assert up.expression.loc["s1", "TET1"] == -1.2
    assert not up.has_full_rsi and up.raw_rsi.shape == (2, 0)


def test_upload_with_raw_rsi_columns():
    raw = ",".join(f"raw_{g}" for g in RSI_GENES)
    vals = ",".join(str(v) for v in range(1, 11))
    up = _read(f"sample_id,PIK3CB,TET1,FAS,{raw}\nx,0,0,0,{vals}\n")
    assert up.has_full_rsi and up.raw_rsi.loc["x", "IRF1"] == 10


def test_upload_unknown_gene_named_with_case_hint():
    (msg,) = _problems("sample_id,PIK3CB,TET1,FAS,pik3cb_x,fas2,Tet1\ns,0,0,0,0,0,0\n")
    assert "unknown gene column(s)" in msg and "'fas2'" in msg and "'Tet1' → 'TET1'" in msg


def test_upload_missing_genes_named():
    (msg,) = _problems("sample_id,PIK3CB\ns,0.1\n")
    assert "missing gene column(s) 'TET1', 'FAS'" in msg and "needs all 3" in msg


def test_upload_value_out_of_range_names_row_column_value_and_range():
    msgs = _problems("sample_id,PIK3CB,TET1,FAS\ns,0,120.5,0\nt,0,abc,\n")
    assert msgs[0] == ("row 2, gene TET1: value 120.5 is out of range; accepted: an expression "
                       "z-score on the training panel's scale between -15 and 25")
    assert "row 3, gene TET1: value 'abc' is not a number" in msgs[1]
    assert "row 3, gene FAS: is empty" in msgs[2]


def test_upload_log_scale_profile_is_refused_as_wrong_scale():
    (msg,) = _problems("sample_id,PIK3CB,TET1,FAS\ns,7.2,8.1,6.5\n")
    assert "row 2" in msg and "average 7.27" in msg and "look like log2 expression" in msg
    assert "between -2.5 and 2.5" in msg


def test_upload_identity_and_metadata_checks():
    msgs = _problems("sample_id,tissue,histology,PIK3CB,TET1,FAS\n"
                     "a,lung,adeno,0,0,0\na,brain,,0,0,0\n,lung,,0,0,0\n")
    text = " | ".join(msgs)
    assert "lung histology 'adeno' is not known" in text
    assert "sample_id 'a' is also in row 2" in text
    assert "tissue 'brain' is not a tissue of the training panel; accepted: breast, lung" in text
    assert "row 4, sample_id '': must be 1–64 printable characters" in text


def test_upload_header_checks():
    assert "first column is 'id'" in _problems("id,PIK3CB,TET1,FAS\ns,0,0,0\n")[0]
    assert "appears twice" in _problems("sample_id,FAS,FAS,PIK3CB,TET1\ns,0,0,0,0\n")[0]
    raw = "sample_id,PIK3CB,TET1,FAS,raw_TP53\ns,0,0,0,1\n"
    assert "only the 10 RSI genes" in _problems(raw)[0]
    assert "no gene columns" in _problems("sample_id,tissue\ns,lung\n")[0]
    assert "no samples" in _problems("sample_id,PIK3CB,TET1,FAS\n")[0]
    with pytest.raises(SchemaError, match="not UTF-8"):
        read_expression_upload("sample_id\né".encode("latin-1"), required_genes=[],
                               panel_genes=[])
    assert "row 2 has 2 cells" in _problems("sample_id,PIK3CB,TET1,FAS\ns,0\n")[0]


def test_examples_are_what_the_builder_writes(tmp_path):
    """The committed example uploads are reproducible from the shipped data."""
    for path in write_example_uploads(tmp_path):
        assert path.read_text() == (EXAMPLES / path.name).read_text()


@pytest.mark.parametrize("name", ["sf2_cell_lines.csv", "sf2_full_profiles.csv"])
def test_examples_validate(name):
    panel = load_panel()
    up = read_expression_upload(EXAMPLES / name, required_genes=panel.genes[:20],
                                panel_genes=panel.genes,
                                tissues=sorted(set(panel.lines["tissue"])))
    assert up.expression.shape[1] == 706
    assert up.has_full_rsi == (name == "sf2_full_profiles.csv")
    # None of the example lines has an SF2 in our copy (withheld labels) except the CCLE file's.
    labelled = set(panel.lines["cell_line"])
    if name == "sf2_cell_lines.csv":
        assert not labelled & set(up.samples.index)
    assert np.isfinite(up.expression.to_numpy()).all()
    assert isinstance(up.samples, pd.DataFrame)
