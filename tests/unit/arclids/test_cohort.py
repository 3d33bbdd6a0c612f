from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine import settings
from engine.arclids.cohort import (
    REFERENCE_MODEL_LABEL,
    ReferenceModel,
    _trial_part_of_protocol,
    bayes_ceiling,
    generate_cohort,
    load_trial_spec,
    population_table,
)
from engine.arclids.geud import adapted_geud_norm
from engine.core.protocols import PROTOCOL_NAMES, load_protocol
from engine.core.radiobiology import logistic_outcome


def test_nsclc_trial_shape_and_outcome_counts():
    c = generate_cohort("nsclc")
    assert len(c.table) == 117 and c.table["patient_id"].is_unique
    complete = c.complete_table
    assert len(complete) == 67
    assert not complete[list(c.protocol.feature_names)].isna().any().any()
    incomplete = c.table[~c.table["complete"]]
    assert incomplete[list(c.protocol.feature_names)].isna().any(axis=1).all()
    # the trial: local control in 47 of 67, grade ≥ 2 pneumonitis in 16 of 67
    assert abs(complete["local_control"].sum() - 47) <= 3
    assert abs(complete["rp2"].sum() - 16) <= 3


def test_hcc_trial_shape_and_outcome_counts():
    c = generate_cohort("hcc")
    t = c.table
    assert t["patient_id"].nunique() == 71 and len(t) == 99
    assert not t.duplicated(["patient_id", "site_id"]).any()
    patients = t.drop_duplicates("patient_id")
    assert (t["local_control"] == 0).sum() <= 3
    assert abs(patients["liver_toxicity"].sum() - 7) <= 3
    # patient-level values are shared by the site rows, site-level ones are not
    multi = t[t.groupby("patient_id")["site_id"].transform("size") > 1]
    per_patient = multi.groupby("patient_id")
    assert (per_patient["albi_pre"].nunique() == 1).all()
    assert (per_patient["liver_toxicity"].nunique() == 1).all()
    assert (per_patient["n_sites"].first() == per_patient.size()).all()
    assert (per_patient["tumour_volume_cc"].nunique() > 1).any()


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_deterministic_by_seed(name):
    a, b, c = generate_cohort(name, 5), generate_cohort(name, 5), generate_cohort(name, 6)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.table.equals(c.table)


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_values_within_protocol_ranges_and_grid(name):
    c = generate_cohort(name, seed=3, n_patients=2000)
    p = c.protocol
    for feat in p.features:
        col = c.table[feat.name]
        assert col.between(feat.min, feat.max).all(), feat.name
        if feat.integer:
            assert (col == col.round()).all()
    grid = p.dose_grid()
    assert np.isin(np.round(c.table["dose_adapt_gy"], 6), np.round(grid, 6)).all()
    assert c.table["dose_eval_gy"].between(p.dose_eval_min_gy, p.dose_eval_max_gy).all()


def test_genotypes_near_hardy_weinberg():
    c = generate_cohort("nsclc", seed=4, n_patients=20000)
    spec = load_trial_spec("nsclc")
    for node in spec.nodes:
        if node.dist != "genotype":
            continue
        q = node.params["maf"]
        freq = c.table[node.name].value_counts(normalize=True).reindex([0, 1, 2]).to_numpy()
        np.testing.assert_allclose(freq, [(1 - q) ** 2, 2 * q * (1 - q), q**2], atol=0.015)


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_outcome_rates_match_targets_in_a_large_trial(name):
    c = generate_cohort(name, seed=7, n_patients=20000)
    spec = load_trial_spec(name)
    for outcome in spec.outcomes:
        assert c.truth[f"p_{outcome.name}"].mean() == pytest.approx(outcome.target_rate, abs=0.02)
        assert c.table[outcome.name].mean() == pytest.approx(outcome.target_rate, abs=0.025)


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_bayes_ceiling_is_clinically_plausible(name):
    c = generate_cohort(name, seed=1, n_patients=20000)
    for outcome in c.protocol.outcome_names:
        value = bayes_ceiling(c.table, c.truth, outcome)
        assert 0.70 <= value <= 0.90, (outcome, value)


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_reference_model_reproduces_the_truth(name):
    c = generate_cohort(name, seed=11, n_patients=300)
    p = c.protocol
    curves = ReferenceModel(name).predict_curves(c.table, p)
    assert curves.tcp.shape == (1, len(c.table), len(p.dose_grid()))
    assert np.all(np.diff(curves.tcp[0], axis=1) > 0) and np.all(
        np.diff(curves.ntcp[0], axis=1) > 0
    )
    idx = np.searchsorted(np.round(p.dose_grid(), 6), np.round(c.table["dose_adapt_gy"], 6))
    rows = np.arange(len(c.table))
    np.testing.assert_allclose(
        curves.tcp[0, rows, idx], c.truth[f"p_{p.target.outcome}"], rtol=1e-9
    )
    np.testing.assert_allclose(curves.ntcp[0, rows, idx], c.truth[f"p_{p.oar.outcome}"], rtol=1e-9)
    assert ReferenceModel(name).label == REFERENCE_MODEL_LABEL


