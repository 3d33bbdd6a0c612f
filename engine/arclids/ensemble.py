"""The served outcome ensembles: members of :mod:`engine.arclids.rtoe` evaluated together,
recalibrated, with their stated interval (an ``engine.arclids.outcomes.OutcomeModel``).

:class:`EnsembleOutcomeModel` serves TCP and NTCP curves of M members per outcome: all members
of an outcome run in one batched pass (:class:`_StackedMembers`: stacked weights, per-member
encoder statistics, the Single-GNN recomputing only what the dose node reaches), their raw
probabilities go through the outcome's :class:`~engine.arclids.calibration.OutcomeCalibration`
(:func:`calibrated_proba`), and the curves carry the calibrated interval and the map of
``p_recommended_better``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from engine.arclids.calibration import IDENTITY, AdviceCalibration, OutcomeCalibration
from engine.arclids.geud import adapted_geud_norm, received_geud_norm
from engine.arclids.nets import StackedGraphNets, StackedLogisticNets, stack_nets
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.rtoe import OutcomeEstimator, t_from_logit
from engine.core.protocols import Protocol
from engine.core.radiobiology import logistic_outcome

__all__ = ["EnsembleOutcomeModel", "calibrated_proba", "member_calibrated_proba"]

_STACKED_CHUNK = 1 << 14
"""Node states per batched ensemble pass, summed over members, cases, doses and nodes: 4 MB per
float32 tensor of these states at H = 64, small enough to stay in cache (measured faster than
4× larger passes for 10,000 patients)."""


def calibrated_proba(
    calibration: OutcomeCalibration,
    raw: Callable[[np.ndarray | None], np.ndarray],
    doses_gy: np.ndarray | None = None,
) -> np.ndarray:
    """Recalibrated member probabilities, [M, P, D] over ``doses_gy`` or [M, P] at each case's
    received dose (``doses_gy`` None).

    Args:
        calibration: the outcome's recalibration.
        raw: the members' raw probabilities for a dose array (or None: the received doses),
            shaped [M, P, D] (or [M, P]).
        doses_gy: candidate doses, Gy, [D], or None.
    """
    p_raw = raw(doses_gy)
    ref_dose = calibration.reference_dose_gy
    if ref_dose is None:
        return calibration.apply(p_raw)
    on_grid = [] if doses_gy is None else np.flatnonzero(np.isclose(doses_gy, ref_dose))
    if len(on_grid):  # the curves already hold the reference dose: no second pass
        j = int(on_grid[0])
        return calibration.apply(p_raw, p_raw[..., j : j + 1])
    ref = raw(np.array([ref_dose]))  # [M, P, 1]
    return calibration.apply(p_raw, ref if doses_gy is not None else ref[..., 0])


def member_calibrated_proba(
    members: Sequence[OutcomeEstimator],
    calibration: OutcomeCalibration,
    cases: pd.DataFrame,
    doses_gy: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`calibrated_proba` of a list of members (one pass each), [M, P(, D)]."""
    return calibrated_proba(
        calibration, lambda d: np.stack([m.predict_proba(cases, d) for m in members]), doses_gy)


