"""TCP, NTCP and reward against the dose (engine/figures/dose_response.py), and the
physician's proposal as both figures mark it."""

from __future__ import annotations

import numpy as np
import pytest

from engine.figures.dose_response import dose_response_figure
from engine.figures.outcome_space import (
    outcome_space_figure,
)
from engine.figures.style import CASE_COLOURS
from tests.unit.figures.helpers import CurveModel, with_proposal


def test_dose_response_traces_and_recommended_lines(nsclc, recs):
    fig = dose_response_figure(recs, nsclc)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(lines) == 3 * len(recs)  # TCP, NTCP and reward per case
    names = " ".join(t.name for t in lines)
    for rec in recs:
        for what in ("TCP", "NTCP", "reward"):
            assert f"{rec.label}: {what}" in names
    vlines = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
    for i, rec in enumerate(recs):
        mine = [s for s in vlines if s.line.color == CASE_COLOURS[i]]
        assert len(mine) == 2  # one per row
        assert all(s.x0 == pytest.approx(rec.recommended_dose_gy) for s in mine)
    assert "Gy/fx" in fig.layout.xaxis2.title.text
    tcp_trace = next(t for t in lines if t.name == f"{recs[0].label}: TCP")
    assert np.allclose(tcp_trace.x, recs[0].doses_gy)
    assert [t for t in fig.data if t.meta == "band"] == []  # no band for a single model
    assert "version test-1" in fig.layout.title.subtitle.text


def test_dose_response_bands_for_ensembles(nsclc, ensemble_recs):
    fig = dose_response_figure(ensemble_recs, nsclc)
    bands = [t for t in fig.data if t.meta == "band"]
    assert len(bands) == 2 * len(ensemble_recs)  # TCP and NTCP per case
    rec = ensemble_recs[0]
    n = len(rec.doses_gy)
    for what, lo, hi in (("TCP", rec.tcp_lo, rec.tcp_hi), ("NTCP", rec.ntcp_lo, rec.ntcp_hi)):
        band = next(b for b in bands if b.name == f"{rec.label}: {what} 80 % interval")
        assert band.fill == "toself" and "rgba" in band.fillcolor
        assert band.hoverinfo == "skip" and band.showlegend is False
        y = np.asarray(band.y, dtype=float)
        assert np.allclose(y[:n], hi) and np.allclose(y[n:][::-1], lo)
        line = next(t for t in fig.data if t.name == f"{rec.label}: {what}")
        assert band.legendgroup == line.legendgroup
        assert "80 % interval" in line.hovertemplate
    subtitle = fig.layout.title.subtitle.text
    assert "shaded: 80 % interval of TCP and NTCP" in subtitle
    assert "ensemble of 5 members" in subtitle
    assert "±1 sd" not in subtitle


def test_best_dose_interval_is_drawn_and_labelled_as_the_outcome_models(nsclc, ensemble_recs):
    wide = [r for r in ensemble_recs if r.dose_interval_gy[1] > r.dose_interval_gy[0]]
    assert wide, "the fixture's curves must move the best dose"
    os_fig = outcome_space_figure(ensemble_recs, nsclc)
    assert sum(t.meta == "dose-interval" for t in os_fig.data) == len(wide)
    assert ("thick band: best dose, 80 % interval (from the outcome models' uncertainty)"
            in os_fig.layout.title.subtitle.text)
    dr = dose_response_figure(ensemble_recs, nsclc)
    lines = [t for t in dr.data if t.meta == "dose-interval"]
    assert [tuple(t.x) for t in lines] == [tuple(r.dose_interval_gy) for r in wide]
    assert [t.y[0] for t in lines] == [r.recommended_reward for r in wide]  # at its reward
    assert all("from the outcome models' uncertainty" in t.hovertemplate for t in lines)
    assert ("thick line on the reward: best dose, 80 % interval (from the outcome models' "
            "uncertainty)") in dr.layout.title.subtitle.text


def test_proposal_is_marked_with_its_comparison(nsclc, cases, ensemble_recs):
    model = CurveModel(members=5, level=0.8)
    recs = with_proposal(ensemble_recs, nsclc, cases, model, [2.0, float("nan"), 3.5])
    assert recs[1].proposal is None
    os_fig = outcome_space_figure(recs, nsclc)
    marks = [t for t in os_fig.data if t.meta == "proposal"]
    assert len(marks) == 2
    for mark, rec in zip(marks, (recs[0], recs[2]), strict=True):
        prop = rec.proposal
        assert (mark.x[0], mark.y[0]) == pytest.approx((prop["tcp"], prop["ntcp"]))
        assert mark.name == f"proposal: {prop['dose_gy']:g} Gy/fx (advice: {prop['advice']})"
        for text in ("your proposal", "80 % interval", "P(recommendation better)",
                     f"{prop['p_recommended_better']:.2f}", "advice: "):
            assert text in mark.hovertemplate
    assert "□ your proposal" in os_fig.layout.title.subtitle.text
    dr = dose_response_figure(recs, nsclc)
    assert sum(t.meta == "proposal" for t in dr.data) == 2
    dotted = [s for s in dr.layout.shapes if s.type == "line" and s.line.dash == "dot"]
    assert sorted({s.x0 for s in dotted}) == [2.0, 3.5]
    assert "dotted: your proposal" in dr.layout.title.subtitle.text


def test_no_figure_calls_a_number_a_confidence(nsclc, cases, ensemble_recs):
    recs = with_proposal(ensemble_recs, nsclc, cases, CurveModel(members=5, level=0.8),
                          [2.0, 2.5, 3.0])
    for fig in (outcome_space_figure(recs, nsclc), dose_response_figure(recs, nsclc)):
        assert "confiden" not in fig.to_json().lower()
