"""Reading DICOM-RT (engine/dvh/dicom.py): pydicom's own RT test files (they ship in the pydicom
wheel, no download) and every refusal, each with its message."""

from __future__ import annotations

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from engine.dvh import ImportLimits, PlanError, import_plan, read_plan, sort_dicom
from engine.dvh.dicom import read_rtdose, read_rtplan, read_rtstruct
from tests.unit.dvh.helpers import edit, named, sphere_files


def pydicom_bytes(name: str) -> bytes:
    with open(pydicom_file(name), "rb") as fh:
        return fh.read()


def pydicom_file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:  # pragma: no cover - they ship with the pydicom wheel
        pytest.skip(f"pydicom's test file {name} is not installed")
    return str(path)


# --------------------------------------------------------------------------------------------
# pydicom's RT test files


def test_pydicom_rtstruct_without_preamble_is_read():
    # rtstruct.dcm has no 128-byte preamble: accepted because it parses as an RT Structure Set.
    rois = read_rtstruct(pydicom_file("rtstruct.dcm"))
    assert rois.names == ("patient",)
    assert rois.skipped == ("Isocenter 1", "Isocenter 2")  # point ROIs are not structures
    (roi,) = rois.rois
    assert [z for z, _ in roi.planes] == [-200.0, -190.0, -180.0]
    assert roi.thickness_mm == 10.0 and roi.frame_of_reference_uid.startswith("1.2.826.0.1")


def test_pydicom_rtplan_fractions_and_prescription():
    plan = read_rtplan(pydicom_file("rtplan.dcm"))
    assert plan.n_fractions == 30 and plan.fractions_problem is None
    assert plan.prescription_gy == pytest.approx(30.826203)


def test_pydicom_rtdose_is_a_relative_dose_of_one_beam():
    with pytest.raises(PlanError, match=r"^rtdose.dcm holds a relative dose \(DoseUnits "
                                        r"RELATIVE, DoseType PHYSICAL\); export the absolute"):
        read_rtdose(pydicom_file("rtdose.dcm"))
    fixed = edit(pydicom_bytes("rtdose.dcm"),
                 lambda ds: setattr(ds, "DoseUnits", "GY"))
    with pytest.raises(PlanError, match=r"DoseSummationType 'BEAM' \(3004,000A\) is not the "
                                        r"dose of a plan or of a fraction"):
        read_rtdose(("rtdose.dcm", fixed))


def _as_plan_dose(ds: Dataset, frame_uid: str | None = None) -> None:
    ds.DoseUnits = "GY"
    ds.DoseSummationType = "PLAN"
    if frame_uid:
        ds.FrameOfReferenceUID = frame_uid


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_pydicom_files_from_two_frames_of_reference_are_refused():
    dose = edit(pydicom_bytes("rtdose.dcm"), _as_plan_dose)
    grid, _ = read_rtdose(("rtdose.dcm", dose))
    assert grid.shape == (15, 10, 10) and grid.dose_gy.max() > 0
    with pytest.raises(PlanError, match=r"^rtstruct.dcm references frame\(s\) of reference "
                                        r"1.2.826.0.1.3680043.8.498.2010020400001.2 "
                                        r"\(3006,0010\), the dose in rtdose.dcm is in 2.22.222"):
        read_plan(rtdose=("rtdose.dcm", dose), rtstruct=pydicom_file("rtstruct.dcm"))


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_pydicom_structure_outside_the_dose_grid_is_refused():
    frame = read_rtstruct(pydicom_file("rtstruct.dcm")).frame_of_reference_uids[0]
    dose = edit(pydicom_bytes("rtdose.dcm"), lambda ds: _as_plan_dose(ds, frame))
    with pytest.raises(PlanError, match=r"^the dose grid of rtdose.dcm does not cover structure "
                                        r"patient: the structure spans .* z -200.0 to -180.0 mm;"
                                        r" the dose grid .* z -761.9 to -691.9 mm"):
        import_plan("nsclc", rtdose=("rtdose.dcm", dose), rtstruct=pydicom_file("rtstruct.dcm"),
                    rtplan=pydicom_file("rtplan.dcm"),
                    structures={"tumour": "patient", "lung": "patient"})


