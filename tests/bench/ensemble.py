"""Benchmarks of served-size outcome ensembles: 20 bagged members per outcome, served config.

The shipped models may be absent or retraining, so the ensembles are built here: member k of each
outcome has the served network shape (hidden 64, 2 graph convolutions), weight seed k and an
encoder fitted on its own bootstrap resample of the default virtual trial (``epochs=0``: the
networks keep their seeded initialisation — the cost does not depend on the weights). The ODM is
5 randomly initialised Q-networks of the served shape, declared trained against the ensemble.

``python -m tests.bench.ensemble [--looped] [--patients N] [--threads T] [PROTOCOL ...]`` runs
these alone (``--threads``: torch intra-op threads, default 1 as the app serves with
:func:`app.runtime.single_inference_thread`);
``--looped`` also times the per-member loop (what ``predict_raw`` did before batching): one
recommendation, one case's raw curves and 1,000 cases' curves. Measures, never asserts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import torch

from engine.arclids.architectures import ARCH_KEYS
from engine.arclids.calibration import OutcomeCalibration
from engine.arclids.cohort import generate_cohort
from engine.arclids.ensemble import EnsembleOutcomeModel
from engine.arclids.gan import TabularTransform
from engine.arclids.odm import ODMConfig, ODMEnsemble, state_columns
from engine.arclids.recommend import recommend
from engine.arclids.rtoe import OutcomeEstimator, RTOEConfig
from engine.arclids.serving import N_RTOE_MEMBERS
from engine.arclids.splits import BOOTSTRAP_SEED, bootstrap_rows
from engine.core.protocols import PROTOCOL_NAMES, Protocol, load_protocol
from engine.core.rl import QNetwork
from tests.bench.timing import emit, percentile, timed_cpu

N_ODM_MEMBERS = 5
"""Members of a served ODM ensemble."""
CALIBRATION = OutcomeCalibration(intercept=-0.4, slope=0.9, interval_level=0.8,
                                 conformal_quantile=1.3)
"""A non-identity recalibration and interval, so predict_curves does all its served work."""
LOOPED_CASES = 1000
"""Cases of the looped many-case timing (the Single-GNN loop takes minutes for 10,000 patients;
the cost is linear in the cases)."""


def served_size_ensemble(protocol: Protocol, arch: str, train: pd.DataFrame,
                         n_members: int = N_RTOE_MEMBERS) -> EnsembleOutcomeModel:
    """``n_members`` bagged members per outcome of the served shape, untrained networks."""
    members: dict[str, list[OutcomeEstimator]] = {}
    for outcome in protocol.outcome_names:
        members[outcome] = []
        for k in range(n_members):
            rows = train.iloc[bootstrap_rows(train, BOOTSTRAP_SEED + k)]
            config = RTOEConfig(arch=arch, hidden=64, n_layers=2, epochs=0, seed=k)
            est = OutcomeEstimator(protocol, outcome, config)
            members[outcome].append(est.fit(rows, rows[outcome].to_numpy()))
    return EnsembleOutcomeModel(
        protocol, members[protocol.target.outcome], members[protocol.oar.outcome],
        name=f"bench-{arch}", label=f"bench {arch}", version=f"bench-{arch}",
        tcp_calibration=CALIBRATION, ntcp_calibration=CALIBRATION,
    )


def served_size_odm(protocol: Protocol, model: EnsembleOutcomeModel, train: pd.DataFrame
                    ) -> ODMEnsemble:
    """5 randomly initialised Q-networks of the served ODM shape, trained "against" ``model``."""
    cfg = ODMConfig()
    encoder = TabularTransform(protocol).fit(train[list(state_columns(protocol))])
    nets = []
    for k in range(N_ODM_MEMBERS):
        torch.manual_seed(k)
        nets.append(QNetwork(len(state_columns(protocol)), len(protocol.dose_grid()),
                             cfg.hidden, cfg.n_layers))
    return ODMEnsemble(protocol, encoder, nets, version="bench-odm",
                       rtoe_version=model.version, arch=str(model.name))


def looped_raw(model: EnsembleOutcomeModel, cases: pd.DataFrame, doses_gy: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The members' raw TCP and NTCP [M, P, D] one member at a time (the unbatched reference)."""
    return (np.stack([m.predict_proba(cases, doses_gy) for m in model.tcp_members]),
            np.stack([m.predict_proba(cases, doses_gy) for m in model.ntcp_members]))


