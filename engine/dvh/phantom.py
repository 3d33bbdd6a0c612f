"""Analytic phantoms written as DICOM-RT with pydicom: RTDOSE, RTSTRUCT and RTPLAN whose DVHs are
known in closed form (a uniform sphere, a linear dose gradient across a box) or realistic (a
thorax for NSCLC, an upper abdomen for HCC).

Used by the unit tests, the accuracy measurement (:mod:`engine.dvh.accuracy`), the example files
in ``assets/examples/plan/``, the benchmark and the browser test. Structures are unions of simple
solids (ellipsoids, elliptic cylinders, boxes), optionally with holes; each is contoured on the
axial planes of a CT with ``slice_mm`` spacing, with polygons whose area equals the exact ellipse
(or box) section, so that what a test measures is the rasterisation, not the polygon.

The patient's name and id written into the files are fixed phantom labels (they let tests check
that no header identifier reaches the output).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engine.dvh.dvh import DVH

__all__ = [
    "PHANTOM_PATIENT_ID",
    "PHANTOM_PATIENT_NAME",
    "Phantom",
    "PhantomStructure",
    "Solid",
    "box_gradient_phantom",
    "eclipse_text",
    "liver_phantom",
    "phantom_bytes",
    "sphere_phantom",
    "thorax_phantom",
    "write_examples",
    "write_phantom",
]

PHANTOM_PATIENT_NAME = "Phantom^Analytic"
"""PatientName written into every phantom file."""
PHANTOM_PATIENT_ID = "ARTDS-PHANTOM-0001"
"""PatientID written into every phantom file."""

RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"

DoseFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""Dose in Gy at patient (x, y, z) in mm (arrays of one shape)."""