def test_truth_follows_the_dag_a_non_parent_changes_nothing():
    c = generate_cohort("nsclc", seed=2, n_patients=50)
    model, p = ReferenceModel("nsclc"), c.protocol
    base = model.predict_curves(c.table, p)
    moved = c.table.copy()
    moved["hgf_pre_pg_ml"] *= 3  # HGF is not a parent of either outcome
    np.testing.assert_allclose(model.predict_curves(moved, p).tcp, base.tcp)
    moved = c.table.copy()
    moved["mtv_rd"] += 0.3  # poorer PET response → lower TCP at every dose
    assert np.all(model.predict_curves(moved, p).tcp < base.tcp)


def test_clinician_escalates_for_poor_response():
    t = generate_cohort("nsclc", seed=8, n_patients=5000).table
    poor, good = t["mtv_rd"] > 0.0, t["mtv_rd"] < -0.6
    assert t.loc[poor, "dose_adapt_gy"].mean() > t.loc[good, "dose_adapt_gy"].mean() + 0.5


def test_received_geud_uses_the_transition():
    c = generate_cohort("nsclc", seed=9, n_patients=20)
    p = c.protocol
    g = adapted_geud_norm(c.table, p, p.target, p.dose_grid())
    assert g.shape == (20, 26) and np.all(np.diff(g, axis=1) > 0)
    mu = c.truth["mu_local_control"].to_numpy()
    t = c.truth["t_local_control"].to_numpy()
    idx = np.searchsorted(np.round(p.dose_grid(), 6), np.round(c.table["dose_adapt_gy"], 6))
    expected = logistic_outcome(g[np.arange(20), idx], mu, t)
    np.testing.assert_allclose(c.truth["p_local_control"], expected)


def test_population_table_is_complete_cases():
    pop = population_table("nsclc")
    assert len(pop) == 67 and not pop[list(load_protocol("nsclc").feature_names)].isna().any().any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown protocol"):
        generate_cohort("breast")
    with pytest.raises(ValueError, match="n_complete"):
        generate_cohort("nsclc", n_patients=10, n_complete=11)


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_shipped_models_were_trained_on_the_current_trial(name):
    """Every shipped model of the protocol names the trial the code generates today: otherwise
    the app and CLI warn that its metrics may not hold (a protocol edit that the trial never
    reads, such as the plan-import tables, once did this to every model)."""
    manifest = json.loads((settings.MODELS_DIR / "manifest.json").read_text(encoding="utf-8"))
    recorded = {v for v in _values_of(manifest, "cohort_version") if v.startswith(f"trial-{name}-")}
    assert recorded == {load_trial_spec(name).version}


def _values_of(tree: object, key: str) -> list[str]:
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == key and isinstance(v, str)] + [
            x for v in tree.values() for x in _values_of(v, key)]
    if isinstance(tree, list):
        return [x for v in tree for x in _values_of(v, key)]
    return []


def test_the_plan_tables_are_not_part_of_the_trial():
    body = 'name = "p"\n\n[features.a]\nmin = 0\n'
    plan = ('\n# Plan import: how features come from a plan\n[plan]\nv_doses_gy = [5.0]\n\n'
            '[[plan.roles]]\nname = "tumour"\n')
    assert _trial_part_of_protocol(body) == body
    assert _trial_part_of_protocol(body + plan) == body
    assert _trial_part_of_protocol(body + plan.replace("5.0", "10.0")) == body
    assert _trial_part_of_protocol(body.replace("0", "1") + plan) != body
    with pytest.raises(ValueError, match=r"\[plan\] tables must come last"):
        _trial_part_of_protocol(body + plan + "\n[features.b]\nmin = 1\n")
