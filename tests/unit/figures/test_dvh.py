"""The cumulative DVH figure of an imported plan (engine/figures/dvh.py)."""

from __future__ import annotations

import pytest

from engine.dvh import import_plan
from engine.figures.dvh import dvh_figure
from engine.figures.style import BLUISH_GREEN, VERMILLION
from tests.unit.dvh.helpers import edit, named, sphere_files


@pytest.fixture(scope="module")
def result():
    """The uniform sphere plan: every lung voxel at 60 Gy, so lung V20 ≤ 35 % fails."""
    return import_plan("nsclc", **named(sphere_files()))


def test_one_line_per_structure_role_structures_first_and_thick(result):
    fig = dvh_figure(result)
    lines = [t for t in fig.data if t.meta != "constraint"]
    assert [t.meta for t in lines] == ["GTV", "Lungs-GTV", "Lungs"]
    assert lines[0].name == "GTV (tumour)" and lines[0].line.width == 3
    assert lines[2].line.width == 1.5 and lines[2].line.dash != "solid"
    assert lines[0].y[0] == 100.0 and lines[0].y[-1] == 0.0
    assert fig.layout.xaxis.title.text == "Dose (Gy)"
    assert fig.layout.yaxis.title.text == "Volume (%)"
    assert "30 fractions" in fig.layout.title.subtitle.text


def test_dvh_point_constraints_are_marked_pass_or_fail(result):
    fig = dvh_figure(result)
    (marker,) = [t for t in fig.data if t.meta == "constraint"]  # V20 only: mean is no point
    assert (marker.x[0], marker.y[0]) == (20.0, 35.0)
    assert marker.marker.color == VERMILLION and "not met" in marker.hovertemplate
    assert "Marks et al. 2010" in marker.hovertemplate
    ok = import_plan("nsclc", **named(sphere_files(dose_gy=10.0)))
    (passed,) = [t for t in dvh_figure(ok).data if t.meta == "constraint"]
    assert passed.marker.color == BLUISH_GREEN and "— met" in passed.hovertemplate


def test_structure_names_from_files_are_escaped():
    def rename(ds):
        ds.StructureSetROISequence[1].ROIName = "<b>Lungs</b>"

    files = dict(sphere_files())
    files["RTSTRUCT"] = edit(files["RTSTRUCT"], rename)
    result = import_plan("nsclc", **named(files), structures={"lung": "<b>Lungs</b>-GTV"})
    fig = dvh_figure(result, structures=["<b>Lungs</b>"])
    assert fig.data[0].name == "&lt;b&gt;Lungs&lt;/b&gt;"
    assert "<b>" not in fig.data[0].hovertemplate


def test_structures_can_be_chosen(result):
    fig = dvh_figure(result, structures=["Lungs"])
    assert [t.meta for t in fig.data if t.meta != "constraint"] == ["Lungs"]
