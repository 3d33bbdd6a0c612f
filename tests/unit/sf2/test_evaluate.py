"""The evaluation protocol: same splits for all methods, support sets, and label leakage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.sf2 import evaluate as ev
from engine.sf2.baselines import MLPConfig
from engine.sf2.data import CellLinePanel, load_panel, subgroups
from engine.sf2.features import FeatureConfig
from engine.sf2.tasks import support_indices

TINY = ev.EvaluationConfig(settings=("lung",), n_repeats=2, n_iterations=5,
                           features=FeatureConfig(n_repeats=1), mlp=MLPConfig(epochs=10))


def test_stratified_folds_spread_every_subgroup():
    sg = subgroups(load_panel().setting("lung").lines, "lung").to_numpy()
    folds = ev.stratified_folds(sg, 5, np.random.default_rng(0))
    for g in set(sg):
        counts = np.bincount(folds[sg == g], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_support_sets_are_same_subgroup_training_lines_never_the_line_itself():
    sg = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    train = np.array([0, 1, 2, 3, 6, 7])
    test = np.array([4, 5, 8, 9, 0])
    sup = support_indices(test, train, sg, 3, np.random.default_rng(0))
    for t, row in zip(test, sup, strict=True):
        picked = row[row >= 0]
        assert t not in picked and set(picked) <= set(train)
        assert (sg[picked] == sg[t]).all()
    assert (sup[3] == -1).all()  # subgroup "c" has no training line
    assert len(sup[2][sup[2] >= 0]) == 2  # only two "b" lines in training


def test_tiny_evaluation_runs_and_reports_every_method():
    result = ev.evaluate(TINY)
    lung = result["settings"]["lung"]
    assert set(lung["methods"]) == set(ev.METHODS)
    for name, m in lung["methods"].items():
        assert m["n_lines"] == {"mean": 57.0, "sd": 0.0}  # every line scored in every repeat
        assert 0 <= m["mae"]["mean"] < 1
        assert m["uses_own_label"] == (ev.METHODS[name].protocol == "paper")
    assert lung["methods"]["train_mean"]["spearman"]["mean"] is None
    assert lung["methods"]["ols_top20_in_sample"]["mae"]["sd"] == 0.0
    assert len(lung["per_line"]) == 57 and len(lung["paper_genes"]) == 20
    assert result["rsi"]["n_lines"] == 9
    text = ev.text_table(result)
    assert "USES ITS OWN LABEL" in text and "reptile_served" in text


def test_honest_predictions_do_not_depend_on_the_scored_lines_labels(monkeypatch):
    """Change the measured SF2 of one fold's test lines: every honest method predicts them
    exactly as before, while the paper's protocol (which adapts on them) changes."""
    panel = load_panel().setting("lung")
    sg = subgroups(panel.lines, "lung").to_numpy()
    rng = np.random.default_rng(3)
    folds = ev.stratified_folds(sg, 5, rng)
    test, train = np.nonzero(folds == 0)[0], np.nonzero(folds != 0)[0]
    support = support_indices(test, train, sg, 5, rng)
    job = ev._FoldJob("lung", 0, 0, train, test, support, tuple(panel.genes[:20]), TINY, seed=1)
    before = ev._run_fold(job)["predictions"]

    lines = panel.lines.copy()
    lines.iloc[test, lines.columns.get_loc("sf2")] = 0.05
    changed = CellLinePanel(lines, panel.expression, panel.mutation, panel.copy_number,
                            panel.panel_expression, panel.version)
    monkeypatch.setattr(ev, "load_panel", lambda: changed)
    after = ev._run_fold(job)["predictions"]
    for name, info in ev.METHODS.items():
        if name == "ols_top20_in_sample":
            continue  # computed outside the folds
        if info.uses_own_label:
            assert not np.allclose(before[name], after[name]), name
        else:
            np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_config_round_trips_to_json():
    d = replace(TINY, seed=3).to_dict()
    assert d["settings"] == ["lung"] and d["mlp"]["layer_sizes"] == [20, 64, 32, 1]
    assert d["features"]["n_nonzero"] == 30


@pytest.mark.parametrize("bad", [np.array([0.5, 0.5, 0.5])])
def test_constant_predictions_have_no_spearman(bad):
    assert ev._spearman(bad, np.array([0.1, 0.2, 0.3])) is None