@dataclass(frozen=True)
class Solid:
    """An ellipsoid, an elliptic cylinder along z, or a box; sizes in mm."""

    kind: str
    """``"ellipsoid"``, ``"cylinder"`` or ``"box"``."""
    centre_mm: tuple[float, float, float]
    """Centre (x, y, z), mm."""
    radii_mm: tuple[float, float, float]
    """Semi-axes (x, y, z) of an ellipsoid; x, y semi-axes and half-length of a cylinder;
    half-sizes of a box."""

    def section(self, z: float, n_vertices: int) -> np.ndarray | None:
        """The polygon [N, 2] (x, y mm) of the solid's section at ``z``, counter-clockwise, with
        the exact section's area; None when the plane misses the solid."""
        cx, cy, cz = self.centre_mm
        a, b, c = self.radii_mm
        u = (z - cz) / c
        if abs(u) >= 1.0:
            return None
        if self.kind == "box":
            return np.array([[cx - a, cy - b], [cx + a, cy - b], [cx + a, cy + b],
                             [cx - a, cy + b]])
        scale = math.sqrt(1.0 - u * u) if self.kind == "ellipsoid" else 1.0
        # A regular n-gon has area (n/2) sin(2π/n) r²; this radius gives the ellipse's area.
        area_fix = math.sqrt(2.0 * math.pi / (n_vertices * math.sin(2.0 * math.pi / n_vertices)))
        t = np.linspace(0.0, 2.0 * math.pi, n_vertices, endpoint=False)
        return np.stack([cx + a * scale * area_fix * np.cos(t),
                         cy + b * scale * area_fix * np.sin(t)], axis=1)

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Which points lie inside the solid."""
        cx, cy, cz = self.centre_mm
        a, b, c = self.radii_mm
        dx, dy, dz = (x - cx) / a, (y - cy) / b, (z - cz) / c
        if self.kind == "ellipsoid":
            return dx * dx + dy * dy + dz * dz < 1.0
        if self.kind == "cylinder":
            return (dx * dx + dy * dy < 1.0) & (np.abs(dz) < 1.0)
        return (np.abs(dx) < 1.0) & (np.abs(dy) < 1.0) & (np.abs(dz) < 1.0)

    def volume_cc(self) -> float:
        a, b, c = self.radii_mm
        factor = {"ellipsoid": 4.0 / 3.0 * math.pi, "cylinder": 2.0 * math.pi, "box": 8.0}
        return factor[self.kind] * a * b * c / 1000.0


@dataclass(frozen=True)
class PhantomStructure:
    """A structure: contours of each solid (several solids on a plane are separate contours),
    and of each hole (drawn inside, so the even–odd rule removes it)."""

    name: str
    """ROIName."""
    solids: tuple[Solid, ...]
    """Solids contoured (they should not overlap each other)."""
    holes: tuple[Solid, ...] = ()
    """Solids contoured inside the structure: holes."""
    interpreted_type: str = "ORGAN"
    """RTROIInterpretedType."""


@dataclass(frozen=True)
class Phantom:
    """Everything needed to write a phantom's DICOM-RT files."""

    name: str
    """Identifier (seeds the UIDs, so the same phantom always gets the same UIDs)."""
    structures: tuple[PhantomStructure, ...]
    """Structures in ROI order."""
    dose: DoseFunction = field(repr=False)
    """Plan dose in Gy at patient (x, y, z) mm."""
    grid_origin_mm: tuple[float, float, float]
    """Patient position of the first dose voxel (x, y, z), mm."""
    grid_shape: tuple[int, int, int]
    """Dose grid (frames, rows, columns)."""
    grid_mm: float
    """Dose grid spacing in x, y and z, mm."""
    slice_mm: float
    """CT slice spacing: the contours' plane spacing, mm."""
    slice_origin_mm: float
    """z of one CT slice, mm (slices at slice_origin + k · slice_mm)."""
    n_fractions: int
    """Fractions the RTPLAN plans (and the plan dose covers)."""
    prescription_gy: float
    """TargetPrescriptionDose of the RTPLAN, Gy."""
    n_vertices: int = 64
    """Vertices of each elliptic contour."""
    dose_scale_gy: float = 0.001
    """DoseGridScaling, Gy per stored unit."""
    decimals: int = 2
    """Decimals of the contour coordinates written, mm."""

    def dose_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Patient x, y, z axes (mm) and the dose [K, R, C] in Gy, before quantisation."""
        k, r, c = self.grid_shape
        x0, y0, z0 = self.grid_origin_mm
        x = x0 + self.grid_mm * np.arange(c)
        y = y0 + self.grid_mm * np.arange(r)
        z = z0 + self.grid_mm * np.arange(k)
        zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
        return x, y, z, self.dose(xx, yy, zz)

    def contours(self, structure: PhantomStructure) -> list[tuple[float, list[np.ndarray]]]:
        """(z, polygons) of every CT slice that cuts the structure."""
        zs = [s.centre_mm[2] + sgn * s.radii_mm[2] for s in structure.solids for sgn in (-1, 1)]
        k_lo = math.ceil((min(zs) - self.slice_origin_mm) / self.slice_mm)
        k_hi = math.floor((max(zs) - self.slice_origin_mm) / self.slice_mm)
        out = []
        for k in range(k_lo, k_hi + 1):
            z = round(self.slice_origin_mm + k * self.slice_mm, 6)
            polys = [p for s in (*structure.solids, *structure.holes)
                     if (p := s.section(z, self.n_vertices)) is not None]
            if any(s.section(z, self.n_vertices) is not None for s in structure.solids):
                out.append((z, polys))
        return out


# --------------------------------------------------------------------------------------------
# Phantoms


def _uniform(dose_gy: float) -> DoseFunction:
    return lambda x, y, z: np.full(np.shape(x), float(dose_gy))


def sphere_phantom(*, radius_mm: float = 20.0, dose_gy: float = 60.0, grid_mm: float = 2.5,
                   slice_mm: float = 2.5, n_fractions: int = 30, n_vertices: int = 64,
                   centre_mm: tuple[float, float, float] = (1.3, -0.7, 0.4),
                   shell_mm: float | None = None) -> Phantom:
    """A sphere ``GTV`` in a uniform dose, and a ``Lungs`` box around it (uniform too).

    With ``shell_mm`` the sphere gets a concentric spherical hole of that radius (drawn as an
    inner contour on each plane), to test the even–odd rule.
    """
    half = radius_mm + 3 * grid_mm
    n = math.ceil(2 * half / grid_mm) + 1
    origin = tuple(c - half for c in centre_mm)
    gtv = PhantomStructure(
        "GTV", (Solid("ellipsoid", centre_mm, (radius_mm,) * 3),),
        holes=() if shell_mm is None else (Solid("ellipsoid", centre_mm, (shell_mm,) * 3),),
        interpreted_type="GTV")
    lungs = PhantomStructure("Lungs", (Solid("box", centre_mm, (half - grid_mm,) * 3),))
    return Phantom(
        name=f"sphere-{radius_mm:g}-{grid_mm:g}-{slice_mm:g}-{shell_mm}",
        structures=(gtv, lungs), dose=_uniform(dose_gy), grid_origin_mm=origin,  # type: ignore[arg-type]
        grid_shape=(n, n, n), grid_mm=grid_mm, slice_mm=slice_mm,
        slice_origin_mm=centre_mm[2] + 0.5 * slice_mm, n_fractions=n_fractions,
        prescription_gy=dose_gy, n_vertices=n_vertices,
    )


def box_gradient_phantom(*, half_size_mm: tuple[float, float, float] = (31.3, 18.7, 21.1),
                         dose_at_centre_gy: float = 40.0, gradient_gy_per_mm: float = 0.4,
                         grid_mm: float = 2.5, slice_mm: float = 2.5,
                         n_fractions: int = 30) -> Phantom:
    """A box ``GTV`` across a linear dose gradient along x: D = D_c + g (x − x_c); its mean dose
    is D_c, its volume 8 · a · b · c. A sphere ``Lungs`` (radius = the box's smallest half size)
    in the same gradient has the same mean dose."""
    centre = (2.2, -1.4, 0.9)
    box = Solid("box", centre, half_size_mm)
    sphere = Solid("ellipsoid", centre, (min(half_size_mm),) * 3)
    margin = 3 * grid_mm
    shape = tuple(math.ceil((2 * h + 2 * margin) / grid_mm) + 1 for h in half_size_mm)
    origin = tuple(c - h - margin for c, h in zip(centre, half_size_mm, strict=True))

    def dose(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return dose_at_centre_gy + gradient_gy_per_mm * (x - centre[0])

    return Phantom(
        name=f"box-{grid_mm:g}-{slice_mm:g}", structures=(
            PhantomStructure("GTV", (box,), interpreted_type="GTV"),
            PhantomStructure("Lungs", (sphere,))),
        dose=dose, grid_origin_mm=origin,  # type: ignore[arg-type]
        grid_shape=(shape[2], shape[1], shape[0]), grid_mm=grid_mm, slice_mm=slice_mm,
        slice_origin_mm=centre[2] + 0.3 * slice_mm, n_fractions=n_fractions,
        prescription_gy=dose_at_centre_gy,
    )


def _erfc_edge(r: np.ndarray, radius: float, sigma: float) -> np.ndarray:
    """1 inside, 0 outside, with a Gaussian-blurred edge at ``radius`` (width ``sigma``)."""
    from scipy.special import erfc

    return 0.5 * erfc((r - radius) / (math.sqrt(2.0) * sigma))


def thorax_phantom(*, grid_mm: float = 2.5, slice_mm: float = 2.5, with_lungs: bool = True,
                   with_trachea: bool = True, n_vertices: int = 64,
                   dose_scale_gy: float = 0.001, decimals: int = 2) -> Phantom:
    """A thorax planned for NSCLC: 60 Gy in 30 fractions to a PTV around a right-lung GTV.

    Structures: External, Lung_R, Lung_L, Lungs (both lungs, unless ``with_lungs`` is False),
    GTV (sphere, r 22 mm), PTV (r 32 mm), Heart, Esophagus, SpinalCord, Trachea (unless
    ``with_trachea`` is False). Dose: 60 Gy inside the PTV with a 6-mm penumbra, two beam
    paths (antero-posterior and lateral) through the tumour and a 5 % bath, 0 outside the body.
    """
    tumour = (-70.0, 10.0, 40.0)
    body = Solid("cylinder", (0.0, 0.0, 0.0), (170.0, 110.0, 120.0))
    structures = [
        PhantomStructure("External", (body,), interpreted_type="EXTERNAL"),
        PhantomStructure("Lung_R", (Solid("ellipsoid", (-75.0, 0.0, 15.0), (55.0, 70.0, 100.0)),)),
        PhantomStructure("Lung_L", (Solid("ellipsoid", (75.0, 0.0, 15.0), (50.0, 70.0, 95.0)),)),
    ]
    if with_lungs:
        structures.append(PhantomStructure("Lungs", (
            Solid("ellipsoid", (-75.0, 0.0, 15.0), (55.0, 70.0, 100.0)),
            Solid("ellipsoid", (75.0, 0.0, 15.0), (50.0, 70.0, 95.0)))))
    structures += [
        PhantomStructure("GTV", (Solid("ellipsoid", tumour, (22.0, 22.0, 22.0)),),
                         interpreted_type="GTV"),
        PhantomStructure("PTV", (Solid("ellipsoid", tumour, (32.0, 32.0, 32.0)),),
                         interpreted_type="PTV"),
        PhantomStructure("Heart", (Solid("ellipsoid", (20.0, -40.0, -60.0), (45.0, 40.0, 50.0)),)),
        PhantomStructure("Esophagus", (Solid("cylinder", (5.0, 35.0, 0.0), (8.0, 8.0, 112.0)),)),
        PhantomStructure("SpinalCord", (Solid("cylinder", (0.0, 75.0, 0.0), (6.0, 6.0, 116.0)),)),
    ]
    if with_trachea:
        structures.append(PhantomStructure(
            "Trachea", (Solid("cylinder", (0.0, 10.0, 90.0), (9.0, 9.0, 25.0)),)))

    def dose(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = x - tumour[0], y - tumour[1], z - tumour[2]
        core = _erfc_edge(np.sqrt(dx * dx + dy * dy + dz * dz), 32.0, 6.0)
        beam_ap = np.exp(-(dx * dx + dz * dz) / (2 * 38.0**2))
        beam_lat = np.exp(-(dy * dy + dz * dz) / (2 * 38.0**2))
        rest = 0.33 * beam_ap + 0.22 * beam_lat + 0.05
        inside = body.contains(x, y, z)
        return np.where(inside, 60.0 * (core + (1.0 - core) * rest) * 1.02, 0.0)

    return _grid_around(
        "thorax", tuple(structures), dose, body, grid_mm, slice_mm, n_fractions=30,
        prescription_gy=60.0, n_vertices=n_vertices, dose_scale_gy=dose_scale_gy,
        decimals=decimals)


def liver_phantom(*, grid_mm: float = 2.5, slice_mm: float = 2.5, n_vertices: int = 64,
                  dose_scale_gy: float = 0.001, decimals: int = 2) -> Phantom:
    """An upper abdomen planned for HCC SBRT: 45 Gy in 3 fractions to a PTV around a GTV in the
    right liver lobe. Structures: External, Liver, GTV (r 18 mm), PTV (r 23 mm), Stomach,
    Duodenum, SpinalCord."""
    tumour = (-70.0, -10.0, 10.0)
    body = Solid("cylinder", (0.0, 0.0, 0.0), (160.0, 120.0, 110.0))
    structures = (
        PhantomStructure("External", (body,), interpreted_type="EXTERNAL"),
        PhantomStructure("Liver", (Solid("ellipsoid", (-60.0, 0.0, 0.0), (85.0, 70.0, 65.0)),)),
        PhantomStructure("GTV", (Solid("ellipsoid", tumour, (18.0, 18.0, 18.0)),),
                         interpreted_type="GTV"),
        PhantomStructure("PTV", (Solid("ellipsoid", tumour, (23.0, 23.0, 23.0)),),
                         interpreted_type="PTV"),
        PhantomStructure("Stomach", (Solid("ellipsoid", (65.0, -30.0, 30.0), (40.0, 30.0, 35.0)),)),
        PhantomStructure("Duodenum", (Solid("cylinder", (25.0, 15.0, -25.0), (12.0, 12.0, 20.0)),)),
        PhantomStructure("SpinalCord", (Solid("cylinder", (0.0, 85.0, 0.0), (6.0, 6.0, 105.0)),)),
    )

    def dose(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = x - tumour[0], y - tumour[1], z - tumour[2]
        core = _erfc_edge(np.sqrt(dx * dx + dy * dy + dz * dz), 23.0, 4.0)
        beams = np.exp(-(dx * dx + dz * dz) / (2 * 26.0**2)) + np.exp(
            -(dy * dy + dz * dz) / (2 * 26.0**2))
        rest = 0.22 * beams + 0.03
        inside = body.contains(x, y, z)
        return np.where(inside, 45.0 * (core + (1.0 - core) * rest) * 1.03, 0.0)

    return _grid_around(
        "liver", structures, dose, body, grid_mm, slice_mm, n_fractions=3,
        prescription_gy=45.0, n_vertices=n_vertices, dose_scale_gy=dose_scale_gy,
        decimals=decimals)


def _grid_around(name: str, structures: tuple[PhantomStructure, ...], dose: DoseFunction,
                 body: Solid, grid_mm: float, slice_mm: float, **kwargs: object) -> Phantom:
    """A phantom whose dose grid covers ``body`` with a one-voxel margin."""
    lo = [c - r - grid_mm for c, r in zip(body.centre_mm, body.radii_mm, strict=True)]
    n = [math.ceil((2 * r + 2 * grid_mm) / grid_mm) + 1 for r in body.radii_mm]
    return Phantom(
        name=f"{name}-{grid_mm:g}-{slice_mm:g}", structures=structures, dose=dose,
        grid_origin_mm=tuple(lo), grid_shape=(n[2], n[1], n[0]),  # type: ignore[arg-type]
        grid_mm=grid_mm, slice_mm=slice_mm, slice_origin_mm=0.0, **kwargs,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------
# DICOM datasets


def _uid(phantom: Phantom, what: str) -> str:
    return generate_uid(entropy_srcs=[phantom.name, what])


def _dataset(phantom: Phantom, sop_class: str, kind: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = _uid(phantom, kind)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = kind
    ds.Manufacturer = "artds analytic phantom"
    ds.PatientName = PHANTOM_PATIENT_NAME
    ds.PatientID = PHANTOM_PATIENT_ID
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = _uid(phantom, "study")
    ds.SeriesInstanceUID = _uid(phantom, f"series-{kind}")
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.SeriesNumber = {"RTDOSE": 3, "RTSTRUCT": 2, "RTPLAN": 1}[kind]
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = _uid(phantom, "frame")
    ds.PositionReferenceIndicator = ""
    return ds


def rtdose_dataset(phantom: Phantom) -> Dataset:
    """The phantom's plan dose as an RTDOSE (DoseSummationType PLAN, DoseUnits GY)."""
    ds = _dataset(phantom, RT_DOSE, "RTDOSE")
    *_, dose = phantom.dose_grid()
    stored = np.round(dose / phantom.dose_scale_gy)
    bits = 16 if stored.max() <= np.iinfo(np.uint16).max else 32
    k, r, c = phantom.grid_shape
    ds.ImagePositionPatient = [f"{v:.4f}" for v in phantom.grid_origin_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [phantom.grid_mm, phantom.grid_mm]
    ds.SliceThickness = phantom.grid_mm
    ds.GridFrameOffsetVector = [round(i * phantom.grid_mm, 4) for i in range(k)]
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    ds.NumberOfFrames = k
    ds.Rows = r
    ds.Columns = c
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = f"{phantom.dose_scale_gy:g}"
    ref = Dataset()
    ref.ReferencedSOPClassUID = RT_PLAN
    ref.ReferencedSOPInstanceUID = _uid(phantom, "RTPLAN")
    ds.ReferencedRTPlanSequence = DicomSequence([ref])
    ds.PixelData = stored.astype(np.uint16 if bits == 16 else np.uint32).tobytes()
    return ds


def rtstruct_dataset(phantom: Phantom) -> Dataset:
    """The phantom's structures as an RTSTRUCT of closed planar contours."""
    ds = _dataset(phantom, RT_STRUCT, "RTSTRUCT")
    del ds.FrameOfReferenceUID  # an RTSTRUCT references frames through its sequence
    del ds.PositionReferenceIndicator
    ds.StructureSetLabel = "Phantom"
    ds.StructureSetDate = "20260101"
    ds.StructureSetTime = "120000"
    frame = Dataset()
    frame.FrameOfReferenceUID = _uid(phantom, "frame")
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    rois, contours, observations = [], [], []
    for number, structure in enumerate(phantom.structures, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame.FrameOfReferenceUID
        roi.ROIName = structure.name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [(37 * number) % 256, (91 * number) % 256, (151 * number) % 256]
        seq = []
        for z, polys in phantom.contours(structure):
            for poly in polys:
                contour = Dataset()
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(poly)
                xyz = np.column_stack([poly, np.full(len(poly), z)]).ravel()
                contour.ContourData = [f"{v:.{phantom.decimals}f}" for v in xyz]
                seq.append(contour)
        item.ContourSequence = DicomSequence(seq)
        contours.append(item)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = structure.interpreted_type
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    return ds


def rtplan_dataset(phantom: Phantom) -> Dataset:
    """An RTPLAN with one fraction group (the phantom's fractions) and the prescription."""
    ds = _dataset(phantom, RT_PLAN, "RTPLAN")
    ds.RTPlanLabel = "Phantom"
    ds.RTPlanGeometry = "PATIENT"
    ref = Dataset()
    ref.DoseReferenceNumber = 1
    ref.DoseReferenceStructureType = "VOLUME"
    ref.DoseReferenceDescription = "PTV"
    ref.DoseReferenceType = "TARGET"
    ref.TargetPrescriptionDose = f"{phantom.prescription_gy:g}"
    ds.DoseReferenceSequence = DicomSequence([ref])
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = phantom.n_fractions
    group.NumberOfBeams = 0
    group.NumberOfBrachyApplicationSetups = 0
    ds.FractionGroupSequence = DicomSequence([group])
    return ds


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def phantom_bytes(phantom: Phantom) -> dict[str, bytes]:
    """The phantom's files as bytes: ``{"RTDOSE": …, "RTSTRUCT": …, "RTPLAN": …}``."""
    return {"RTDOSE": _encode(rtdose_dataset(phantom)),
            "RTSTRUCT": _encode(rtstruct_dataset(phantom)),
            "RTPLAN": _encode(rtplan_dataset(phantom))}


def write_phantom(phantom: Phantom, folder: Path, prefix: str = "") -> dict[str, Path]:
    """Write ``RD.dcm``, ``RS.dcm`` and ``RP.dcm`` (with ``prefix``) into ``folder``; their paths
    by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    stems = {"RTDOSE": "RD", "RTSTRUCT": "RS", "RTPLAN": "RP"}
    paths = {}
    for kind, data in phantom_bytes(phantom).items():
        path = folder / f"{prefix}{stems[kind]}.dcm"
        path.write_bytes(data)
        paths[kind] = path
    return paths


# --------------------------------------------------------------------------------------------
# DVH exports and the example files


def eclipse_text(dvhs: Mapping[str, DVH], *, prescription_gy: float, n_points: int = 150) -> str:
    """Cumulative DVHs written as Varian Eclipse's tabular text export (tab-separated columns
    Dose [Gy], Relative dose [%], Ratio of Total Structure Volume [%]; each structure's volume
    in its section header), with the phantom's patient name and id in the file header as a real
    export has them."""
    lines = [
        f"Patient Name         : {PHANTOM_PATIENT_NAME}",
        f"Patient ID           : {PHANTOM_PATIENT_ID}",
        "Comment              : DVHs for a plan (artds analytic phantom)",
        "Date                 : Thursday, January 01, 2026 12:00:00",
        "Exported by          : artds",
        "Type                 : Cumulative Dose Volume Histogram",
        "Description          : The cumulative DVH displays the percentage (relative) or volume "
        "(absolute) of structures that receive a dose equal to or greater than a given dose.",
        "",
        "Plan: Phantom",
        "Course: C1",
        "Plan Status: Treatment Approved",
        f"Prescribed dose [Gy]: {prescription_gy:.3f}",
        "% for dose (%): 100.0",
        "",
    ]
    for name, dvh in dvhs.items():
        dose, volume = dvh.cumulative(n_points)
        lines += [
            f"Structure: {name}",
            "Approval Status: Approved",
            "Plan: Phantom",
            "Course: C1",
            f"Volume [cm³]: {dvh.total_volume_cc:.1f}",
            "Dose Cover.[%]: 100.0",
            "Sampling Cover.[%]: 100.0",
            f"Min Dose [Gy]: {dvh.min_gy:.3f}",
            f"Max Dose [Gy]: {dvh.point_max_gy:.3f}",
            f"Mean Dose [Gy]: {dvh.mean_gy:.3f}",
            "",
            "Dose [Gy]\tRelative dose [%]\tRatio of Total Structure Volume [%]",
        ]
        lines += [f"{d:.3f}\t{100.0 * d / prescription_gy:.2f}\t{v:.4f}"
                  for d, v in zip(dose, volume, strict=True)]
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def write_examples(folder: Path) -> dict[str, Path]:
    """The example plan files of ``assets/examples/plan/`` (``python -m engine.dvh.phantom``):

    * ``nsclc_phantom/RD.dcm``, ``RS.dcm``, ``RP.dcm`` — the thorax phantom on a 5-mm dose grid
      with 5-mm slices and no ``Lungs`` structure (so the lung role is built as
      Lung_L+Lung_R-GTV), 60 Gy in 30 fractions;
    * ``nsclc_phantom_dvh.csv`` — its DVHs in the documented CSV (volume_cc), the built lung
      structure named ``Lungs-GTV`` as a planning system would export it (30 fractions);
    * ``hcc_phantom_eclipse.txt`` — the liver phantom's DVHs as an Eclipse text export, with
      ``Liver-GTV`` (45 Gy in 3 fractions).
    """
    from engine.dvh.files import dvh_csv
    from engine.dvh.plan import import_plan

    thorax = thorax_phantom(grid_mm=5.0, slice_mm=5.0, with_lungs=False, with_trachea=False,
                            n_vertices=32, dose_scale_gy=0.002, decimals=1)
    paths = write_phantom(thorax, folder / "nsclc_phantom")
    result = import_plan("nsclc", rtdose=paths["RTDOSE"], rtstruct=paths["RTSTRUCT"],
                         rtplan=paths["RTPLAN"])
    renamed = {("Lungs-GTV" if s.roles == ("lung",) else s.name): s.dvh
               for s in result.structures}
    csv_path = folder / "nsclc_phantom_dvh.csv"
    csv_path.write_text(dvh_csv(renamed, n_points=100), encoding="utf-8")
    liver = liver_phantom(grid_mm=3.0, slice_mm=3.0)
    data = phantom_bytes(liver)
    hcc = import_plan("hcc", rtdose=("RD.dcm", data["RTDOSE"]),
                      rtstruct=("RS.dcm", data["RTSTRUCT"]), rtplan=("RP.dcm", data["RTPLAN"]))
    eclipse = {s.name: s.dvh for s in hcc.structures}
    txt_path = folder / "hcc_phantom_eclipse.txt"
    txt_path.write_bytes(eclipse_text(eclipse, prescription_gy=liver.prescription_gy)
                         .encode("utf-8"))
    return {**{f"nsclc_{k.lower()}": v for k, v in paths.items()}, "nsclc_csv": csv_path,
            "hcc_eclipse": txt_path}


if __name__ == "__main__":
    from engine.settings import ROOT_DIR

    for path in write_examples(ROOT_DIR / "assets" / "examples" / "plan").values():
        print(f"wrote {path} ({path.stat().st_size} bytes)")
