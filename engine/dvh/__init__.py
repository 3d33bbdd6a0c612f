"""Plans as input: DICOM-RT (RTDOSE, RTSTRUCT, RTPLAN) or a DVH table in; the protocol's
dosimetric features, every structure's DVH metrics and the protocol's dose constraints out.

Modules, in the order data flows through them:

- :mod:`~engine.dvh.sources`: file inputs (paths or uploads), size limits, :class:`PlanError`;
- :mod:`~engine.dvh.dicom`: RTDOSE, RTSTRUCT and RTPLAN read and checked with pydicom 3;
- :mod:`~engine.dvh.files`: DVH tables (the documented CSV, the Eclipse text export);
- :mod:`~engine.dvh.rasterise`: contours on the dose grid (matplotlib ``Path``) → DVH;
- :mod:`~engine.dvh.dvh`: the DVH and its metrics (D/V, mean, gEUD, EQD2, cumulative curve);
- :mod:`~engine.dvh.roles`: which structure plays each protocol role (TG-263 names, overrides);
- :mod:`~engine.dvh.features`: the dosimetric features as the protocol defines them;
- :mod:`~engine.dvh.constraints`: the protocol's constraints, pass/fail with the margin;
- :mod:`~engine.dvh.plan`: :func:`import_plan` (= :func:`read_plan` + :func:`evaluate_plan`);
- :mod:`~engine.dvh.phantom`: analytic phantoms written as DICOM-RT (tests, examples, benchmark);
- :mod:`~engine.dvh.accuracy`: the rasterisation's accuracy on the phantoms (docs/plan-import.md).

The protocol side (roles, feature definitions, constraints, the DVH metric language) is data in
``engine/core/protocols/*.toml``, read by :mod:`engine.core.protocols.plan`. The DVH figure is
:mod:`engine.figures.dvh`.
"""

from engine.dvh.constraints import ConstraintResult
from engine.dvh.dicom import DicomSet, sort_dicom
from engine.dvh.dvh import DVH
from engine.dvh.features import FeatureValue
from engine.dvh.plan import (
    ImportConfig,
    PlanData,
    PlanImport,
    StructureSummary,
    evaluate_plan,
    import_plan,
    read_plan,
)
from engine.dvh.rasterise import RasterConfig
from engine.dvh.roles import RoleAssignment
from engine.dvh.sources import FileInput, ImportLimits, PlanError

__all__ = [
    "DVH",
    "ConstraintResult",
    "DicomSet",
    "FeatureValue",
    "FileInput",
    "ImportConfig",
    "ImportLimits",
    "PlanData",
    "PlanError",
    "PlanImport",
    "RasterConfig",
    "RoleAssignment",
    "StructureSummary",
    "evaluate_plan",
    "import_plan",
    "read_plan",
    "sort_dicom",
]
