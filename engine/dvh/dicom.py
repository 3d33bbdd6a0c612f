"""Reading DICOM-RT files with pydicom 3: the dose grid (RTDOSE), the structures' contours
(RTSTRUCT) and the fractions and prescription (RTPLAN).

Each reader checks what the import relies on and refuses everything else with a
:class:`~engine.dvh.sources.PlanError` naming the file, the tag and what was expected: a file that
is not DICOM, a DICOM object of another kind, a dose that is relative or in an unknown unit, a
dose that is not a plan or fraction total, a missing ``DoseGridScaling`` or frame of reference, a
dose grid that is not axial. Problems of one structure (no contours, non-planar contours) are kept
on the structure (:attr:`Roi.problem`): they refuse the import only when a role needs that
structure.

Only what the import needs is read: never the patient's name, id or birth date.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from engine.dvh.sources import FileInput, ImportLimits, PlanError, display_name, read_limited

__all__ = [
    "ACCEPTED_SUMMATION",
    "DicomSet",
    "DoseGrid",
    "PlanInfo",
    "Roi",
    "StructureSet",
    "read_rtdose",
    "read_rtplan",
    "read_rtstruct",
    "sort_dicom",
]

SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
    "1.2.840.10008.5.1.4.1.1.481.5": "RTPLAN",
    "1.2.840.10008.5.1.4.1.1.481.8": "RTPLAN",  # RT Ion Plan
}
"""SOP classes read, by their DICOM-RT kind."""
_KIND_WORDS = {"RTDOSE": "an RT Dose (RTDOSE)", "RTSTRUCT": "an RT Structure Set (RTSTRUCT)",
               "RTPLAN": "an RT Plan (RTPLAN)"}

ACCEPTED_SUMMATION: dict[str, str] = {
    "PLAN": "plan",
    "MULTI_PLAN": "plan",
    "FRACTION": "fraction",
    "FRACTION_SESSION": "fraction",
}
"""DoseSummationType values accepted: the dose of a whole plan, or of one fraction."""
_Z_TOLERANCE_MM = 0.01
"""Positions closer than this are the same plane, mm."""


@dataclass(frozen=True)
class DoseGrid:
    """The RTDOSE dose in Gy on its grid, frames sorted by patient z."""

    dose_gy: np.ndarray
    """Dose, Gy, ≥ 0; shape [K frames, R rows, C columns]."""
    z_mm: np.ndarray
    """Patient z of each frame, mm, ascending; shape [K]."""
    origin_mm: np.ndarray
    """Patient position of pixel (row 0, column 0) of a frame, mm (its z is not used); [3]."""
    row_dir: np.ndarray
    """Unit vector along a row (column index increases), patient coordinates; [3]."""
    col_dir: np.ndarray
    """Unit vector along a column (row index increases); [3]."""
    row_spacing_mm: float
    """Distance between rows, mm (PixelSpacing[0])."""
    col_spacing_mm: float
    """Distance between columns, mm (PixelSpacing[1])."""
    frame_of_reference_uid: str
    """FrameOfReferenceUID (0020,0052)."""
    summation: str
    """``"plan"`` (the dose of all the plan's fractions) or ``"fraction"`` (one fraction)."""
    summation_type: str
    """DoseSummationType as written (e.g. ``PLAN``)."""
    dose_type: str
    """DoseType (``PHYSICAL`` or ``EFFECTIVE``)."""
    referenced_plan_uid: str | None
    """SOPInstanceUID of the RTPLAN the dose refers to, if given."""
    file: str
    """Display name of the file."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.dose_gy.shape)  # type: ignore[return-value]

    def to_index(self, xy_mm: np.ndarray) -> np.ndarray:
        """Patient (x, y) points (on an axial plane) → continuous (column, row) indices, [N, 2]."""
        rel = np.asarray(xy_mm, dtype=np.float64) - self.origin_mm[:2]
        col = rel @ self.row_dir[:2] / self.col_spacing_mm
        row = rel @ self.col_dir[:2] / self.row_spacing_mm
        return np.stack([col, row], axis=-1)


@dataclass(frozen=True)
class Roi:
    """One structure (ROI) of a structure set: its closed contours by plane."""

    number: int
    """ROINumber."""
    name: str
    """ROIName, stripped of surrounding spaces."""
    frame_of_reference_uid: str | None
    """The ROI's ReferencedFrameOfReferenceUID (or the structure set's only one)."""
    planes: tuple[tuple[float, tuple[np.ndarray, ...]], ...]
    """(z in mm, closed contours on that plane, each [N, 2] patient x, y in mm), ascending z."""
    interpreted_type: str
    """RTROIInterpretedType (e.g. ``PTV``, ``ORGAN``, ``EXTERNAL``); empty when absent."""
    problem: str | None = None
    """Why the ROI cannot give a DVH (no closed contours, non-planar contours); None when fine."""

    @property
    def thickness_mm(self) -> float | None:
        """Slice thickness: the median distance between the ROI's contour planes, mm (None for a
        single plane)."""
        if len(self.planes) < 2:
            return None
        return float(np.median(np.diff([z for z, _ in self.planes])))


@dataclass(frozen=True)
class StructureSet:
    """The ROIs of an RTSTRUCT."""

    rois: tuple[Roi, ...]
    """In file order."""
    frame_of_reference_uids: tuple[str, ...]
    """ReferencedFrameOfReferenceSequence UIDs."""
    skipped: tuple[str, ...]
    """ROIs with only point or open contours (markers, isocentres), not structures."""
    file: str
    """Display name of the file."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rois)

    def roi(self, name: str) -> Roi:
        for r in self.rois:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def default_thickness_mm(self) -> float | None:
        """The median slice thickness over all ROIs (for a ROI on a single plane)."""
        values = [t for r in self.rois if (t := r.thickness_mm) is not None]
        return float(np.median(values)) if values else None


