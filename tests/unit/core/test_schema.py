"""The case CSV format (engine.core.schema): every malformed file is refused with its own
message."""

from __future__ import annotations

import io
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core import schema
from engine.core.protocols import load_protocol
from engine.core.schema import (
    column_specs,
    columns_markdown,
    read_cases,
    validate_dataframe,
)
from engine.core.tabular import Problem, SchemaError

ROOT = Path(__file__).resolve().parents[3]
BAD = ROOT / "tests" / "data" / "bad"
GOOD = ROOT / "tests" / "data" / "good"
EXPECTED = tomllib.loads((BAD / "expected.toml").read_text(encoding="utf-8"))

NSCLC_GOOD = GOOD / "nsclc_two_patients.csv"
HCC_GOOD = GOOD / "hcc_two_sites.csv"


def _refuse(source, protocol: str, **kwargs) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        read_cases(source, protocol, **kwargs)
    return info.value


def _good_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _replace_cell(text: str, row: int, column: str, value: str) -> str:
    """CSV text with the cell at spreadsheet ``row`` (header = 1) of ``column`` replaced."""
    lines = text.splitlines()
    header = lines[0].split(",")
    fields = lines[row - 1].split(",")
    fields[header.index(column)] = value
    lines[row - 1] = ",".join(fields)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Malformed files


