"""Virtual trials with known ground truth, and the reference model that serves that truth.

The trials' patient data are restricted, so every model is built and measured on virtual trials
whose truth we know. A trial spec (``engine/arclids/trials/<protocol>.toml``) gives, per feature of
the protocol's DAG, a distribution and weights on its parents; per outcome a generalised-logistic
dose response whose μ and T depend on the outcome's parents; and a noisy clinician rule for the
historic adaptive doses. Outcomes are Bernoulli draws at the gEUD each case actually received.

Generation of one node: latent standard score u = Σ w·z_parent + sqrt(max(0, 1 − Σ w²))·ε with
ε ~ N(0, 1); the node's distribution maps u to an observed value (clipped to the protocol's
accepted range); z of the node is the observed value standardised back. The truth is computed
from the observed values only, so the reference model reproduces it exactly for any case a clinic
enters. Deterministic by seed.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from engine.arclids.evaluation import auroc
from engine.arclids.geud import adapted_geud_norm, received_geud_norm
from engine.arclids.outcomes import OutcomeCurves
from engine.core.protocols import PROTOCOL_NAMES, PROTOCOLS_DIR, Protocol, Structure, load_protocol
from engine.core.radiobiology import logistic_outcome
from engine.core.tabular import formula_safe

__all__ = [
    "DEFAULT_TRIAL_SEED",
    "REFERENCE_MODEL_LABEL",
    "Cohort",
    "ReferenceModel",
    "TrialSpec",
    "bayes_ceiling",
    "generate_cohort",
    "load_trial_spec",
    "population_table",
    "write_cases_csv",
]

_TRIALS_DIR = Path(__file__).parent / "trials"
REFERENCE_MODEL_LABEL = "reference model (virtual trial ground truth)"
# Large fixed draw used to solve the outcome intercepts; independent of any user seed.
_CALIBRATION_SEED = 20_221_001
_CALIBRATION_N = 20_000
DEFAULT_TRIAL_SEED = 100
"""Seed of the default virtual trials. Chosen (among seeds 0–299) as one whose outcome counts
mirror the published trials: NSCLC 48/67 local control and 17/67 grade ≥ 2 pneumonitis; HCC one
local-control failure among 99 sites and 7 patients with liver toxicity. Any other seed draws an
equally valid trial from the same ground truth."""


@dataclass(frozen=True)
class NodeSpec:
    """How one feature is generated."""

    name: str
    """Feature name (a protocol feature)."""
    dist: str
    """``genotype``, ``normal``, ``lognormal``, ``ordinal``, ``dose`` or ``sites``."""
    params: dict
    """Distribution parameters from the spec (maf; mean, sd; median, log_sd; loc, scale;
    ratio_median, ratio_log_sd)."""
    parents: dict[str, float]
    """Weights on the parents' standard scores (latent scale)."""


@dataclass(frozen=True)
class OutcomeSpec:
    """Ground-truth dose response of one outcome."""

    name: str
    """Outcome column (``local_control``, ``rp2``, ``liver_toxicity``)."""
    structure: str
    """``"target"`` or ``"oar"``: whose adapted gEUD drives the outcome."""
    target_rate: float
    """Expected event rate of the complete cohort at the clinician's doses (0–1)."""
    t: float
    """Base logistic width T in normalised-gEUD units (> 0)."""
    mu_weights: dict[str, float]
    """Weights of the parents' standard scores on logit(μ)."""
    t_log_weights: dict[str, float]
    """Weights of the parents' standard scores on log T."""