@dataclass(frozen=True)
class PlanInfo:
    """What the import reads from an RTPLAN."""

    n_fractions: int | None
    """NumberOfFractionsPlanned of the only fraction group; None when not usable (see
    ``fractions_problem``)."""
    fractions_problem: str | None
    """Why ``n_fractions`` is None (no or several fraction groups), else None."""
    prescription_gy: float | None
    """TargetPrescriptionDose of the (first) TARGET dose reference, Gy, if any."""
    frame_of_reference_uid: str | None
    """FrameOfReferenceUID, if the plan gives one."""
    sop_instance_uid: str | None
    """SOPInstanceUID (matched against the dose's referenced plan)."""
    file: str
    """Display name of the file."""


@dataclass(frozen=True)
class DicomSet:
    """Uploaded DICOM files sorted by kind (:func:`sort_dicom`)."""

    rtdose: FileInput | None
    rtstruct: FileInput | None
    rtplan: FileInput | None


# --------------------------------------------------------------------------------------------
# Reading a file as a DICOM object of the expected kind


def _parse(data: bytes, name: str, *, stop_before_pixels: bool = False) -> Dataset:
    """The dataset of ``data``; a file without the 128-byte preamble ("DICM") is accepted when it
    parses as a dataset with a SOP class (older exports, pydicom's own RTSTRUCT test file)."""
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    except Exception as err:  # truncated or corrupt after a valid preamble
        raise PlanError(f"{name} is not a readable DICOM file ({type(err).__name__}: "
                        f"{str(err)[:80]})") from err
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=stop_before_pixels)
        if "SOPClassUID" in ds:
            return ds
    except Exception:  # forced parsing of arbitrary bytes fails in many ways; all mean "not DICOM"
        pass
    raise PlanError(f"{name} is not a DICOM file (no DICM preamble and no DICOM dataset); "
                    "export the plan from the planning system as DICOM-RT")


