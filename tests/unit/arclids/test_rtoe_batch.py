"""Batched ensemble members (EnsembleOutcomeModel.predict_raw, engine.arclids.nets stacks) equal
the per-member loop of OutcomeEstimator.predict_proba."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import engine.arclids.ensemble as ensemble
from engine.arclids.architectures import ARCH_KEYS
from engine.arclids.calibration import OutcomeCalibration
from engine.arclids.cohort import generate_cohort
from engine.arclids.ensemble import EnsembleOutcomeModel
from engine.arclids.nets import GraphNet, LogisticNet, StackedGraphNets, StackedLogisticNets
from engine.arclids.rtoe import OutcomeEstimator, RTOEConfig
from engine.arclids.splits import BOOTSTRAP_SEED, bootstrap_rows
from engine.core.protocols import load_protocol

CLOSE = {"rtol": 0.0, "atol": 1e-6}
"""Batched and looped members differ only by float32 rounding (sums in another order)."""
N_MEMBERS = 4


def _bagged(protocol_name: str, arch: str, outcome: str, n: int = N_MEMBERS, **kw
            ) -> list[OutcomeEstimator]:
    """Members as served: weight seed k, fitted on bootstrap resample k (own encoder each)."""
    protocol = load_protocol(protocol_name)
    train = generate_cohort(protocol_name, seed=31, n_patients=40).complete_table
    config = {"hidden": 8, "n_layers": 2, "epochs": 2, "batch_size": 16, **kw}
    members = []
    for k in range(n):
        rows = train.iloc[bootstrap_rows(train, BOOTSTRAP_SEED + k)]
        est = OutcomeEstimator(protocol, outcome, RTOEConfig(arch=arch, seed=k, **config))
        members.append(est.fit(rows, rows[outcome].to_numpy()))
    return members


def _ensemble(protocol_name: str, arch: str, **kw) -> EnsembleOutcomeModel:
    protocol = load_protocol(protocol_name)
    return EnsembleOutcomeModel(
        protocol,
        _bagged(protocol_name, arch, protocol.target.outcome, **kw),
        _bagged(protocol_name, arch, protocol.oar.outcome, **kw),
        name="t", label="t", version="t",
        tcp_calibration=OutcomeCalibration(intercept=-0.3, slope=0.8, interval_level=0.8,
                                           conformal_quantile=1.2),
        ntcp_calibration=OutcomeCalibration(intercept=0.4, slope=1.1),
    )


def _looped(members: list[OutcomeEstimator], cases: pd.DataFrame,
            doses: np.ndarray | None) -> np.ndarray:
    return np.stack([m.predict_proba(cases, doses) for m in members])


@pytest.fixture(scope="module")
def fresh() -> dict[str, pd.DataFrame]:
    return {name: generate_cohort(name, seed=32, n_patients=25).complete_table
            for name in ("nsclc", "hcc")}


@pytest.mark.parametrize("protocol_name", ["nsclc", "hcc"])
@pytest.mark.parametrize("arch", ARCH_KEYS)
def test_batched_members_equal_the_per_member_loop(fresh, protocol_name, arch):
    model = _ensemble(protocol_name, arch)
    cases = fresh[protocol_name]
    # The members' encoders differ (bootstrap resamples): a stack ignoring that would fail.
    means = np.stack([m.encoder_.mean_ for m in model.tcp_members])
    assert np.ptp(means, axis=0).max() > 0.01
    doses = model.protocol.dose_grid()
    tcp, ntcp = model.predict_raw(cases, doses)
    assert tcp.shape == ntcp.shape == (N_MEMBERS, len(cases), len(doses))
    np.testing.assert_allclose(tcp, _looped(model.tcp_members, cases, doses), **CLOSE)
    np.testing.assert_allclose(ntcp, _looped(model.ntcp_members, cases, doses), **CLOSE)
    # At each case's received dose.
    tcp_rx, ntcp_rx = model.predict_raw(cases)
    assert tcp_rx.shape == (N_MEMBERS, len(cases))
    np.testing.assert_allclose(tcp_rx, _looped(model.tcp_members, cases, None), **CLOSE)
    np.testing.assert_allclose(ntcp_rx, _looped(model.ntcp_members, cases, None), **CLOSE)
    # The calibration is applied to the batched raw outputs as to the looped ones.
    curves = model.predict_curves(cases, model.protocol)
    np.testing.assert_allclose(
        curves.tcp, model.tcp_calibration.apply(_looped(model.tcp_members, cases, doses)),
        **CLOSE)
    lo, hi = model.tcp_calibration.interval(
        model.tcp_calibration.apply(_looped(model.tcp_members, cases, doses)))
    np.testing.assert_allclose(curves.tcp_lo, lo, **CLOSE)
    np.testing.assert_allclose(curves.tcp_hi, hi, **CLOSE)


@pytest.mark.parametrize("arch", ARCH_KEYS)
def test_batched_members_split_into_passes_equal_one_pass(fresh, monkeypatch, arch):
    model = _ensemble("hcc", arch)
    cases = fresh["hcc"]
    doses = model.protocol.dose_grid()
    whole = model.predict_raw(cases, doses)
    monkeypatch.setattr(ensemble, "_STACKED_CHUNK", 1)  # one case per pass
    model._stacks.clear()
    parts = model.predict_raw(cases, doses)
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_allclose(a, b, **CLOSE)
    assert model.predict_raw(cases.iloc[:0], doses)[0].shape == (N_MEMBERS, 0, len(doses))


@pytest.mark.parametrize("protocol_name", ["nsclc", "hcc"])
def test_batched_glogd_never_falls_with_dose(fresh, protocol_name):
    model = _ensemble(protocol_name, "glogd")
    cases = fresh[protocol_name]
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # far from the initialisation, before the ensemble first stacks
        for member in model.tcp_members + model.ntcp_members:
            for net in (member.mu_net_, member.t_net_):
                for param in net.parameters():
                    param.copy_(torch.randn(param.shape, generator=gen))
    raw = model.predict_raw(cases, model.protocol.dose_grid())
    curves = model.predict_curves(cases, model.protocol)
    for values in (*raw, curves.tcp, curves.ntcp):
        assert np.all(np.isfinite(values))
        assert np.all(np.diff(values, axis=-1) >= 0.0)


def test_replaced_member_is_restacked(fresh):
    model = _ensemble("nsclc", "single")
    cases = fresh["nsclc"]
    doses = model.protocol.dose_grid()
    before = model.predict_raw(cases, doses)[0]
    spare = _bagged("nsclc", "single", "local_control", n=N_MEMBERS + 1)[-1]
    model.tcp_members[2] = spare
    after = model.predict_raw(cases, doses)[0]
    np.testing.assert_allclose(after[2], spare.predict_proba(cases, doses), **CLOSE)
    np.testing.assert_allclose(after[[0, 1, 3]], before[[0, 1, 3]], **CLOSE)
    assert np.abs(after[2] - before[2]).max() > 1e-4
    # A refit replaces a member's networks and encoder in place of the object: also seen.
    rows = generate_cohort("nsclc", seed=33, n_patients=30).complete_table
    model.tcp_members[0].fit(rows, rows["local_control"].to_numpy())
    refit = model.predict_raw(cases, doses)[0]
    np.testing.assert_allclose(refit[0], model.tcp_members[0].predict_proba(cases, doses),
                               **CLOSE)


def test_members_of_different_shapes_fall_back_to_the_loop(fresh):
    protocol = load_protocol("nsclc")
    tcp = (_bagged("nsclc", "single", "local_control", n=2)
           + _bagged("nsclc", "single", "local_control", n=1, hidden=4))
    ntcp = _bagged("nsclc", "glogd", "rp2", n=3)
    model = EnsembleOutcomeModel(protocol, tcp, ntcp, name="t", label="t", version="t")
    cases = fresh["nsclc"]
    doses = protocol.dose_grid()
    raw_tcp, raw_ntcp = model.predict_raw(cases, doses)
    np.testing.assert_array_equal(raw_tcp, _looped(tcp, cases, doses))
    np.testing.assert_allclose(raw_ntcp, _looped(ntcp, cases, doses), **CLOSE)


# ----------------------------------------------------------------------------- stacked nets


def _random_graph_nets(n_nets: int = 3, hidden: int = 6, n_layers: int = 3) -> list[GraphNet]:
    """Nets on a 9-node graph (chain 0–1–2–3 with 4 on hub 1, pair 5–6, isolated 7 and 8),
    weights far from their initialisation, the last net's first-layer unit 2 flat in the node
    value (w = 0)."""
    adjacency = torch.zeros(9, 9)
    for a, b in [(0, 1), (1, 2), (2, 3), (1, 4), (5, 6)]:
        adjacency[a, b] = adjacency[b, a] = 1.0
    gen = torch.Generator().manual_seed(3)
    nets = [GraphNet(adjacency, hidden, n_layers) for _ in range(n_nets)]
    with torch.no_grad():
        for net in nets:
            for param in net.parameters():
                param.copy_(torch.randn(param.shape, generator=gen))
        nets[-1].input.weight[2, 0] = 0.0
    return nets


def test_stacked_graph_nets_equal_each_forward():
    nets = _random_graph_nets()
    stack = StackedGraphNets(nets)
    x = torch.randn(3, 7, 9, generator=torch.Generator().manual_seed(4)) * 2
    x[2, 0, 2] = stack.kinks[2 * 9 + 2, 3]  # a value exactly at a first-layer kink
    expected = torch.stack([net(x[k]) for k, net in enumerate(nets)])  # [M, B]
    torch.testing.assert_close(stack(x), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("node", [0, 1, 3, 5, 8])  # chain end, hub, leaf, pair, isolated
def test_node_sweep_equals_forward_with_the_node_set(node):
    nets = _random_graph_nets()
    stack = StackedGraphNets(nets)
    gen = torch.Generator().manual_seed(node)
    x = torch.randn(3, 5, 9, generator=gen)
    values = torch.randn(3, 5, 4, generator=gen) * 3  # [M, P, V]
    values[0, 0, 0] = stack.kinks[node, 2]
    expected = []
    for k, net in enumerate(nets):
        inputs = x[k].unsqueeze(1).expand(5, 4, 9).clone()  # [P, V, N]
        inputs[..., node] = values[k]
        expected.append(net(inputs.reshape(-1, 9)).reshape(5, 4))
    torch.testing.assert_close(stack.node_sweep(x, node, values), torch.stack(expected),
                               rtol=0, atol=2e-5)
    reach = [s.tolist() for s in stack.reach(node)]
    expected_reach = {
        0: [[0], [0, 1], [0, 1, 2, 4], [0, 1, 2, 3, 4]],
        1: [[1], [0, 1, 2, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]],
        3: [[3], [2, 3], [1, 2, 3], [0, 1, 2, 3, 4]],
        5: [[5], [5, 6], [5, 6], [5, 6]],
        8: [[8], [8], [8], [8]],
    }
    assert reach == expected_reach[node]


def test_stacked_logistic_nets_equal_each_forward():
    gen = torch.Generator().manual_seed(6)
    nets = [LogisticNet(9) for _ in range(3)]
    with torch.no_grad():
        for net in nets:
            for param in net.parameters():
                param.copy_(torch.randn(param.shape, generator=gen))
    stack = StackedLogisticNets(nets)
    x = torch.randn(3, 5, 9, generator=gen)
    values = torch.randn(3, 5, 4, generator=gen)
    torch.testing.assert_close(stack(x), torch.stack([n(x[k]) for k, n in enumerate(nets)]))
    expected = []
    for k, net in enumerate(nets):
        inputs = x[k].unsqueeze(1).expand(5, 4, 9).clone()
        inputs[..., 4] = values[k]
        expected.append(net(inputs))
    torch.testing.assert_close(stack.node_sweep(x, 4, values), torch.stack(expected))


def test_stacking_refuses_mixed_networks():
    nets = _random_graph_nets(n_nets=1)
    with pytest.raises(ValueError, match="width and depth"):
        StackedGraphNets([*nets, _random_graph_nets(n_nets=1, hidden=4)[0]])
    with pytest.raises(ValueError, match="at least one"):
        StackedGraphNets([])