@dataclass(frozen=True)
class TrialSpec:
    """A virtual trial, as loaded from ``engine/arclids/trials/<protocol>.toml``."""

    protocol: Protocol
    """The treatment protocol the trial follows."""
    n_patients: int
    """Patients in the default trial."""
    n_complete: int
    """Patients with complete feature data in the default trial."""
    id_prefix: str
    """Prefix of generated patient ids."""
    dose_eval: dict
    """Evaluation dose per fraction: mean_gy, sd_gy, round_gy, min_gy, max_gy."""
    nodes: tuple[NodeSpec, ...]
    """Feature generators in topological order."""
    outcomes: tuple[OutcomeSpec, ...]
    """Target outcome first, then the organ-at-risk outcome."""
    clinician: dict
    """Clinician rule: base_gy, weights_gy, reference, noise_sd_gy."""
    missing: dict
    """Missing-data panels: name → {p, columns}."""
    site_level: tuple[str, ...]
    """Features drawn per tumour site (empty for one row per patient)."""
    site_counts: dict[int, int]
    """Sites per patient → number of patients (default trial), empty if one site each."""
    version: str
    """Hash of the protocol and trial files: changes whenever the truth changes."""

    def outcome(self, name: str) -> OutcomeSpec:
        return next(o for o in self.outcomes if o.name == name)

    def structure(self, outcome: OutcomeSpec) -> Structure:
        return self.protocol.target if outcome.structure == "target" else self.protocol.oar


def _topological(protocol: Protocol, raw_nodes: dict) -> list[str]:
    names = list(protocol.feature_names)
    parents = {n: set(raw_nodes[n].get("parents", {})) for n in names}
    order: list[str] = []
    while len(order) < len(names):
        ready = [n for n in names if n not in order and parents[n] <= set(order)]
        if not ready:
            raise ValueError(f"trial {protocol.name}: node parents form a cycle")
        order.extend(ready)
    return order


def _check_against_dag(spec: TrialSpec) -> None:
    """The trial's parent sets must be exactly the protocol DAG: one graph, two uses."""
    protocol = spec.protocol
    expected: dict[str, set[str]] = {}
    for a, b in protocol.dag_edges:
        expected.setdefault(b, set()).add(a)
    for node in spec.nodes:
        if set(node.parents) != expected.get(node.name, set()):
            raise ValueError(
                f"trial {protocol.name}: parents of {node.name} {sorted(node.parents)} differ "
                f"from the protocol DAG {sorted(expected.get(node.name, set()))}"
            )
    for out in spec.outcomes:
        dose_node = spec.structure(out).geud_feature
        got = set(out.mu_weights) | set(out.t_log_weights) | {dose_node}
        if got != expected.get(out.name, set()):
            raise ValueError(
                f"trial {protocol.name}: parents of outcome {out.name} {sorted(got)} differ "
                f"from the protocol DAG {sorted(expected.get(out.name, set()))}"
            )


_PLAN_HEADER = re.compile(r"^\[\[?plan[\].]", re.M)


def _trial_part_of_protocol(text: str) -> str:
    """The protocol file's text without its trailing plan-import tables (``[plan]``,
    ``[[plan.*]]`` and the comment lines just above the first of them).

    The virtual trial never reads them (they say how features are computed from a treatment
    plan, engine/dvh), so they are not part of the trial's identity: adding or editing them
    does not make models trained on the trial look trained on another one. They must come last
    in the file so the cut is unambiguous; anything else after them is refused.
    """
    match = _PLAN_HEADER.search(text)
    if match is None:
        return text
    head, tail = text[: match.start()], text[match.start():]
    if set(tomllib.loads(tail)) != {"plan"}:
        raise ValueError("protocol TOML: the [plan] tables must come last (only [plan] and "
                         "[[plan.*]] tables may follow the first of them)")
    lines = head.split("\n")
    while lines and (lines[-1].startswith("#") or not lines[-1].strip()):
        lines.pop()  # the plan's own comment block and the blank line before it
    return "\n".join(lines) + "\n"


