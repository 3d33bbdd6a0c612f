"""The example plan files in assets/examples/plan are what `python -m engine.dvh.phantom` writes."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from engine.dvh.phantom import write_examples
from engine.settings import ROOT_DIR

EXAMPLES = ROOT_DIR / "assets" / "examples" / "plan"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return write_examples(tmp_path_factory.mktemp("plan"))


@pytest.mark.parametrize("key", ["nsclc_csv", "hcc_eclipse"])
def test_dvh_examples_are_regenerated_exactly(fresh, key):
    path = fresh[key]
    assert (EXAMPLES / path.name).read_bytes() == path.read_bytes(), (
        "rewrite the examples with `python -m engine.dvh.phantom`")


def test_dicom_examples_hold_the_phantom(fresh):
    for kind in ("rtdose", "rtstruct", "rtplan"):
        new = pydicom.dcmread(fresh[f"nsclc_{kind}"])
        old = pydicom.dcmread(EXAMPLES / "nsclc_phantom" / fresh[f"nsclc_{kind}"].name)
        assert new.SOPInstanceUID == old.SOPInstanceUID
        if kind == "rtdose":
            assert np.array_equal(new.pixel_array, old.pixel_array)
            assert new.DoseGridScaling == old.DoseGridScaling
        if kind == "rtstruct":
            assert [r.ROIName for r in new.StructureSetROISequence] == [
                r.ROIName for r in old.StructureSetROISequence]
            assert [list(c.ContourData) for i in new.ROIContourSequence
                    for c in i.ContourSequence] == [list(c.ContourData) for i in
                                                    old.ROIContourSequence
                                                    for c in i.ContourSequence]
        if kind == "rtplan":
            assert new.FractionGroupSequence[0].NumberOfFractionsPlanned == 30


def test_the_dicom_example_is_small_enough_to_commit():
    total = sum(p.stat().st_size for p in (EXAMPLES / "nsclc_phantom").iterdir())
    assert total < 600 * 1024
