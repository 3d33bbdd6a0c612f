"""The population histograms (engine/figures/population.py), the patient's values marked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.core.protocols import Protocol, load_protocol
from engine.figures.population import population_figure
from tests.unit.figures.helpers import make_cases, traces


@pytest.fixture(scope="module")
def population(nsclc: Protocol) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data = {}
    for feat in nsclc.features:
        if feat.integer:
            data[feat.name] = rng.integers(int(feat.min), int(feat.max) + 1, 80).astype(float)
        else:
            data[feat.name] = rng.uniform(feat.min, feat.min + 0.8 * (feat.max - feat.min), 80)
    return pd.DataFrame(data)


def test_population_one_histogram_per_feature_with_units(nsclc, population, cases):
    fig = population_figure(population, nsclc, cases)
    bars = traces(fig, "bar")
    assert len(bars) == len(nsclc.features)
    assert bars[0].name == "virtual trial population"
    titles = [a.text for a in fig.layout.annotations]
    for feat in nsclc.features:
        assert any(feat.label.split(" (")[0][:20] in t.replace("<br>", " ") for t in titles)
    assert any("(pg/mL)" in t for t in titles)
    assert all(sum(b.y) == len(population) for b in bars)


def test_population_marks_each_case_value(nsclc, population, cases):
    fig = population_figure(population, nsclc, cases)
    marks = [t for t in fig.data if t.type == "scatter"]
    continuous = [f for f in nsclc.features if not f.integer]
    assert len(marks) == len(cases) * len(nsclc.features)
    feat = continuous[0]
    first = [m for m in marks if feat.label in m.hovertemplate]
    assert [m.x[0] for m in first] == pytest.approx(cases[feat.name].tolist())
    assert {m.name for m in marks} == set(cases["patient_id"])
    assert sum(bool(m.showlegend) for m in marks) == len(cases)  # one legend entry per case


def test_population_skips_missing_values_and_uses_log_axis_for_skewed(nsclc, population):
    hcc = load_protocol("hcc")
    rng = np.random.default_rng(1)
    pop = pd.DataFrame({
        f.name: (rng.integers(int(f.min), int(f.max) + 1, 60).astype(float) if f.integer
                 else rng.uniform(f.min + 0.1, f.max / 2, 60))
        for f in hcc.features
    })
    pop["afp_pre_ng_ml"] = 10 ** rng.uniform(0, 4.5, 60)  # four decades
    case = make_cases(hcc, ["H-1"])
    case.loc[0, "hgf_pre_pg_ml"] = np.nan
    fig = population_figure(pop, hcc, case)
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == len(hcc.features) - 1
    assert all(m.name == "H-1 site 1" for m in marks)
    afp = next(i for i, f in enumerate(hcc.features) if f.name == "afp_pre_ng_ml")
    axis = fig.layout[f"xaxis{afp + 1}"]
    assert axis.title.text == "log scale"
    assert "10000" in list(axis.ticktext)


# --- decision maker (ODM) and synthetic patients (GAN) --------------------------------------
