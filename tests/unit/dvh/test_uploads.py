"""Uploaded files sorted into one plan (engine/dvh/uploads.py): DICOM-RT in any order, or one DVH
table (with an optional RTPLAN); every mix that cannot be a plan refused, naming the files."""

from __future__ import annotations

import itertools

import pytest

from engine.dvh import ImportLimits, PlanError, evaluate_plan, import_plan
from engine.dvh.files import dvh_csv
from engine.dvh.uploads import largest_file_bytes, read_uploaded_plan
from tests.unit.dvh.helpers import named, thorax_files


@pytest.fixture(scope="module")
def dicom() -> list[tuple[str, bytes]]:
    files = named(thorax_files())
    return [files["rtdose"], files["rtstruct"], files["rtplan"]]


@pytest.fixture(scope="module")
def table(dicom) -> tuple[str, bytes]:
    result = import_plan("nsclc", rtdose=dicom[0], rtstruct=dicom[1], rtplan=dicom[2])
    # As a planning system exports it: the built lung structure under its TG-263 name.
    text = dvh_csv({("Lungs-GTV" if s.derived else s.name): s.dvh for s in result.structures})
    return ("plan DVH.CSV", text.encode())


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_dicom_files_in_any_order_make_the_same_plan(dicom, order):
    data = read_uploaded_plan([dicom[i] for i in order])
    assert data.source == "dicom"
    assert data.files == {"rtdose": "RD.dcm", "rtstruct": "RS.dcm", "rtplan": "RP.dcm"}
    assert data.plan is not None and data.plan.n_fractions == 30


def test_uploaded_plan_evaluates_as_the_files_do(dicom):
    direct = import_plan("nsclc", rtdose=dicom[0], rtstruct=dicom[1], rtplan=dicom[2])
    uploaded = evaluate_plan(read_uploaded_plan(list(reversed(dicom))), "nsclc")
    assert uploaded.features == direct.features


def test_a_dvh_table_alone_or_with_its_rtplan(dicom, table):
    alone = read_uploaded_plan([table])
    assert alone.source == "dvh" and alone.files == {"dvh": "plan DVH.CSV"} and alone.plan is None
    with_plan = read_uploaded_plan([dicom[2], table])
    assert with_plan.source == "dvh" and with_plan.plan is not None
    assert evaluate_plan(with_plan, "nsclc").n_plan_fractions == 30


def test_a_dicom_file_named_like_a_table_is_read_as_dicom(dicom):
    _, content = dicom[0]
    data = read_uploaded_plan([("dose.txt", content), dicom[1]])
    assert data.source == "dicom" and data.files["rtdose"] == "dose.txt"


@pytest.mark.parametrize(("files", "words"), [
    (lambda d, t: [], ["no file was given"]),
    (lambda d, t: [t, ("other.csv", t[1])], ["plan DVH.CSV and other.csv are both DVH tables"]),
    (lambda d, t: [t, d[0]], ["either a DVH table (plan DVH.CSV) or the RTDOSE"]),
    (lambda d, t: [("notes.dcm", b"not a dicom file\n"), *d],
     ["notes.dcm is not a DICOM file"]),
    (lambda d, t: [("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)],
     ["photo.png is not a DICOM file"]),
    (lambda d, t: [d[0], d[2]], ["RTSTRUCT file is missing"]),
    (lambda d, t: [d[0], ("copy.dcm", d[0][1]), d[1]], ["RD.dcm", "copy.dcm", "one of each"]),
])
def test_what_cannot_be_a_plan_is_refused_naming_the_files(dicom, table, files, words):
    with pytest.raises(PlanError) as err:
        read_uploaded_plan(files(dicom, table))
    for w in words:
        assert w in str(err.value)


def test_a_file_over_its_limit_is_refused(dicom):
    limits = ImportLimits(rtdose_bytes=1000)
    with pytest.raises(PlanError, match=r"RD\.dcm is .*larger than the limit"):
        read_uploaded_plan(dicom, limits)


def test_largest_file_bytes_is_the_largest_limit():
    assert largest_file_bytes() == ImportLimits().rtdose_bytes
    assert largest_file_bytes(ImportLimits(rtdose_bytes=5, rtstruct_bytes=7, rtplan_bytes=3,
                                           dvh_bytes=6)) == 7