@cache
def load_trial_spec(name: str) -> TrialSpec:
    """Load the virtual-trial spec of protocol ``name`` and check it against the protocol DAG."""
    protocol = load_protocol(name)
    text = (_TRIALS_DIR / f"{name}.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    order = _topological(protocol, raw["nodes"])
    nodes = tuple(
        NodeSpec(
            name=n,
            dist=raw["nodes"][n]["dist"],
            params={k: v for k, v in raw["nodes"][n].items() if k not in ("dist", "parents")},
            parents=dict(raw["nodes"][n].get("parents", {})),
        )
        for n in order
    )
    outcomes = tuple(OutcomeSpec(name=o, **raw["outcomes"][o]) for o in protocol.outcome_names)
    digest = hashlib.sha256(
        text.encode() + _trial_part_of_protocol((PROTOCOLS_DIR / f"{name}.toml").read_text(
            encoding="utf-8")).encode()
    ).hexdigest()
    spec = TrialSpec(
        protocol=protocol,
        n_patients=int(raw["n_patients"]),
        n_complete=int(raw["n_complete"]),
        id_prefix=raw["id_prefix"],
        dose_eval=raw["dose_eval"],
        nodes=nodes,
        outcomes=outcomes,
        clinician=raw["clinician"],
        missing=raw.get("missing", {}),
        site_level=tuple(raw.get("site_level", ())),
        site_counts={int(k): int(v) for k, v in raw.get("site_counts", {}).items()},
        version=f"trial-{name}-{digest[:12]}",
    )
    _check_against_dag(spec)
    return spec


# --------------------------------------------------------------------------- node transforms


def _sites_moments(spec: TrialSpec) -> tuple[float, float]:
    counts = spec.site_counts or {1: 1}
    values = np.repeat(list(counts), list(counts.values())).astype(float)
    return float(values.mean()), float(max(values.std(), 1e-6))


def _from_latent(
    spec: TrialSpec, node: NodeSpec, u: np.ndarray, dose_eval_gy: np.ndarray
) -> np.ndarray:
    """Observed value of ``node`` from its latent standard score ``u`` (before clipping).

    ``dose_eval_gy`` is the evaluation dose per fraction of each drawn unit (shape of ``u``);
    only dosimetric nodes use it.
    """
    p = node.params
    if node.dist == "normal":
        return p["mean"] + p["sd"] * u
    if node.dist == "lognormal":
        return p["median"] * np.exp(p["log_sd"] * u)
    if node.dist == "ordinal":
        return np.round(p["loc"] + p["scale"] * u)
    if node.dist == "dose":
        n_eval = spec.protocol.n_eval_fractions
        ratio = p["ratio_median"] * np.exp(p["ratio_log_sd"] * u)
        return n_eval * dose_eval_gy * ratio
    raise ValueError(f"node {node.name}: distribution {node.dist!r} has no latent form")


def standard_scores(spec: TrialSpec, cases: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Standard scores z of observed feature values, shape [P, len(names)].

    The inverse of each node's distribution map; this is how the truth reads any case.
    """
    by_name = {n.name: n for n in spec.nodes}
    out = np.empty((len(cases), len(names)))
    for j, name in enumerate(names):
        node, x = by_name[name], cases[name].to_numpy(dtype=np.float64)
        p = node.params
        if node.dist == "genotype":
            maf = p["maf"]
            z = (x - 2 * maf) / math.sqrt(2 * maf * (1 - maf))
        elif node.dist == "normal":
            z = (x - p["mean"]) / p["sd"]
        elif node.dist == "lognormal":
            z = np.log(np.maximum(x, 1e-12) / p["median"]) / p["log_sd"]
        elif node.dist == "ordinal":
            z = (x - p["loc"]) / p["scale"]
        elif node.dist == "dose":
            nominal = spec.protocol.n_eval_fractions * cases["dose_eval_gy"].to_numpy()
            z = np.log(x / (nominal * p["ratio_median"])) / p["ratio_log_sd"]
        elif node.dist == "sites":
            mean, sd = _sites_moments(spec)
            z = (x - mean) / sd
        else:
            raise ValueError(f"node {name}: unknown distribution {node.dist!r}")
        out[:, j] = z
    return out


# --------------------------------------------------------------------------- generation


def _site_layout(spec: TrialSpec, n_patients: int, rng: np.random.Generator) -> np.ndarray:
    """Number of sites of each patient, shape [n_patients]."""
    if not spec.site_counts:
        return np.ones(n_patients, dtype=int)
    counts = spec.site_counts
    if n_patients == spec.n_patients and sum(counts.values()) == n_patients:
        sites = np.repeat(list(counts), list(counts.values()))
        return rng.permutation(sites)
    probs = np.array(list(counts.values()), dtype=float)
    return rng.choice(list(counts), size=n_patients, p=probs / probs.sum())


def _clip_to_protocol(protocol: Protocol, name: str, values: np.ndarray) -> np.ndarray:
    feat = protocol.feature(name)
    return np.clip(values, feat.min, feat.max)


def _draw_features(spec: TrialSpec, n_patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """Features, evaluation dose and ids for ``n_patients`` (one row per case), no outcomes."""
    protocol = spec.protocol
    n_sites = _site_layout(spec, n_patients, rng)
    patient_index = np.repeat(np.arange(n_patients), n_sites)
    digits = max(3, len(str(n_patients)))
    table = pd.DataFrame(
        {"patient_id": [f"{spec.id_prefix}-{i + 1:0{digits}d}" for i in patient_index]}
    )
    if "site_id" in protocol.id_columns:
        table["site_id"] = np.concatenate([np.arange(1, k + 1) for k in n_sites])
    de = spec.dose_eval
    d_eval = rng.normal(de["mean_gy"], de["sd_gy"], n_patients)
    d_eval = np.clip(np.round(d_eval / de["round_gy"]) * de["round_gy"], de["min_gy"], de["max_gy"])
    d_eval = np.round(d_eval, 6)  # per patient, exactly as stored in the table
    table["dose_eval_gy"] = d_eval[patient_index]

    z_cols: dict[str, np.ndarray] = {}
    for node in spec.nodes:
        site_level = node.name in spec.site_level
        n_draw = len(table) if site_level else n_patients
        if node.dist == "sites":
            values = n_sites.astype(float)
        elif node.dist == "genotype":
            values = rng.binomial(2, node.params["maf"], n_draw).astype(float)
        else:
            parent_z = np.zeros(n_draw)
            for parent, w in node.parents.items():
                z = z_cols[parent]  # per case row
                if not site_level and parent in spec.site_level:
                    z = pd.Series(z).groupby(patient_index).mean().to_numpy()
                elif not site_level:
                    z = pd.Series(z).groupby(patient_index).first().to_numpy()
                parent_z = parent_z + w * z
            noise_sd = math.sqrt(max(0.0, 1.0 - sum(w * w for w in node.parents.values())))
            u = parent_z + noise_sd * rng.standard_normal(n_draw)
            values = _from_latent(spec, node, u, d_eval[patient_index] if site_level else d_eval)
        values = _clip_to_protocol(protocol, node.name, values)
        table[node.name] = values if site_level else values[patient_index]
        z_cols[node.name] = standard_scores(spec, table, [node.name])[:, 0]
    return table


def _clinician_doses(spec: TrialSpec, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Historic adaptive dose per fraction, Gy, one decision per patient (shared by its sites)."""
    rule = spec.clinician
    first = table.groupby("patient_id", sort=False).head(1)
    dose = np.full(len(first), float(rule["base_gy"]))
    for name, w in rule["weights_gy"].items():
        dose = dose + w * (first[name].to_numpy() - rule["reference"][name])
    dose = dose + rng.normal(0.0, rule["noise_sd_gy"], len(first))
    grid = spec.protocol.dose_grid()
    step = grid[1] - grid[0]
    dose = np.clip(np.round((dose - grid[0]) / step) * step + grid[0], grid[0], grid[-1])
    per_patient = dict(zip(first["patient_id"], np.round(dose, 6), strict=True))
    return table["patient_id"].map(per_patient).to_numpy(dtype=np.float64)


def _linear_scores(spec: TrialSpec, cases: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    if not weights:
        return np.zeros(len(cases))
    names = list(weights)
    return standard_scores(spec, cases, names) @ np.array([weights[n] for n in names])


def _mu_t(
    spec: TrialSpec, outcome: OutcomeSpec, cases: pd.DataFrame, intercept: float
) -> tuple[np.ndarray, np.ndarray]:
    mu = expit(intercept + _linear_scores(spec, cases, outcome.mu_weights))
    t = outcome.t * np.exp(_linear_scores(spec, cases, outcome.t_log_weights))
    return mu, t


@cache
def _intercepts(name: str) -> dict[str, float]:
    """logit-μ intercepts that give each outcome its target rate at the clinician's doses."""
    spec = load_trial_spec(name)
    rng = np.random.default_rng(_CALIBRATION_SEED)
    table = _draw_features(spec, _CALIBRATION_N, rng)
    table["dose_adapt_gy"] = _clinician_doses(spec, table, rng)
    out = {}
    for outcome in spec.outcomes:
        g_norm = received_geud_norm(table, spec.protocol, spec.structure(outcome))

        def rate_gap(
            b: float, outcome: OutcomeSpec = outcome, g_norm: np.ndarray = g_norm
        ) -> float:
            mu, t = _mu_t(spec, outcome, table, b)
            return float(logistic_outcome(g_norm, mu, t).mean() - outcome.target_rate)

        out[outcome.name] = float(brentq(rate_gap, -15.0, 15.0, xtol=1e-10))
    return out


def truth_parameters(name: str, cases: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """True (μ, T) per outcome for every case, from its observed features."""
    spec = load_trial_spec(name)
    intercepts = _intercepts(name)
    return {o.name: _mu_t(spec, o, cases, intercepts[o.name]) for o in spec.outcomes}


@dataclass(frozen=True)
class Cohort:
    """A generated virtual trial."""

    protocol: Protocol
    """The protocol followed."""
    table: pd.DataFrame
    """One row per case: id columns, features (NaN where missing), ``dose_eval_gy``,
    ``dose_adapt_gy`` (historic decision), the two outcomes (0/1) and ``complete``."""
    truth: pd.DataFrame
    """Per case: ``mu_<outcome>``, ``t_<outcome>`` and ``p_<outcome>`` (true probability at the
    received dose), from the features before masking. Never visible to models."""
    seed: int
    """Seed the trial was generated with."""
    version: str
    """Trial-spec version (hash of the protocol and trial files)."""

    @property
    def complete_table(self) -> pd.DataFrame:
        return self.table[self.table["complete"]].reset_index(drop=True)


def generate_cohort(
    name: str,
    seed: int = DEFAULT_TRIAL_SEED,
    n_patients: int | None = None,
    n_complete: int | None = None,
) -> Cohort:
    """Generate the virtual trial of protocol ``name``.

    Args:
        name: protocol name, one of ``PROTOCOL_NAMES``.
        seed: any non-negative integer; the same seed gives the same trial.
        n_patients: patients to draw (default: the trial's, 117 NSCLC / 71 HCC).
        n_complete: patients with complete data (default: the trial's 67 for the default size,
            else all); the others miss whole panels as the spec describes.
    """
    if name not in PROTOCOL_NAMES:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOL_NAMES)}")
    spec = load_trial_spec(name)
    n = spec.n_patients if n_patients is None else int(n_patients)
    if n_complete is None:
        n_complete = spec.n_complete if n_patients is None else n
    if not 1 <= n_complete <= n:
        raise ValueError(f"n_complete={n_complete} must lie between 1 and n_patients={n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, PROTOCOL_NAMES.index(name)]))
    table = _draw_features(spec, n, rng)
    table["dose_adapt_gy"] = _clinician_doses(spec, table, rng)
    params = truth_parameters(name, table)
    truth = pd.DataFrame(index=table.index)
    patient_first = ~table["patient_id"].duplicated()
    for outcome in spec.outcomes:
        mu, t = params[outcome.name]
        g_norm = received_geud_norm(table, spec.protocol, spec.structure(outcome))  # [P]
        p = logistic_outcome(g_norm, mu, t)
        truth[f"mu_{outcome.name}"], truth[f"t_{outcome.name}"], truth[f"p_{outcome.name}"] = (
            mu,
            t,
            p,
        )
        draws = (rng.random(len(table)) < p).astype(int)
        if outcome.structure == "oar" and "site_id" in spec.protocol.id_columns:
            # Toxicity is a patient's event: one draw per patient, shared by its site rows.
            per_patient = dict(
                zip(table["patient_id"][patient_first], draws[patient_first], strict=True)
            )
            draws = table["patient_id"].map(per_patient).to_numpy()
        table[outcome.name] = draws
    table["complete"] = True
    incomplete = rng.choice(n, size=n - n_complete, replace=False)
    _mask_missing(spec, table, incomplete, rng)
    return Cohort(protocol=spec.protocol, table=table, truth=truth, seed=seed, version=spec.version)


def _mask_missing(
    spec: TrialSpec, table: pd.DataFrame, patients: np.ndarray, rng: np.random.Generator
) -> None:
    """Blank whole panels of the given patients (by patient index), at least one panel each."""
    if len(patients) == 0:
        return
    if not spec.missing:
        raise ValueError(f"trial {spec.protocol.name} defines no missing-data panels")
    panels = list(spec.missing.values())
    probs = np.array([p["p"] for p in panels])
    patient_ids = table["patient_id"].drop_duplicates().to_numpy()
    for idx in patients:
        chosen = rng.random(len(panels)) < probs
        if not chosen.any():
            chosen[rng.choice(len(panels), p=probs / probs.sum())] = True
        rows = table["patient_id"] == patient_ids[idx]
        for panel, take in zip(panels, chosen, strict=True):
            if take:
                table.loc[rows, panel["columns"]] = np.nan
        table.loc[rows, "complete"] = False


@cache
def population_table(name: str) -> pd.DataFrame:
    """Complete cases of the default virtual trial, for population histograms."""
    return generate_cohort(name).complete_table


class ReferenceModel:
    """Outcome model that serves the virtual trial's ground truth (one ensemble member).

    Until learned outcome models are served this is what the app, CLI and reports use, always
    labelled :data:`REFERENCE_MODEL_LABEL`.
    """

    name = "reference"
    label = REFERENCE_MODEL_LABEL

    def __init__(self, protocol_name: str) -> None:
        self.spec_ = load_trial_spec(protocol_name)
        self.version = self.spec_.version

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        """True TCP and NTCP over ``protocol.dose_grid()``; each array [1, P, D]."""
        if protocol.name != self.spec_.protocol.name:
            raise ValueError(
                f"reference model of {self.spec_.protocol.name} cannot serve {protocol.name}"
            )
        doses = protocol.dose_grid()
        params = truth_parameters(protocol.name, cases)
        probs = []
        for outcome in self.spec_.outcomes:
            mu, t = params[outcome.name]
            g_norm = adapted_geud_norm(cases, protocol, self.spec_.structure(outcome), doses)
            probs.append(logistic_outcome(g_norm, mu[:, None], t[:, None])[None])
        return OutcomeCurves(doses_gy=doses, tcp=probs[0], ntcp=probs[1])


def case_columns(protocol: Protocol, table: pd.DataFrame) -> list[str]:
    """The CSV-format columns of ``table`` in the documented order (docs/data-format.md)."""
    optional = ["dose_adapt_gy", *protocol.outcome_names, "note"]
    base = [*protocol.id_columns, *protocol.feature_names, "dose_eval_gy"]
    return base + [c for c in optional if c in table.columns]


def write_cases_csv(table: pd.DataFrame, protocol: Protocol, path: Path | str) -> Path:
    """Write cases in the documented CSV format (six significant digits), return the path."""
    path = Path(path)
    formula_safe(table[case_columns(protocol, table)]).to_csv(path, index=False,
                                                             float_format="%.6g")
    return path


def bayes_ceiling(table: pd.DataFrame, truth: pd.DataFrame, outcome: str) -> float:
    """AUROC the true probabilities ``truth["p_<outcome>"]`` reach on the Bernoulli outcomes
    ``table[outcome]`` drawn from them (rows aligned; both classes present), in [0, 1].

    The ceiling for any model of the trial: no estimator can rank the outcomes better than the
    truth that drew them (docs/virtual-trials.md lists it on a large cohort).
    """
    return auroc(truth[f"p_{outcome}"].to_numpy(), table[outcome].to_numpy())