# --------------------------------------------------------------------------------------------
# Refusals on the phantom's files


def _refused(files: dict[str, bytes], match: str, **kwargs) -> None:
    with pytest.raises(PlanError, match=match):
        import_plan("nsclc", **{**named(files), **kwargs})


def _dose_change(change) -> dict[str, bytes]:
    files = dict(sphere_files())
    files["RTDOSE"] = edit(files["RTDOSE"], change)
    return files


def test_not_a_dicom_file():
    files = dict(sphere_files())
    files["RTDOSE"] = b"structure,dose_gy,volume_cc\nGTV,0,10\n"
    _refused(files, r"^RD.dcm is not a DICOM file \(no DICM preamble and no DICOM dataset\)")


def test_a_file_over_the_size_limit():
    from engine.dvh import ImportConfig

    _refused(sphere_files(), r"^RD.dcm is .* larger than the limit of 1000 bytes for a RTDOSE "
                             r"file", config=ImportConfig(limits=ImportLimits(rtdose_bytes=1000)))


def test_a_file_of_another_kind():
    files = dict(sphere_files())
    files["RTDOSE"] = files["RTPLAN"]
    _refused(files, r"^RD.dcm is an RT Plan \(RTPLAN\), expected an RT Dose \(RTDOSE\) file")


def test_a_missing_file_and_an_empty_file(tmp_path):
    with pytest.raises(PlanError, match=r"^nothere.dcm: no such file \(expected the RTDOSE"):
        read_rtdose(tmp_path / "nothere.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(PlanError, match=r"^empty.dcm is empty \(0 bytes\)"):
        read_rtstruct(tmp_path / "empty.dcm")


@pytest.mark.parametrize(("change", "match"), [
    (lambda ds: delattr(ds, "FrameOfReferenceUID"),
     r"^RD.dcm has no FrameOfReferenceUID \(0020,0052\); the dose cannot be placed"),
    (lambda ds: setattr(ds, "DoseUnits", "CGY"),
     r"^RD.dcm: unknown DoseUnits 'CGY' \(3004,0002\); expected GY"),
    (lambda ds: setattr(ds, "DoseUnits", "RELATIVE"),
     r"^RD.dcm holds a relative dose \(DoseUnits RELATIVE"),
    (lambda ds: setattr(ds, "DoseType", "ERROR"),
     r"^RD.dcm: DoseType 'ERROR' \(3004,0004\); expected PHYSICAL"),
    (lambda ds: setattr(ds, "DoseSummationType", "CONTROL_POINT"),
     r"^RD.dcm: DoseSummationType 'CONTROL_POINT' \(3004,000A\) is not the dose of a plan"),
    (lambda ds: delattr(ds, "DoseGridScaling"),
     r"^RD.dcm has no DoseGridScaling \(3004,000E\); the stored integers cannot be converted"),
    (lambda ds: setattr(ds, "DoseGridScaling", "0"),
     r"^RD.dcm: DoseGridScaling \(3004,000E\) = 0.0; expected a positive number"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1]),
     r"^RD.dcm: ImageOrientationPatient \(0020,0037\) = 1, 0, 0, 0, 0, -1 is not an axial grid"),
    (lambda ds: setattr(ds, "GridFrameOffsetVector", [5.0 + i for i in range(
        int(ds.NumberOfFrames))]),
     r"^RD.dcm: GridFrameOffsetVector \(3004,000C\) starts at 5, neither 0"),
    (lambda ds: delattr(ds, "PixelData"), r"^RD.dcm has no PixelData \(7FE0,0010\)"),
])
def test_rtdose_refusals(change, match):
    _refused(_dose_change(change), match)


