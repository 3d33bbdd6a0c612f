from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.arclids.architectures import ARCH_KEYS
from engine.arclids.cohort import generate_cohort
from engine.arclids.ensemble import EnsembleOutcomeModel
from engine.arclids.evaluation import auroc, log_loss
from engine.arclids.geud import adapted_geud_norm, received_geud_norm
from engine.arclids.graphs import feature_graph
from engine.arclids.nets import GraphNet
from engine.arclids.rtoe import (
    T_MAX,
    T_MIN,
    OutcomeEstimator,
    RTOEConfig,
    oversample_indices,
)
from engine.core.protocols import PROTOCOL_NAMES, load_protocol
from engine.core.radiobiology import logistic_outcome

NSCLC = load_protocol("nsclc")
TINY = {"hidden": 8, "n_layers": 2, "epochs": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_cohort("nsclc", seed=21, n_patients=48).table


@pytest.fixture(scope="module")
def other() -> pd.DataFrame:
    return generate_cohort("nsclc", seed=22, n_patients=30).table


def _fit(cases: pd.DataFrame, arch: str, outcome: str = "local_control", **kw) -> OutcomeEstimator:
    config = RTOEConfig(arch=arch, **{**TINY, **kw})
    return OutcomeEstimator(NSCLC, outcome, config).fit(cases, cases[outcome].to_numpy())


# ----------------------------------------------------------------------------- config


def test_config_round_trip_and_validation():
    cfg = RTOEConfig(arch="glogd", hidden=32, lr_t=5e-4, seed=3)
    assert RTOEConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.t_lr == 5e-4
    assert RTOEConfig(arch="single", lr=0.01).t_lr == 0.01
    with pytest.raises(ValueError, match="arch"):
        RTOEConfig(arch="mlp")
    with pytest.raises(ValueError, match="batch_size"):
        RTOEConfig(arch="single", batch_size=0)
    with pytest.raises(ValueError, match="unknown"):
        RTOEConfig.from_dict({"arch": "single", "width": 3})


# ----------------------------------------------------------------------------- pieces


def test_oversampling_balances_classes():
    rng = np.random.default_rng(0)
    y = np.array([1] * 17 + [0] * 5)
    idx = oversample_indices(y, rng)
    assert np.bincount(y[idx]).tolist() == [17, 17]
    assert set(idx[: len(y)]) == set(range(len(y)))  # every original row kept
    np.testing.assert_array_equal(oversample_indices(np.ones(4, int), rng), np.arange(4))
    balanced = np.array([0, 1, 0, 1])
    np.testing.assert_array_equal(oversample_indices(balanced, rng), np.arange(4))


def test_graph_net_shapes_and_reset():
    graph = feature_graph(NSCLC)
    torch.manual_seed(0)
    net = GraphNet(graph.adjacency, hidden=8, n_layers=3)
    x = torch.randn(5, graph.n_nodes)
    assert net(x).shape == (5,)
    assert net(x[:1]).shape == (1,)
    before = [p.detach().clone() for p in net.parameters()]
    net.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    # The adjacency is protocol data, not a learned weight.
    assert "adjacency" not in net.state_dict()


def test_received_geud_norm_matches_grid_version(small):
    g = received_geud_norm(small, NSCLC, NSCLC.target)
    doses = small["dose_adapt_gy"].to_numpy()
    full = adapted_geud_norm(small, NSCLC, NSCLC.target, doses)
    np.testing.assert_allclose(g, np.diag(full))


# ----------------------------------------------------------------------------- estimators


@pytest.mark.parametrize("arch", ARCH_KEYS)
@pytest.mark.parametrize("outcome", NSCLC.outcome_names)
def test_predict_shapes(small, other, arch, outcome):
    est = _fit(small, arch, outcome)
    assert est.structure.outcome == outcome
    p = est.predict_proba(other)
    assert p.shape == (len(other),)
    doses = NSCLC.dose_grid()
    curves = est.predict_proba(other, doses)
    assert curves.shape == (len(other), len(doses))
    assert np.all((curves > 0) & (curves < 1))
    assert len(est.loss_) == (TINY["epochs"] if arch != "logistic" else 0)


def test_hcc_fits_even_with_one_outcome_class():
    cohort = generate_cohort("hcc", seed=4, n_patients=25)
    protocol = cohort.protocol
    for outcome in protocol.outcome_names:
        y = cohort.table[outcome].to_numpy()
        for arch in ARCH_KEYS:
            cfg = RTOEConfig(arch=arch, **TINY)
            est = OutcomeEstimator(protocol, outcome, cfg).fit(cohort.table, np.ones_like(y))
            assert est.predict_proba(cohort.table, protocol.dose_grid()).shape == (
                len(cohort.table),
                len(protocol.dose_grid()),
            )


def test_unknown_outcome_and_bad_labels(small):
    with pytest.raises(ValueError, match="no outcome"):
        OutcomeEstimator(NSCLC, "survival", RTOEConfig(arch="single")).fit(
            small, small["rp2"].to_numpy()
        )
    est = OutcomeEstimator(NSCLC, "rp2", RTOEConfig(arch="single", **TINY))
    with pytest.raises(ValueError, match="0/1"):
        est.fit(small, np.full(len(small), 2))
    with pytest.raises(ValueError, match="shape"):
        est.fit(small, np.zeros(3))
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict_proba(small)


@settings(max_examples=25)
@given(
    protocol_name=st.sampled_from(PROTOCOL_NAMES),
    structure=st.sampled_from(["target", "oar"]),
    cohort_seed=st.integers(0, 100_000),
    net_seed=st.integers(0, 100_000),
    weight_scale=st.one_of(st.none(), st.floats(0.05, 3.0)),
)
def test_glogd_probability_never_falls_with_dose(
    protocol_name, structure, cohort_seed, net_seed, weight_scale
):
    cohort = generate_cohort(protocol_name, seed=cohort_seed, n_patients=12)
    protocol = cohort.protocol
    outcome = getattr(protocol, structure).outcome
    config = RTOEConfig(arch="glogd", hidden=8, epochs=0, seed=net_seed)
    est = OutcomeEstimator(protocol, outcome, config).fit(
        cohort.table, cohort.table[outcome].to_numpy()
    )
    if weight_scale is not None:  # far from the default initialisation
        gen = torch.Generator().manual_seed(net_seed)
        with torch.no_grad():
            for net in (est.mu_net_, est.t_net_):
                for param in net.parameters():
                    param.copy_(torch.randn(param.shape, generator=gen) * weight_scale)
    fresh = generate_cohort(protocol_name, seed=cohort_seed + 1, n_patients=12).table
    curves = est.predict_proba(fresh, protocol.dose_grid())  # [P, D]
    assert np.all(np.isfinite(curves))
    assert np.all(np.diff(curves, axis=1) >= 0.0)


def test_glogd_curve_is_the_logistic_of_mu_and_t(small, other):
    est = _fit(small, "glogd")
    mu, t = est.predict_mu_t(other)
    assert mu.shape == t.shape == (len(other),)
    assert np.all((mu > 0) & (mu < 1))
    assert np.all((t >= T_MIN) & (t <= T_MAX))
    doses = NSCLC.dose_grid()
    g = adapted_geud_norm(other, NSCLC, NSCLC.target, doses)
    np.testing.assert_allclose(
        est.predict_proba(other, doses), logistic_outcome(g, mu[:, None], t[:, None]), rtol=1e-6
    )
    with pytest.raises(ValueError, match="glogd"):
        _fit(small, "single").predict_mu_t(other)


def test_single_gnn_sees_the_dose(small, other):
    # Not monotone by construction; it only has to run and respond to the dose node.
    est = _fit(small, "single", epochs=3)
    curves = est.predict_proba(other, NSCLC.dose_grid())
    assert np.all(np.isfinite(curves))
    assert np.ptp(curves, axis=1).max() > 0.0


@pytest.mark.parametrize("arch", ["single", "glogd"])
def test_same_seed_same_predictions_other_seed_differs(small, other, arch):
    doses = NSCLC.dose_grid()
    a = _fit(small, arch, seed=5).predict_proba(other, doses)
    b = _fit(small, arch, seed=5).predict_proba(other, doses)
    c = _fit(small, arch, seed=6).predict_proba(other, doses)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_logistic_is_deterministic(small, other):
    a = _fit(small, "logistic").predict_proba(other)
    b = _fit(small, "logistic").predict_proba(other)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("arch", ARCH_KEYS)
def test_state_dict_round_trip(small, other, arch):
    est = _fit(small, arch, "rp2")
    buffer = io.BytesIO()
    torch.save(est.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    again = OutcomeEstimator.from_state_dict(NSCLC, "rp2", est.config, state)
    doses = NSCLC.dose_grid()
    np.testing.assert_array_equal(
        again.predict_proba(other, doses), est.predict_proba(other, doses)
    )
    np.testing.assert_array_equal(again.predict_proba(other), est.predict_proba(other))
    broken = {k: v for k, v in state.items() if k != "graph.adjacency"}
    with pytest.raises(ValueError, match="feature graph"):
        OutcomeEstimator.from_state_dict(NSCLC, "rp2", est.config, broken)


@pytest.mark.parametrize("arch", ARCH_KEYS)
def test_eval_history_recorded_at_requested_epochs(small, other, arch):
    y_eval = other["rp2"].to_numpy()
    assert 0 < y_eval.sum() < len(y_eval)
    cfg = RTOEConfig(arch=arch, **{**TINY, "epochs": 4})
    est = OutcomeEstimator(NSCLC, "rp2", cfg).fit(
        small, small["rp2"].to_numpy(), eval_set=(other, y_eval), eval_epochs=[4, 0, 2]
    )
    assert sorted(est.history_) == [0, 2, 4]
    assert all(0.0 <= v <= 1.0 for v in est.history_.values())
    assert est.history_[4] == pytest.approx(auroc(est.predict_proba(other), y_eval))
    assert sorted(est.eval_log_loss_) == [0, 2, 4]
    assert est.eval_log_loss_[4] == pytest.approx(log_loss(est.predict_proba(other), y_eval))
    one_class = OutcomeEstimator(NSCLC, "rp2", cfg).fit(
        small, small["rp2"].to_numpy(), eval_set=(other, np.zeros(len(other))), eval_epochs=[1]
    )
    assert math.isnan(one_class.history_[1])
    assert math.isfinite(one_class.eval_log_loss_[1])  # log-loss is defined on one class


def test_eval_epochs_are_validated(small):
    est = OutcomeEstimator(NSCLC, "rp2", RTOEConfig(arch="single", **TINY))
    with pytest.raises(ValueError, match="eval_set"):
        est.fit(small, small["rp2"].to_numpy(), eval_epochs=[1])
    with pytest.raises(ValueError, match="eval_epochs"):
        est.fit(
            small,
            small["rp2"].to_numpy(),
            eval_set=(small, small["rp2"].to_numpy()),
            eval_epochs=[TINY["epochs"] + 1],
        )


def test_ensemble_curves_shapes(small, other):
    tcp = [_fit(small, "glogd", "local_control", seed=s) for s in range(3)]
    ntcp = [_fit(small, "single", "rp2", seed=s) for s in range(3)]
    model = EnsembleOutcomeModel(NSCLC, tcp, ntcp, name="test", label="Test", version="0")
    curves = model.predict_curves(other, NSCLC)
    shape = (3, len(other), len(NSCLC.dose_grid()))
    assert curves.tcp.shape == curves.ntcp.shape == shape
    np.testing.assert_allclose(curves.tcp[1], tcp[1].predict_proba(other, NSCLC.dose_grid()),
                               rtol=0.0, atol=1e-6)  # batched members: float32 rounding
    mean_tcp, mean_ntcp = curves.mean()
    sd_tcp, sd_ntcp = curves.sd()
    assert mean_tcp.shape == mean_ntcp.shape == sd_tcp.shape == sd_ntcp.shape == shape[1:]
    assert np.all(sd_tcp > 0)  # members differ by seed
    with pytest.raises(ValueError, match="same positive number"):
        EnsembleOutcomeModel(NSCLC, tcp, ntcp[:2], name="x", label="x", version="0")
    with pytest.raises(ValueError, match="cannot serve"):
        EnsembleOutcomeModel(NSCLC, ntcp, tcp, name="x", label="x", version="0")
    with pytest.raises(ValueError, match="cannot serve"):
        model.predict_curves(other, load_protocol("hcc"))


# ----------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def virtual_trial():
    train = generate_cohort("nsclc", seed=101, n_patients=400)
    test = generate_cohort("nsclc", seed=202, n_patients=1000)
    return train, test


@pytest.mark.parametrize("arch", ARCH_KEYS)
def test_learns_local_control_on_a_virtual_trial(virtual_trial, arch):
    train, test = virtual_trial
    outcome = "local_control"
    cfg = RTOEConfig(arch=arch, hidden=16, epochs=20, lr=3e-3, seed=0)
    est = OutcomeEstimator(NSCLC, outcome, cfg).fit(train.table, train.table[outcome].to_numpy())
    y = test.table[outcome].to_numpy()
    score = auroc(est.predict_proba(test.table), y)
    ceiling = auroc(test.truth[f"p_{outcome}"].to_numpy(), y)
    print(f"{arch}: AUROC {score:.3f} vs Bayes ceiling {ceiling:.3f} on the same draws")
    assert score > 0.62
    assert score <= ceiling + 0.05  # nothing beats the truth by more than sampling noise