def test_bad_directory_is_complete() -> None:
    files = {p.name for p in BAD.glob("*.csv")}
    assert files == set(EXPECTED), "every bad file needs an expected.toml entry and vice versa"
    assert len(files) >= 24
    assert {e["protocol"] for e in EXPECTED.values()} == {"nsclc", "hcc"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_refused(name: str) -> None:
    expected = EXPECTED[name]
    err = _refuse(BAD / name, expected["protocol"])
    first = err.problems[0]
    assert expected["contains"] in str(err)
    assert str(err).startswith(first.message)
    assert "\n" not in str(err)
    assert first.row == expected.get("row")
    assert first.column == expected.get("column")
    if "row" in expected:
        assert f"row {expected['row']}" in first.message
    if "column" in expected:
        assert expected["column"] in first.message
    if first.value is not None:
        assert len(first.value) <= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_refused_from_bytes_too(name: str) -> None:
    expected = EXPECTED[name]
    err = _refuse((BAD / name).read_bytes(), expected["protocol"])
    assert expected["contains"] in str(err)


def test_bad_files_have_distinct_messages() -> None:
    messages = [str(_refuse(BAD / n, e["protocol"])) for n, e in EXPECTED.items()]
    assert len(set(messages)) == len(messages)


def test_all_problems_are_reported_in_file_order() -> None:
    text = _good_text(NSCLC_GOOD)
    lines = text.splitlines()
    lines[0] += ",smoking_pack_years"
    lines[1] += ",30"
    lines[2] += ",40"
    lines[1] = lines[1].replace("6.1", "abc", 1)  # row 2: il6 not a number
    lines[2] = lines[2].replace(",8.7,", ",,", 1)  # row 3: suvmax_pre blank
    lines.append(lines[1].replace("abc", "7.0").replace("P-001", "P-003"))  # row 4: fine
    lines.append(lines[3].replace("P-003", "P-001").replace(",2.3,", ",230,"))  # row 5: 2 problems
    err = _refuse("\n".join(lines) + "\n", "nsclc")
    where = [(p.row, p.column) for p in err.problems]
    assert where == [
        (None, "smoking_pack_years"),
        (2, "il6_pre_pg_ml"),
        (3, "suvmax_pre"),
        (5, "patient_id"),
        (5, "dose_eval_gy"),
    ]
    assert str(err).endswith("(and 4 more problems)")
    assert "value 'abc' is not a number" in err.problems[1].message
    assert "row 5, column patient_id: patient 'P-001' also appears in row 2" in (
        err.problems[3].message
    )
    assert "looks like cGy" in err.problems[4].message


def test_missing_columns_are_listed_together() -> None:
    df = read_cases(NSCLC_GOOD, "nsclc")
    text = df.drop(columns=["mtv_rd", "il8_pre_pg_ml", "dose_eval_gy"]).to_csv(index=False)
    err = _refuse(text, "nsclc")
    assert len(err.problems) == 1
    assert "missing 3 required columns: mtv_rd, il8_pre_pg_ml, dose_eval_gy" in str(err)


def test_one_problem_has_no_suffix_and_problem_str_is_its_message() -> None:
    err = _refuse(_replace_cell(_good_text(NSCLC_GOOD), 2, "suvmax_pre", "x"), "nsclc")
    assert len(err.problems) == 1
    assert str(err) == err.problems[0].message == str(err.problems[0])
    assert isinstance(err, ValueError)
    assert err.problems[0] == Problem(
        2, "suvmax_pre", "x",
        "row 2, column suvmax_pre: value 'x' is not a number; expected a number between 1 and 40 "
        "(SUV)",
    )


def test_decimal_comma_in_quoted_cell_gets_a_hint() -> None:
    err = _refuse(_replace_cell(_good_text(NSCLC_GOOD), 3, "dose_eval_gy", '"2,4"'), "nsclc")
    assert "use a point as the decimal separator" in str(err)


def test_long_values_are_truncated_in_problems() -> None:
    err = _refuse(_replace_cell(_good_text(NSCLC_GOOD), 2, "mtv_rd", "z" * 100), "nsclc")
    assert len(err.problems[0].value) == 40
    assert "z" * 41 not in str(err)


# ------------------------------------------------------------------------------------------
# Valid files


def test_nsclc_good_file() -> None:
    p = load_protocol("nsclc")
    df = read_cases(NSCLC_GOOD, p)
    assert df.shape == (2, 19)
    assert list(df.columns) == [
        "patient_id", *p.feature_names, "dose_eval_gy", "dose_adapt_gy", "local_control", "rp2",
        "note",
    ]
    assert list(df.index) == [0, 1]
    assert pd.api.types.is_string_dtype(df["patient_id"])
    assert list(df["patient_id"]) == ["P-001", "P-002"]
    for name in (*p.feature_names, "dose_eval_gy", "dose_adapt_gy"):
        assert df[name].dtype == np.float64, name
    for f in p.features:
        if f.integer:
            assert (df[f.name] == df[f.name].round()).all()
    assert df["local_control"].dtype == "Int64"
    assert df["local_control"].tolist()[0] == 1
    assert df["rp2"].isna().tolist() == [False, True]
    assert math.isnan(df.loc[1, "dose_adapt_gy"])
    assert df.loc[0, "note"] == 'Re-planned after week 4; PET "good responder"'
    assert df.loc[1, "note"] == ""
    assert df.loc[0, "tumour_geud_gy"] == 44.2


def test_proposed_dose_is_optional_per_row_and_read_as_gy() -> None:
    text = _good_text(NSCLC_GOOD).splitlines()
    text[0] += ",proposed_dose_adapt_gy"
    text[1] += ",2.8"
    text[2] += ","
    df = read_cases("\n".join(text) + "\n", "nsclc")
    assert df["proposed_dose_adapt_gy"].dtype == np.float64
    assert df.loc[0, "proposed_dose_adapt_gy"] == 2.8
    assert math.isnan(df.loc[1, "proposed_dose_adapt_gy"])
    # the shipped examples carry a proposal for some patients and none for others
    examples = read_cases(ROOT / "assets" / "examples" / "nsclc_patients.csv", "nsclc")
    assert examples["proposed_dose_adapt_gy"].notna().any()
    assert examples["proposed_dose_adapt_gy"].isna().any()


def test_proposed_dose_is_the_column_the_recommender_reads() -> None:
    from engine.arclids.recommend import PROPOSAL_COLUMN

    assert schema.PROPOSAL_COLUMN == PROPOSAL_COLUMN == "proposed_dose_adapt_gy"


@pytest.mark.parametrize("value, message", [
    ("abc", "value 'abc' is not a number; expected a number between 1.5 and 4 Gy"),
    ("4.5", "value '4.5' is out of range; expected a number between 1.5 and 4 Gy"),
    ("NA", None),
])
def test_proposed_dose_in_memory_is_checked_like_the_dose_given(value, message) -> None:
    frame = pd.read_csv(NSCLC_GOOD, dtype=str, keep_default_na=False)
    for column in ("dose_adapt_gy", "proposed_dose_adapt_gy"):
        table = frame.assign(**{column: value})
        if message is None:
            assert validate_dataframe(table, "nsclc")[column].isna().all()
            continue
        with pytest.raises(SchemaError) as info:
            validate_dataframe(table, "nsclc")
        assert info.value.problems[0].message == f"row 2, column {column}: {message}"


def test_hcc_good_file() -> None:
    p = load_protocol("hcc")
    df = read_cases(HCC_GOOD, "hcc")
    assert df.shape == (2, 2 + len(p.features) + 1)
    assert list(df.columns) == ["patient_id", "site_id", *p.feature_names, "dose_eval_gy"]
    assert df["site_id"].dtype == np.int64
    assert df["site_id"].tolist() == [1, 2]
    assert df["child_pugh_pre"].dtype == np.float64
    assert df["child_pugh_pre"].tolist() == [5.0, 5.0]


@pytest.mark.parametrize("path, protocol", [(NSCLC_GOOD, "nsclc"), (HCC_GOOD, "hcc")])
def test_every_source_kind_gives_the_same_table(path: Path, protocol: str) -> None:
    expected = read_cases(path, protocol)
    data = path.read_bytes()
    sources = [
        data, bytearray(data), data.decode("utf-8"), io.BytesIO(data),
        io.StringIO(data.decode("utf-8")), path,
    ]
    for source in sources:
        pd.testing.assert_frame_equal(read_cases(source, protocol), expected)
    with path.open(encoding="utf-8") as fh:
        pd.testing.assert_frame_equal(read_cases(fh, protocol), expected)
    with path.open("rb") as fh:
        pd.testing.assert_frame_equal(read_cases(fh, protocol), expected)


def test_str_is_never_read_as_a_file_name() -> None:
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        read_cases(str(NSCLC_GOOD), "nsclc")
    with pytest.raises(TypeError):
        read_cases(12345, "nsclc")  # type: ignore[arg-type]


def test_bom_is_accepted() -> None:
    data = NSCLC_GOOD.read_bytes()
    pd.testing.assert_frame_equal(
        read_cases(b"\xef\xbb\xbf" + data, "nsclc"), read_cases(data, "nsclc")
    )
    pd.testing.assert_frame_equal(
        read_cases("\ufeff" + data.decode(), "nsclc"), read_cases(data, "nsclc")
    )


def test_whitespace_around_numbers_and_names_is_tolerated() -> None:
    lines = _good_text(HCC_GOOD).splitlines()
    lines[0] = ",".join(f" {h} " for h in lines[0].split(","))
    for i in (1, 2):
        head, rest = lines[i].split(",", 1)
        lines[i] = head + "," + ",".join(f"  {v}\t" for v in rest.split(","))
    df = read_cases("\n".join(lines), "hcc")
    pd.testing.assert_frame_equal(df, read_cases(HCC_GOOD, "hcc"))


def test_blank_rows_crlf_and_trailing_empty_columns_are_tolerated() -> None:
    lines = _good_text(HCC_GOOD).splitlines()
    messy = [lines[0] + ",,", "", lines[1] + ",,", ",,,,", " ", lines[2] + ",,", ""]
    df = read_cases("\r\n".join(messy), "hcc")
    pd.testing.assert_frame_equal(df, read_cases(HCC_GOOD, "hcc"))


def test_row_numbers_count_blank_rows_like_a_spreadsheet() -> None:
    lines = _good_text(NSCLC_GOOD).splitlines()
    lines.insert(2, "")  # row 3 blank, the second patient is now row 4
    text = "\n".join(lines).replace(",9.3,", ",x,")
    err = _refuse(text, "nsclc")
    assert err.problems[0].row == 4


def test_ids_keep_leading_zeros_and_notes_keep_commas_and_line_breaks() -> None:
    text = _good_text(NSCLC_GOOD).replace("P-001", "007")
    text = text.replace('"Re-planned after week 4; PET ""good responder"""', '"a, b\nc <b>"')
    df = read_cases(text, "nsclc")
    assert df.loc[0, "patient_id"] == "007"
    assert df.loc[0, "note"] == "a, b\nc <b>"


def test_integer_kinds_accept_whole_numbers_written_with_decimals() -> None:
    text = _replace_cell(_good_text(HCC_GOOD), 2, "child_pugh_pre", "6.0")
    text = _replace_cell(text, 2, "site_id", "1.0")
    df = read_cases(text, "hcc")
    assert df.loc[0, "child_pugh_pre"] == 6.0
    assert df.loc[0, "site_id"] == 1


def test_range_bounds_are_inclusive() -> None:
    text = _replace_cell(_good_text(NSCLC_GOOD), 2, "dose_eval_gy", "1.8")
    text = _replace_cell(text, 3, "dose_eval_gy", "3.0")
    assert read_cases(text, "nsclc")["dose_eval_gy"].tolist() == [1.8, 3.0]


# ------------------------------------------------------------------------------------------
# Outcomes, limits, in-memory tables, docs


def test_require_outcomes() -> None:
    df = read_cases(NSCLC_GOOD, "nsclc")
    err = _refuse(NSCLC_GOOD, "nsclc", require_outcomes=True)
    assert [(p.row, p.column) for p in err.problems] == [(3, "local_control"), (3, "rp2")]
    assert "value is missing; this column is required, expected 0 or 1" in str(err)
    err = _refuse(HCC_GOOD, "hcc", require_outcomes=True)
    assert "missing 2 required columns: local_control, liver_toxicity" in str(err)
    complete = df.assign(local_control=[1, 0], rp2=[0, 1]).to_csv(index=False)
    out = read_cases(complete, "nsclc", require_outcomes=True)
    assert out["rp2"].tolist() == [0, 1]


def test_file_size_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = HCC_GOOD.read_bytes()
    monkeypatch.setattr(schema, "MAX_FILE_BYTES", len(data) - 1)
    big = tmp_path / "big.csv"
    big.write_bytes(data)
    for source in (data, big, io.BytesIO(data), data.decode()):
        err = _refuse(source, "hcc")
        assert "the file is larger than the limit of" in str(err)
        assert err.problems[0].row is None
    monkeypatch.setattr(schema, "MAX_FILE_BYTES", len(data))
    assert len(read_cases(data, "hcc")) == 2


def test_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    df = read_cases(NSCLC_GOOD, "nsclc")
    three = pd.concat([df, df.assign(patient_id="P-003")]).iloc[:3]
    text = three.to_csv(index=False)
    monkeypatch.setattr(schema, "MAX_ROWS", 2)
    err = _refuse(text, "nsclc")
    assert "the file has 3 data rows, more than the limit of 2" in str(err)
    assert len(read_cases(df.to_csv(index=False) + "\n\n,,\n", "nsclc")) == 2


def test_validate_dataframe_round_trips_and_reports_rows() -> None:
    df = read_cases(HCC_GOOD, "hcc")
    pd.testing.assert_frame_equal(validate_dataframe(df, "hcc"), df)
    bad = df.copy()
    bad.loc[1, "albumin_pre_g_dl"] = np.nan
    bad["site_id"] = [1, 1]
    with pytest.raises(SchemaError) as info:
        validate_dataframe(bad, load_protocol("hcc"))
    where = [(p.row, p.column) for p in info.value.problems]
    assert where == [(3, "site_id"), (3, "albumin_pre_g_dl")]
    assert "patient 'HCC-001' site 1 also appears in row 2" in str(info.value)
    assert "column albumin_pre_g_dl: value is missing" in info.value.problems[1].message


def test_column_specs_follow_the_protocol() -> None:
    for name in ("nsclc", "hcc"):
        p = load_protocol(name)
        specs = column_specs(p)
        names = [s.name for s in specs]
        assert names == [
            *p.id_columns, *p.feature_names, "dose_eval_gy", "dose_adapt_gy",
            "proposed_dose_adapt_gy", *p.outcome_names, "note",
        ]
        by_name = {s.name: s for s in specs}
        assert by_name["dose_adapt_gy"].min == min(p.dose_grid_gy)
        # the proposal is checked exactly like the dose given: optional, within the dose grid
        proposal, given = by_name["proposed_dose_adapt_gy"], by_name["dose_adapt_gy"]
        assert (proposal.kind, proposal.unit, proposal.required, proposal.min, proposal.max) == (
            given.kind, given.unit, given.required, given.min, given.max)
        assert by_name["dose_eval_gy"].max == p.dose_eval_max_gy
        assert not by_name[p.target.outcome].required
        assert column_specs(p, require_outcomes=True)[-2].required


def test_docs_show_the_generated_column_tables() -> None:
    doc = (ROOT / "docs" / "data-format.md").read_text(encoding="utf-8")
    for name in ("nsclc", "hcc"):
        assert columns_markdown(name) in doc, f"regenerate the {name} table in the docs"
    assert "artds recommend --protocol nsclc --input FILE --json" in doc


def test_docs_examples_are_valid() -> None:
    doc = (ROOT / "docs" / "data-format.md").read_text(encoding="utf-8")
    blocks = doc.split("```csv\n")[1:]
    assert len(blocks) == 2
    for block, protocol in zip(blocks, ("nsclc", "hcc"), strict=True):
        assert len(read_cases(block.split("```")[0], protocol)) == 2


# ------------------------------------------------------------------------------------------
# Property: any in-range table round-trips through CSV text


_ID_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))