class EnsembleOutcomeModel:
    """Ensemble of fitted estimators serving TCP and NTCP curves (an
    ``engine.arclids.outcomes.OutcomeModel``).

    Args:
        protocol: the protocol every member was trained for.
        tcp_members: estimators of ``protocol.target.outcome``; M ≥ 1.
        ntcp_members: estimators of ``protocol.oar.outcome``; also M.
        name: short identifier.
        label: what users see.
        version: version string recorded with every recommendation.
        warnings: one-line cautions shown wherever the model is named (e.g. trained on an older
            virtual trial than the current one).
        tcp_calibration: recalibration and interval of the TCP members
            (:mod:`engine.arclids.calibration`); the identity (raw members, min–max) by default.
        ntcp_calibration: the same for the NTCP members.
        advice_calibration: the map of ``p_recommended_better`` against the truth
            (:class:`~engine.arclids.calibration.AdviceCalibration`); None: the raw share.
    """

    def __init__(
        self,
        protocol: Protocol,
        tcp_members: list[OutcomeEstimator],
        ntcp_members: list[OutcomeEstimator],
        *,
        name: str,
        label: str,
        version: str,
        warnings: Sequence[str] = (),
        tcp_calibration: OutcomeCalibration = IDENTITY,
        ntcp_calibration: OutcomeCalibration = IDENTITY,
        advice_calibration: AdviceCalibration | None = None,
    ) -> None:
        if not tcp_members or len(tcp_members) != len(ntcp_members):
            raise ValueError(
                f"an ensemble needs the same positive number of TCP and NTCP members, got "
                f"{len(tcp_members)} and {len(ntcp_members)}"
            )
        for members, outcome in (
            (tcp_members, protocol.target.outcome),
            (ntcp_members, protocol.oar.outcome),
        ):
            for m in members:
                if m.protocol.name != protocol.name or m.outcome != outcome:
                    raise ValueError(
                        f"member for {m.protocol.name}/{m.outcome} cannot serve "
                        f"{protocol.name}/{outcome}"
                    )
        self.protocol = protocol
        self.tcp_members = list(tcp_members)
        self.ntcp_members = list(ntcp_members)
        self.name = name
        self.label = label
        self.version = version
        self.warnings = tuple(warnings)
        self.tcp_calibration = tcp_calibration
        self.ntcp_calibration = ntcp_calibration
        self.advice_calibration = advice_calibration
        self._stacks: dict[str, _StackedMembers | None] = {}

    @property
    def interval_level(self) -> float | None:
        """Level of the intervals served (None when either outcome has no calibrated one)."""
        levels = {self.tcp_calibration.interval_level, self.ntcp_calibration.interval_level}
        return levels.pop() if len(levels) == 1 else None

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        """Recalibrated TCP and NTCP over ``protocol.dose_grid()``, each [M, P, D], with their
        intervals [P, D] (:class:`~engine.arclids.calibration.OutcomeCalibration`)."""
        if protocol.name != self.protocol.name:
            raise ValueError(f"ensemble for {self.protocol.name} cannot serve {protocol.name}")
        doses = protocol.dose_grid()
        tcp, ntcp = self.predict_calibrated(cases, doses)
        tcp_lo, tcp_hi = self.tcp_calibration.interval(tcp)
        ntcp_lo, ntcp_hi = self.ntcp_calibration.interval(ntcp)
        return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp,
                             interval_level=self.interval_level, tcp_lo=tcp_lo, tcp_hi=tcp_hi,
                             ntcp_lo=ntcp_lo, ntcp_hi=ntcp_hi,
                             p_better_map=self.advice_calibration)

    def predict_calibrated(self, cases: pd.DataFrame, doses_gy: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
        """The members' recalibrated TCP and NTCP: [M, P, D] over ``doses_gy``, or [M, P] at
        each case's received dose when ``doses_gy`` is None."""
        return tuple(  # type: ignore[return-value]
            calibrated_proba(calibration, lambda d, key=key, members=members:
                             self._member_proba(key, members, cases, d), doses_gy)
            for key, members, calibration in (
                ("tcp", self.tcp_members, self.tcp_calibration),
                ("ntcp", self.ntcp_members, self.ntcp_calibration)))

    def predict_raw(self, cases: pd.DataFrame, doses_gy: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The members' raw (uncalibrated) TCP and NTCP: [M, P, D] over ``doses_gy``, or [M, P]
        at each case's received dose when ``doses_gy`` is None.

        All members of an outcome run in one batched pass (:class:`_StackedMembers`), equal to
        each member's :meth:`OutcomeEstimator.predict_proba` up to float32 rounding; members of
        differing shapes fall back to that per-member loop.
        """
        return (self._member_proba("tcp", self.tcp_members, cases, doses_gy),
                self._member_proba("ntcp", self.ntcp_members, cases, doses_gy))

    def _member_proba(self, key: str, members: list[OutcomeEstimator], cases: pd.DataFrame,
                      doses_gy: np.ndarray | None) -> np.ndarray:
        """Raw probabilities [M, P(, D)] of one outcome's members (batched when they stack)."""
        stack = self._stacks.get(key)
        if stack is None or not stack.serves(members):
            stack = _StackedMembers.build(members)
            self._stacks[key] = stack
        if stack is None:
            return np.stack([m.predict_proba(cases, doses_gy) for m in members])
        return stack.predict_proba(cases, doses_gy)


class _StackedMembers:
    """The fitted members of one outcome as one batched model: their encoder statistics and
    network weights stacked on a leading member axis [M, ...].

    A snapshot taken when the ensemble first predicts: served members are not retrained in place
    (a refit builds new networks and a new encoder, which :meth:`serves` notices and the
    ensemble restacks). Members differ by their weights and by their encoders' statistics (each
    was fitted on its own bootstrap resample); the feature transform before standardising, the
    outcome structure and the normalised gEUD at each dose are common and computed once.
    """

    def __init__(self, members: Sequence[OutcomeEstimator]) -> None:
        first = members[0]
        self.members = tuple(members)
        self._sources = _member_sources(self.members)  # kept alive: identities stay unique
        self.first = first
        self.arch = first.config.arch
        self.mean = np.stack([m.encoder_.mean_ for m in members])  # [M, N]
        self.sd = np.stack([m.encoder_.sd_ for m in members])  # [M, N]
        self.net: StackedGraphNets | StackedLogisticNets
        if self.arch == "glogd":
            # μ- and T-networks read the same node values: one stack of 2M networks.
            self.net = StackedGraphNets([m.mu_net_ for m in members]
                                        + [m.t_net_ for m in members])
        else:
            self.net = stack_nets([m.net_ for m in members])

    @classmethod
    def build(cls, members: Sequence[OutcomeEstimator]) -> _StackedMembers | None:
        """The stack of ``members``, or None when they cannot share one (architectures, widths
        or depths differ)."""
        for m in members:
            m._check_fitted()
        first = members[0].config
        same = all(
            (m.config.arch, m.config.hidden, m.config.n_layers)
            == (first.arch, first.hidden, first.n_layers)
            and m.encoder_.linear_features == members[0].encoder_.linear_features
            for m in members
        )
        return cls(members) if same else None

    def serves(self, members: Sequence[OutcomeEstimator]) -> bool:
        """True when ``members`` are still the stacked ones (same objects, networks, encoders)."""
        return (len(members) == len(self.members)
                and all(a is b for a, b in zip(members, self.members, strict=True))
                and all(a is b for a, b in zip(_member_sources(members), self._sources,
                                               strict=True)))

    def _node_values(self, cases: pd.DataFrame) -> torch.Tensor:
        """Every member's standardised node values [M, P, N] float32 (as its own encoder's)."""
        first = self.first
        if first._dose_as_node:
            # The dose node's column is overwritten per dose later; feed a finite placeholder.
            cases = cases.assign(**{first.structure.geud_feature: 0.0})
        # The log transform is common to the members; only mean and sd differ. Same float64
        # arithmetic as FeatureEncoder.transform, then float32.
        values = first.encoder_._transformed(cases)  # [P, N]
        x = (values[None] - self.mean[:, None]) / self.sd[:, None]  # [M, P, N]
        return torch.from_numpy(x.astype(np.float32))

    def predict_proba(self, cases: pd.DataFrame, doses_gy: np.ndarray | None) -> np.ndarray:
        """Raw probabilities [M, P, D] (or [M, P] at the received doses when None), float64,
        as :meth:`OutcomeEstimator.predict_proba` of each member."""
        first = self.first
        x = self._node_values(cases)  # [M, P, N]
        if doses_gy is None:
            g = received_geud_norm(cases, first.protocol, first.structure)[:, None]  # [P, 1]
        else:
            doses = np.asarray(doses_gy, dtype=np.float64).reshape(-1)
            g = adapted_geud_norm(cases, first.protocol, first.structure, doses)  # [P, D]
        g_norm = torch.from_numpy(g)
        m, n_cases, n_doses = len(self.members), g.shape[0], g.shape[1]
        step = max(1, _STACKED_CHUNK // self._states_per_case(x.shape[2], n_doses))
        parts = [self._proba_chunk(x[:, i:i + step], g_norm[i:i + step])
                 for i in range(0, n_cases, step)]
        p = torch.cat(parts, dim=1) if parts else torch.empty(m, 0, n_doses, dtype=torch.float64)
        return (p[..., 0] if doses_gy is None else p).numpy()

    def _states_per_case(self, n_nodes: int, n_doses: int) -> int:
        """Node states one case costs in a batched pass (all members, D doses)."""
        m = len(self.members)
        if self.arch == "glogd":
            return 2 * m * n_nodes  # μ- and T-network graphs
        if isinstance(self.net, StackedGraphNets):
            reached = len(self.net.reach(self.first._dose_node)[-1])
            return m * (n_nodes + n_doses * reached)  # per-case states + swept ones per dose
        return m * (n_nodes + n_doses)

    def _proba_chunk(self, x: torch.Tensor, g_norm: torch.Tensor) -> torch.Tensor:
        """Probabilities [M, P, D] float64 for node values [M, P, N] and ĝ [P, D] float64."""
        m = len(self.members)
        if self.arch == "glogd":
            logits = self.net(torch.cat([x, x]))  # [2M, P]: μ-networks, then T-networks
            mu = torch.sigmoid(logits[:m]).double()  # [M, P]
            t = t_from_logit(logits[m:]).double()  # [M, P]
            return logistic_outcome(g_norm[None], mu[..., None], t[..., None])  # [M, P, D]
        j = self.first._dose_node
        # Standardise ĝ with each member's dose-node statistics (float64, then float32).
        mean = torch.from_numpy(self.mean[:, j])[:, None, None]
        sd = torch.from_numpy(self.sd[:, j])[:, None, None]
        dose_values = ((g_norm[None] - mean) / sd).float()  # [M, P, D]
        logits = self.net.node_sweep(x, j, dose_values)  # [M, P, D]
        return torch.sigmoid(logits.double())


def _member_sources(members: Sequence[OutcomeEstimator]) -> tuple[object, ...]:
    """The members' encoders and networks, compared by identity (a refit replaces them)."""
    return tuple(obj for m in members for obj in (m.encoder_, *m._nets().values()))
