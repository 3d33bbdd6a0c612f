"""F1 thresholds, AUROC over pairs held out together, and the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.drug.metrics import f1_threshold, held_out_metrics, paired_bootstrap, summary


def test_f1_threshold_by_hand():
    y = np.array([1, 1, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    # F1 = 2 tp / (tp + fp + 3): >= 0.9: 1/2; >= 0.8: 4/5; >= 0.7: 2/3; >= 0.6: 6/7; >= 0.1: 3/4
    assert f1_threshold(y, score) == 0.6
    assert f1_threshold(np.array([0, 0]), np.array([0.2, 0.3])) == -math.inf
    # ties: the two 0.5 scores are called together
    assert f1_threshold(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.2])) == 0.2


@st.composite
def held_out_sets(draw):
    sets = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 12))
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        score = np.array(draw(st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), min_size=n,
                                       max_size=n)))
        sets.append((y, score, score >= 0.5))
    return sets


@given(held_out_sets())
def test_auroc_counts_the_pairs_held_out_together(sets):
    concordant, pairs = 0.0, 0
    for y, score, _ in sets:
        for s_res in score[y == 1]:
            for s_sens in score[y == 0]:
                concordant += 1.0 if s_res > s_sens else 0.5 if s_res == s_sens else 0.0
                pairs += 1
    got = held_out_metrics(sets)
    if pairs == 0:
        assert got["auroc"] is None
    else:
        assert got["auroc"] == pytest.approx(concordant / pairs)
    y = np.concatenate([s[0] for s in sets])
    assert got["n_lines"] == len(y) and got["n_resistant"] == int(y.sum())


def test_a_constant_score_per_set_ranks_at_chance_whatever_the_sets_rates():
    sets = [(np.array([1, 1, 1, 0]), np.full(4, 0.9), np.ones(4, bool)),
            (np.array([1, 0, 0, 0]), np.full(4, 0.2), np.zeros(4, bool))]
    got = held_out_metrics(sets)
    assert got["auroc"] == 0.5
    # f1: set 1 called resistant (tp 3, fp 1), set 2 not (fn 1): 6 / (6 + 1 + 1)
    assert got["f1"] == pytest.approx(0.75)
    assert got["f1_all_resistant"] == pytest.approx(2 * 0.5 / 1.5)


def test_paired_bootstrap_and_summary():
    rng = np.random.default_rng(0)
    diff = np.array([0.02, 0.05, -0.01, 0.04, np.nan])
    got = paired_bootstrap(diff, 2000, 0.95, rng)
    assert got["n_drugs"] == 4 and got["n_better"] == 3
    assert got["mean"] == pytest.approx(0.025)
    assert -0.01 <= got["ci_low"] < got["mean"] < got["ci_high"] <= 0.05
    assert paired_bootstrap(np.array([0.1]), 100, 0.95, rng)["ci_low"] is None
    assert summary([1.0, None, 3.0]) == {"mean": 2.0, "sd": pytest.approx(math.sqrt(2)), "n": 2}