def _kind(ds: Dataset) -> str | None:
    kind = SOP_CLASSES.get(str(ds.get("SOPClassUID", "")))
    if kind is None and str(ds.get("Modality", "")) in ("RTDOSE", "RTSTRUCT", "RTPLAN"):
        kind = str(ds.Modality)
    return kind


def _read(source: FileInput, expected: str, limits: ImportLimits,
          *, stop_before_pixels: bool = False) -> tuple[Dataset, str]:
    name = display_name(source)
    data = read_limited(source, limits.for_kind(expected), expected)
    ds = _parse(data, name, stop_before_pixels=stop_before_pixels)
    kind = _kind(ds)
    if kind != expected:
        what = _KIND_WORDS.get(kind or "", f"a DICOM object of SOP class "
                                             f"{ds.get('SOPClassUID', 'unknown')}")
        raise PlanError(f"{name} is {what}, expected {_KIND_WORDS[expected]} file")
    return ds, name


def _floats(ds: Dataset, keyword: str, tag: str, name: str, n: int | None = None) -> list[float]:
    if keyword not in ds or ds[keyword].value in (None, ""):
        raise PlanError(f"{name} has no {keyword} {tag}; expected it in an RTDOSE")
    value = ds[keyword].value
    values = [float(v) for v in (value if isinstance(value, Sequence | np.ndarray)
                                 and not isinstance(value, str) else [value])]
    if n is not None and len(values) != n:
        raise PlanError(f"{name}: {keyword} {tag} has {len(values)} values, expected {n}")
    if not all(math.isfinite(v) for v in values):
        raise PlanError(f"{name}: {keyword} {tag} holds a value that is not a finite number")
    return values


# --------------------------------------------------------------------------------------------
# RTDOSE