def test_an_effective_dose_is_read_with_a_warning():
    files = _dose_change(lambda ds: setattr(ds, "DoseType", "EFFECTIVE"))
    result = import_plan("nsclc", **named(files))
    assert any("DoseType EFFECTIVE (an RBE-weighted dose)" in w for w in result.warnings)


def _remove_contours(name: str):
    def change(ds: Dataset) -> None:
        number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == name)
        for item in ds.ROIContourSequence:
            if item.ReferencedROINumber == number:
                item.ContourSequence = DicomSequence([])
    return change


def test_a_role_structure_without_contours_is_refused():
    files = dict(sphere_files())
    files["RTSTRUCT"] = edit(files["RTSTRUCT"], _remove_contours("GTV"))
    _refused(files, r"^structure GTV has no contours in RS.dcm$")
    _refused(files, r"^structure GTV has no contours in RS.dcm$", structures={"tumour": "GTV"})


def test_a_missing_role_structure_is_refused_listing_what_the_plan_holds():
    files = dict(sphere_files())
    files["RTSTRUCT"] = edit(files["RTSTRUCT"], lambda ds: setattr(
        ds.StructureSetROISequence[0], "ROIName", "Tumour"))
    _refused(files, r"^no structure for role tumour \(Tumour \(GTV\)\) in RS.dcm: looked for GTV,"
                    r" GTVp, GTV_Primary, GTV_Lung; structures found: Tumour, Lungs; choose one "
                    r"with --structure tumour=NAME$")
    result = import_plan("nsclc", **named(files), structures={"tumour": "Tumour"})
    assert result.roles["tumour"].structure == "Tumour"


def test_a_structure_in_another_frame_of_reference_is_refused():
    def change(ds: Dataset) -> None:
        ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3"
        for roi in ds.StructureSetROISequence:
            roi.ReferencedFrameOfReferenceUID = "1.2.3"

    files = dict(sphere_files())
    files["RTSTRUCT"] = edit(files["RTSTRUCT"], change)
    _refused(files, r"^RS.dcm references frame\(s\) of reference 1.2.3 \(3006,0010\), the dose "
                    r"in RD.dcm is in ")

    def one_roi(ds: Dataset) -> None:  # the set matches, one ROI does not
        ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID = "1.2.3"

    files["RTSTRUCT"] = edit(sphere_files()["RTSTRUCT"], one_roi)
    _refused(files, r"^structure GTV in RS.dcm is in frame of reference 1.2.3, the dose in RD.dcm"
                    r" in .* export the structures and the dose of the same planning CT")


def test_an_rtplan_in_another_frame_of_reference_is_refused():
    files = dict(sphere_files())
    files["RTPLAN"] = edit(files["RTPLAN"], lambda ds: setattr(ds, "FrameOfReferenceUID",
                                                               "1.2.3"))
    _refused(files, r"^RP.dcm is in frame of reference 1.2.3, the dose in RD.dcm in ")


def test_sort_dicom_by_sop_class():
    files = sphere_files()
    got = sort_dicom([("c.dcm", files["RTPLAN"]), ("a.dcm", files["RTSTRUCT"]),
                      ("b.dcm", files["RTDOSE"])])
    assert (got.rtdose[0], got.rtstruct[0], got.rtplan[0]) == ("b.dcm", "a.dcm", "c.dcm")
    with pytest.raises(PlanError, match=r"^b.dcm and a.dcm are both an RT Dose \(RTDOSE\) file"):
        sort_dicom([("a.dcm", files["RTDOSE"]), ("b.dcm", files["RTDOSE"])])
    with pytest.raises(PlanError, match=r"^CT_small.dcm is a DICOM file but not an RTDOSE, "
                                        r"RTSTRUCT or RTPLAN"):
        sort_dicom([pydicom_file("CT_small.dcm")])
