"""The drug-profile upload: a good file is read into the model's columns (defaults where mutation
or copy number are not given); every bad file is refused with field-level messages naming row,
column, value and the accepted range."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from engine import settings
from engine.core.tabular import SchemaError
from engine.drug.data import load_drug_data
from engine.drug.upload import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_ROWS,
    read_profile_upload,
    write_example_upload,
)

EXAMPLE = settings.EXAMPLES_DIR / "drug_profiles.csv"


@pytest.fixture(scope="module")
def data():
    return load_drug_data()


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False)


def _read(data, frame_or_text, **kwargs):
    text = frame_or_text if isinstance(frame_or_text, str | bytes) else frame_or_text.to_csv(
        index=False)
    return read_profile_upload(text if isinstance(text, bytes) else text.encode(),
                               feature_names=data.feature_names,
                               tissues=sorted(set(data.lineages)), **kwargs)


def _messages(data, frame_or_text) -> list[str]:
    with pytest.raises(SchemaError) as err:
        _read(data, frame_or_text)
    return [p.message for p in err.value.problems]


def test_the_shipped_example_is_the_unlabelled_lines_and_reads_back_exactly(data, tmp_path):
    written = write_example_upload(tmp_path / "drug_profiles.csv")
    assert written.read_bytes() == EXAMPLE.read_bytes()  # the shipped file is up to date
    up = read_profile_upload(EXAMPLE, feature_names=data.feature_names)
    rows = [data.cell_line_names.index(s) for s in up.samples.index]
    assert (data.y[rows] == -1).all()  # no served model saw these lines
    np.testing.assert_allclose(up.x, data.x[rows], atol=1e-5)
    assert up.notes == []


def test_expression_only_file_gets_the_defaults_and_says_so(data, frame):
    genes = [c for c in frame.columns if not c.startswith(("mut_", "cn_"))]
    up = _read(data, frame[genes])
    n = len(data.genes)
    assert up.x.shape == (len(frame), 3 * n)
    assert (up.x[:, n:2 * n] == 0).all() and (up.x[:, 2 * n:] == 1).all()
    assert up.n_mutation_columns == 0
    assert any("taken as not mutated" in note for note in up.notes)
    assert any("taken as diploid" in note for note in up.notes)


def test_sf2_columns_are_accepted_and_not_read(data, frame):
    extra = frame.copy()
    extra.insert(2, "histology", "adenocarcinoma")
    extra["raw_JUN"] = "7.1"
    up = _read(data, extra)
    assert up.ignored_columns == ("histology", "raw_JUN")


def test_missing_genes_are_all_named(data, frame):
    msgs = _messages(data, frame.drop(columns=["EGFR", "KRAS"]))
    assert len(msgs) == 1
    assert "missing gene column(s) 'EGFR', 'KRAS'" in msgs[0]
    assert "all 706 panel genes" in msgs[0]


def test_bad_cells_name_row_column_value_and_range(data, frame):
    bad = frame.copy()
    bad.loc[0, "EGFR"] = "high"
    bad.loc[1, "KRAS"] = "40"
    bad.loc[2, "mut_TP53"] = "2"
    bad.loc[3, "cn_MYC"] = "-1"
    bad.loc[4, "ALK"] = ""
    msgs = _messages(data, bad)
    assert "row 2, column EGFR: value 'high' is not a number; accepted: an expression " \
           "z-score on the training panel's scale between -15 and 25" in msgs
    assert any(m.startswith("row 3, column KRAS: value 40 is out of range") for m in msgs)
    assert any(m.startswith("row 4, column mut_TP53: value '2' is not 0 or 1") for m in msgs)
    assert any(m.startswith("row 5, column cn_MYC: value -1 is out of range; accepted: a "
                            "relative copy number between 0 and 20") for m in msgs)
    assert any(m.startswith("row 6, column ALK: is empty") for m in msgs)


def test_duplicates_are_refused(data, frame):
    dup_id = frame.copy()
    dup_id.loc[1, "sample_id"] = dup_id.loc[0, "sample_id"]
    assert any("is also in row 2; sample ids must be unique" in m
               for m in _messages(data, dup_id))
    dup_row = pd.concat([frame, frame.iloc[[0]].assign(sample_id="copy")], ignore_index=True)
    msgs = _messages(data, dup_row)
    assert any("repeats the values of row 2" in m for m in msgs)
    dup_col = frame.copy()
    text = dup_col.to_csv(index=False).splitlines()
    text = [line + ("," + line.split(",")[2]) for line in text]  # EGFR-like column repeated
    assert any("appears twice" in m for m in _messages(data, "\n".join(text)))


def test_wrong_scale_unknown_columns_and_tissue(data, frame):
    log2 = frame.copy()
    genes = [c for c in frame.columns[2:] if not c.startswith(("mut_", "cn_"))]
    log2.loc[0, genes] = "8.5"
    assert any("look like log2 expression" in m for m in _messages(data, log2))
    renamed = frame.rename(columns={"EGFR": "egfr", "TP53": "TP53_expr"})
    msgs = _messages(data, renamed)
    assert any("unknown column(s) 'egfr', 'TP53_expr'" in m and "'egfr' → 'EGFR'" in m
               for m in msgs)
    tissue = frame.copy()
    tissue.loc[0, "tissue"] = "lnug"
    assert any("tissue 'lnug' is not a lineage of the training lines" in m
               for m in _messages(data, tissue))


def test_file_level_refusals(data, frame):
    assert _messages(data, b"") == ["the file is empty (0 bytes); expected CSV text with a "
                                    "header row"]
    header_only = frame.iloc[:0].to_csv(index=False)
    assert _messages(data, header_only) == ["the file has a header row but no samples"]
    semicolon = frame.iloc[:1].to_csv(index=False, sep=";")
    assert "semicolon-separated" in _messages(data, semicolon)[0]
    with pytest.raises(SchemaError, match="larger than the limit"):
        read_profile_upload(io.BytesIO(b"x" * (MAX_UPLOAD_BYTES + 1)),
                            feature_names=data.feature_names)
    many = pd.concat([frame.iloc[[0]]] * (MAX_UPLOAD_ROWS + 1), ignore_index=True)
    assert "more than the limit of 500" in _messages(data, many)[0]
    first = frame.rename(columns={"sample_id": "id"})
    assert "it must be 'sample_id'" in _messages(data, first)[0]