def read_rtdose(source: FileInput, limits: ImportLimits | None = None
                ) -> tuple[DoseGrid, list[str]]:
    """Read an RTDOSE file: the dose in Gy on its grid, and warnings.

    Refused (:class:`PlanError`): not DICOM, not an RTDOSE, over the size limit, no
    FrameOfReferenceUID, DoseUnits other than GY (RELATIVE named as a relative dose), DoseType
    ERROR or missing, a DoseSummationType that is not a plan or fraction total (BEAM, BRACHY,
    CONTROL_POINT, RECORD, …), no or a non-positive DoseGridScaling, no pixel data or pixel data
    that cannot be decoded, a grid that is not axial, frame offsets that are neither relative nor
    absolute z, negative doses.
    """
    ds, name = _read(source, "RTDOSE", limits or ImportLimits())
    warnings: list[str] = []
    frame_uid = str(ds.get("FrameOfReferenceUID", "") or "")
    if not frame_uid:
        raise PlanError(f"{name} has no FrameOfReferenceUID (0020,0052); the dose cannot be "
                        "placed on the structures")
    units = str(ds.get("DoseUnits", "") or "").upper()
    dose_type = str(ds.get("DoseType", "") or "").upper()
    if units == "RELATIVE" or dose_type == "RELATIVE":
        raise PlanError(f"{name} holds a relative dose (DoseUnits {units or 'missing'}, DoseType "
                        f"{dose_type or 'missing'}); export the absolute dose in Gy "
                        "(DoseUnits GY)")
    if units != "GY":
        raise PlanError(f"{name}: unknown DoseUnits {units or '(missing)'!r} (3004,0002); "
                        "expected GY")
    if dose_type == "EFFECTIVE":
        warnings.append(f"{name}: DoseType EFFECTIVE (an RBE-weighted dose); the protocols' "
                        "features are defined on physical photon dose")
    elif dose_type != "PHYSICAL":
        raise PlanError(f"{name}: DoseType {dose_type or '(missing)'!r} (3004,0004); expected "
                        "PHYSICAL (or EFFECTIVE)")
    summation_type = str(ds.get("DoseSummationType", "") or "").upper()
    if summation_type not in ACCEPTED_SUMMATION:
        raise PlanError(
            f"{name}: DoseSummationType {summation_type or '(missing)'!r} (3004,000A) is not "
            f"the dose of a plan or of a fraction; expected one of "
            f"{', '.join(ACCEPTED_SUMMATION)} (export the plan dose, not a beam's)")
    if "DoseGridScaling" not in ds or ds.DoseGridScaling in (None, ""):
        raise PlanError(f"{name} has no DoseGridScaling (3004,000E); the stored integers "
                        "cannot be converted to Gy")
    scaling = float(ds.DoseGridScaling)
    if not (math.isfinite(scaling) and scaling > 0):
        raise PlanError(f"{name}: DoseGridScaling (3004,000E) = {scaling!r}; expected a "
                        "positive number")
    origin = np.array(_floats(ds, "ImagePositionPatient", "(0020,0032)", name, 3))
    orient = np.array(_floats(ds, "ImageOrientationPatient", "(0020,0037)", name, 6))
    row_spacing, col_spacing = _floats(ds, "PixelSpacing", "(0028,0030)", name, 2)
    if not (row_spacing > 0 and col_spacing > 0):
        raise PlanError(f"{name}: PixelSpacing (0028,0030) = {row_spacing}, {col_spacing}; "
                        "expected positive spacings in mm")
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(abs(normal[2]) - 1.0) > 1e-3:
        raise PlanError(f"{name}: ImageOrientationPatient (0020,0037) = "
                        f"{', '.join(f'{v:g}' for v in orient)} is not an axial grid; only "
                        "axial dose grids are supported")
    if "PixelData" not in ds:
        raise PlanError(f"{name} has no PixelData (7FE0,0010): the file holds no dose values")
    try:
        pixels = ds.pixel_array
    except Exception as err:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(
            ds, "file_meta") else "unknown"
        raise PlanError(f"{name}: the dose values cannot be decoded (transfer syntax {syntax}: "
                        f"{str(err)[:80]})") from err
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = np.asarray(pixels).reshape(n_frames, int(ds.Rows), int(ds.Columns))
    if n_frames > 1 or "GridFrameOffsetVector" in ds:
        offsets = np.array(_floats(ds, "GridFrameOffsetVector", "(3004,000C)", name))
        if len(offsets) != n_frames:
            raise PlanError(f"{name}: GridFrameOffsetVector (3004,000C) has {len(offsets)} "
                            f"values for {n_frames} frames")
    else:
        offsets = np.zeros(1)
    if abs(offsets[0]) < 1e-6:
        z = origin[2] + offsets * normal[2]  # relative to the first frame, along the normal
    elif abs(offsets[0] - origin[2]) < 1e-3:
        z = offsets.copy()  # absolute patient z (an older form the standard allows)
    else:
        raise PlanError(f"{name}: GridFrameOffsetVector (3004,000C) starts at {offsets[0]:g}, "
                        f"neither 0 (relative offsets) nor the first frame's z "
                        f"{origin[2]:g} mm (absolute positions)")
    if len(np.unique(np.round(z, 3))) != len(z):
        raise PlanError(f"{name}: GridFrameOffsetVector (3004,000C) repeats a frame position")
    dose = pixels.astype(np.float64) * scaling
    if dose.min() < 0:
        raise PlanError(f"{name} holds negative doses (down to {dose.min():.3g} Gy); "
                        "expected doses ≥ 0")
    order = np.argsort(z)
    ref_plan = None
    if "ReferencedRTPlanSequence" in ds and len(ds.ReferencedRTPlanSequence):
        ref_plan = str(ds.ReferencedRTPlanSequence[0].get("ReferencedSOPInstanceUID", "")) or None
    grid = DoseGrid(
        dose_gy=np.ascontiguousarray(dose[order]), z_mm=z[order], origin_mm=origin,
        row_dir=row_dir, col_dir=col_dir, row_spacing_mm=row_spacing, col_spacing_mm=col_spacing,
        frame_of_reference_uid=frame_uid, summation=ACCEPTED_SUMMATION[summation_type],
        summation_type=summation_type, dose_type=dose_type, referenced_plan_uid=ref_plan,
        file=name,
    )
    return grid, warnings