def bench_ensembles(names: tuple[str, ...] = PROTOCOL_NAMES, n_patients: int = 10_000,
                    looped: bool = False, threads: int = 1) -> None:
    """Print p50/p95 of one full recommendation and the time of ``n_patients`` × dose grid
    (HCC: the cases, one per tumour site, of that many patients) with ``threads`` torch
    intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _bench_ensembles(names, n_patients, looped)
    finally:
        torch.set_num_threads(before)


def _bench_ensembles(names: tuple[str, ...], n_patients: int, looped: bool) -> None:
    for name in names:
        protocol = load_protocol(name)
        train = generate_cohort(name).complete_table
        one = generate_cohort(name, seed=1, n_patients=1).table.iloc[:1]
        many = generate_cohort(name, seed=2, n_patients=n_patients).table
        doses = protocol.dose_grid()
        for arch in ARCH_KEYS:
            model = served_size_ensemble(protocol, arch, train)
            odm = None if arch == "logistic" else served_size_odm(protocol, model, train)
            extra = {"members_per_outcome": len(model.tcp_members), "doses": len(doses),
                     "odm_members": 0 if odm is None else len(odm.members),
                     "torch_threads": torch.get_num_threads()}
            _emit_cpu(f"{name}.{arch}.recommend_one_case_served_size",
                      partial(recommend, one, protocol, model, odm), 200, **extra)
            _emit_cpu(f"{name}.{arch}.predict_raw_one_case_served_size",
                      partial(model.predict_raw, one, doses), 200, **extra)
            _emit_cpu(f"{name}.{arch}.curves_{n_patients}_patients_served_size",
                      partial(model.predict_curves, many, protocol), 3, cases=len(many), **extra)
            if looped:
                # The same ensemble with the per-member loop in place of the batched pass.
                model.predict_raw = partial(looped_raw, model)  # type: ignore[method-assign]
                _emit_cpu(f"{name}.{arch}.recommend_one_case_served_size_looped",
                          partial(recommend, one, protocol, model, odm), 50, **extra)
                _emit_cpu(f"{name}.{arch}.predict_raw_one_case_served_size_looped",
                          partial(model.predict_raw, one, doses), 50, **extra)
                few = many.iloc[:LOOPED_CASES]
                _emit_cpu(f"{name}.{arch}.curves_{len(few)}_cases_served_size_looped",
                          partial(model.predict_curves, few, protocol), 1, cases=len(few),
                          **extra)


def _emit_cpu(name: str, fn: Callable[[], object], repeats: int, **extra: object) -> None:
    """Emit wall-clock p50/p95 with the CPU time's beside them (the machine may be loaded)."""
    wall, cpu = timed_cpu(fn, repeats)
    emit(name, wall, cpu_median_ms=round(percentile(cpu, 0.5), 3),
         cpu_p95_ms=round(percentile(cpu, 0.95), 3), **extra)


def main(argv: list[str]) -> None:
    looped = "--looped" in argv
    n_patients = 10_000
    if "--patients" in argv:
        n_patients = int(argv[argv.index("--patients") + 1])
    threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 1
    names = tuple(a for a in argv if a in PROTOCOL_NAMES) or PROTOCOL_NAMES
    print(json.dumps({"bench": "ensemble.setup", "protocols": names, "patients": n_patients}))
    bench_ensembles(names, n_patients, looped, threads)


if __name__ == "__main__":
    main(sys.argv[1:])