def _ids(n: int) -> st.SearchStrategy[list[str]]:
    pid = st.text(_ID_CHARS, min_size=1, max_size=schema.MAX_ID_CHARS).filter(
        lambda s: s.isprintable() and s == s.strip()
    )
    return st.lists(pid, min_size=n, max_size=n, unique=True)


def _number(spec: schema.ColumnSpec) -> st.SearchStrategy[float]:
    if spec.integer:
        return st.integers(int(spec.min), int(spec.max)).map(float)
    return st.floats(spec.min, spec.max, allow_nan=False, allow_infinity=False)


@st.composite
def _tables(draw: st.DrawFn, protocol: str) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    optional = draw(st.sets(st.sampled_from(["dose_adapt_gy", "proposed_dose_adapt_gy",
                                             "outcomes", "note"])))
    cols: dict[str, object] = {}
    for spec in column_specs(protocol):
        if spec.kind == "id":
            cols[spec.name] = pd.Series(draw(_ids(n)), dtype=str)
        elif spec.kind == "site":
            cols[spec.name] = pd.Series(draw(st.lists(st.integers(1, 5), min_size=n,
                                                      max_size=n)), dtype=np.int64)
        elif spec.kind == "outcome":
            if "outcomes" in optional:
                values = draw(st.lists(st.sampled_from([0, 1, None]), min_size=n, max_size=n))
                cols[spec.name] = pd.Series(pd.array(values, dtype="Int64"))
        elif spec.kind == "text":
            if "note" in optional:
                notes = draw(st.lists(st.text(_ID_CHARS | st.sampled_from("\n,\""),
                                              max_size=60), min_size=n, max_size=n))
                cols[spec.name] = pd.Series(notes, dtype=str)
        elif spec.required or spec.name in optional:
            strategy = _number(spec)
            if not spec.required:
                strategy = strategy | st.just(math.nan)
            values = draw(st.lists(strategy, min_size=n, max_size=n))
            cols[spec.name] = pd.Series(np.asarray(values, dtype=np.float64))
    return pd.DataFrame(cols)


@pytest.mark.parametrize("protocol", ["nsclc", "hcc"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_in_range_tables_round_trip_through_csv(protocol: str, data: st.DataObject) -> None:
    df = data.draw(_tables(protocol))
    parsed = read_cases(df.to_csv(index=False), protocol)
    pd.testing.assert_frame_equal(parsed, df, check_exact=False, rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(validate_dataframe(df, protocol), parsed)