# --------------------------------------------------------------------------------------------
# RTSTRUCT


def read_rtstruct(source: FileInput, limits: ImportLimits | None = None) -> StructureSet:
    """Read an RTSTRUCT file: every ROI with closed planar contours.

    Refused (:class:`PlanError`): not DICOM, not an RTSTRUCT, over the size limit, no
    StructureSetROISequence. A ROI without closed contours, or with a contour whose points do not
    lie on one axial plane, keeps the reason in :attr:`Roi.problem`; ROIs of only points (markers,
    isocentres) are listed in :attr:`StructureSet.skipped`.
    """
    ds, name = _read(source, "RTSTRUCT", limits or ImportLimits())
    if "StructureSetROISequence" not in ds or not len(ds.StructureSetROISequence):
        raise PlanError(f"{name} has no StructureSetROISequence (3006,0020): it defines no "
                        "structures")
    frame_uids = tuple(
        str(item.get("FrameOfReferenceUID", ""))
        for item in ds.get("ReferencedFrameOfReferenceSequence", []) if item.get(
            "FrameOfReferenceUID"))
    only_frame = frame_uids[0] if len(set(frame_uids)) == 1 else None
    contours: dict[int, list[Dataset]] = {}
    for item in ds.get("ROIContourSequence", []):
        contours[int(item.ReferencedROINumber)] = list(item.get("ContourSequence", []))
    types = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "")
             for o in ds.get("RTROIObservationsSequence", []) if "ReferencedROINumber" in o}
    rois: list[Roi] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for item in ds.StructureSetROISequence:
        number = int(item.ROINumber)
        roi_name = str(item.get("ROIName", "") or "").strip() or f"ROI {number}"
        if roi_name in seen:  # duplicate names: keep both, distinguishable
            seen[roi_name] += 1
            roi_name = f"{roi_name} ({seen[roi_name]})"
        else:
            seen[roi_name] = 1
        frame = str(item.get("ReferencedFrameOfReferenceUID", "") or "") or only_frame
        items = contours.get(number, [])
        closed = [c for c in items if str(c.get("ContourGeometricType", "")) == "CLOSED_PLANAR"]
        if items and not closed:
            skipped.append(roi_name)
            continue
        planes, problem = _planes(closed, roi_name, name)
        rois.append(Roi(number=number, name=roi_name, frame_of_reference_uid=frame,
                        planes=planes, interpreted_type=types.get(number, ""), problem=problem))
    return StructureSet(rois=tuple(rois), frame_of_reference_uids=frame_uids,
                        skipped=tuple(skipped), file=name)


def _contour_data(contour: Dataset) -> np.ndarray:
    """ContourData as floats, [3N]. The raw text is parsed with numpy: converting hundreds of
    thousands of values through pydicom's DS objects takes seconds on a large structure set."""
    if "ContourData" not in contour:
        return np.zeros(0)
    raw = contour.get_item("ContourData")
    value = getattr(raw, "value", None)
    if isinstance(value, bytes):
        text = value.strip(b" \x00")
        try:
            return np.array(text.split(b"\\"), dtype=np.float64) if text else np.zeros(0)
        except ValueError:
            pass  # unusual spacing or an invalid value: let pydicom parse (and complain)
    return np.asarray([float(v) for v in contour.ContourData], dtype=np.float64)


def _planes(closed: list[Dataset], roi_name: str, file: str
            ) -> tuple[tuple[tuple[float, tuple[np.ndarray, ...]], ...], str | None]:
    if not closed:
        return (), f"structure {roi_name} has no contours in {file}"
    by_z: dict[float, list[np.ndarray]] = {}
    for c in closed:
        pts = _contour_data(c)
        if len(pts) < 9 or len(pts) % 3:
            continue  # fewer than 3 points: no area
        pts = pts.reshape(-1, 3)
        if np.ptp(pts[:, 2]) > 0.1:
            return (), (f"structure {roi_name} in {file} has a contour that is not on one axial "
                        f"plane (z from {pts[:, 2].min():g} to {pts[:, 2].max():g} mm)")
        z = round(float(pts[:, 2].mean()), 2)
        key = next((k for k in by_z if abs(k - z) <= _Z_TOLERANCE_MM), z)
        by_z.setdefault(key, []).append(pts[:, :2])
    if not by_z:
        return (), f"structure {roi_name} has no contours with an area in {file}"
    return tuple((z, tuple(by_z[z])) for z in sorted(by_z)), None


# --------------------------------------------------------------------------------------------
# RTPLAN


def read_rtplan(source: FileInput, limits: ImportLimits | None = None) -> PlanInfo:
    """Read the fractions and prescription of an RTPLAN (or RT Ion Plan).

    Refused (:class:`PlanError`): not DICOM, not an RTPLAN, over the size limit. A plan without
    or with several fraction groups, or without NumberOfFractionsPlanned, keeps the reason in
    :attr:`PlanInfo.fractions_problem` (``--plan-fractions`` then gives the number).
    """
    ds, name = _read(source, "RTPLAN", limits or ImportLimits(), stop_before_pixels=True)
    groups = list(ds.get("FractionGroupSequence", []))
    n_fractions: int | None = None
    problem: str | None = None
    if not groups:
        problem = f"{name} has no FractionGroupSequence (300A,0070)"
    elif len(groups) > 1:
        counts = ", ".join(str(g.get("NumberOfFractionsPlanned", "?")) for g in groups)
        problem = (f"{name} has {len(groups)} fraction groups ({counts} fractions): which of "
                   "them the dose covers is not known")
    else:
        value = groups[0].get("NumberOfFractionsPlanned")
        try:
            n_fractions = int(value)
        except (TypeError, ValueError):
            n_fractions = None
        if n_fractions is None or n_fractions < 1:
            n_fractions = None
            problem = (f"{name}: NumberOfFractionsPlanned (300A,0078) = {value!r}; expected a "
                       "whole number ≥ 1")
    prescription = None
    for ref in ds.get("DoseReferenceSequence", []):
        if str(ref.get("DoseReferenceType", "")) == "TARGET" and ref.get(
                "TargetPrescriptionDose") not in (None, ""):
            prescription = float(ref.TargetPrescriptionDose)
            break
    return PlanInfo(
        n_fractions=n_fractions, fractions_problem=problem, prescription_gy=prescription,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or "") or None,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or "") or None, file=name,
    )


# --------------------------------------------------------------------------------------------
# Sorting uploads


def sort_dicom(files: Sequence[FileInput], limits: ImportLimits | None = None) -> DicomSet:
    """Sort uploaded DICOM files into RTDOSE, RTSTRUCT and RTPLAN by their SOP class (headers
    only), so a user can drop the files in any order.

    Raises:
        PlanError: a file is not DICOM or of another kind, or two files are of the same kind.
    """
    limits = limits or ImportLimits()
    found: dict[str, FileInput] = {}
    for source in files:
        name = display_name(source)
        data = read_limited(source, max(limits.rtdose_bytes, limits.rtstruct_bytes,
                                        limits.rtplan_bytes), "DICOM-RT")
        kind = _kind(_parse(data, name, stop_before_pixels=True))
        if kind is None:
            raise PlanError(f"{name} is a DICOM file but not an RTDOSE, RTSTRUCT or RTPLAN "
                            "(e.g. a CT image); upload the plan's DICOM-RT files")
        if kind in found:
            raise PlanError(f"{name} and {display_name(found[kind])} are both {_KIND_WORDS[kind]}"
                            " file; upload one of each")
        found[kind] = source
    return DicomSet(found.get("RTDOSE"), found.get("RTSTRUCT"), found.get("RTPLAN"))
