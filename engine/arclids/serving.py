"""Serving: the artifacts under ``models/`` that the app and the CLI load, and the catalogue of
served outcome models with its one failure policy.

Artifact names. The families ``rtoe`` (outcome-estimator members and their evaluation), ``gan``
(the synthetic-patient generator and its checks) and ``odm`` (decision-maker members and their
evaluation), and the names inside them: the trainers (:mod:`engine.arclids.rtoe_train`,
:mod:`engine.arclids.odm_train`) write under these names, everything else reads them from here.

Loaders. Every loader goes through :mod:`engine.platform.registry` (sha256-checked against the
manifest) and raises :class:`registry.ArtifactError` on a missing or tampered artifact:
:func:`load_served_model` (an architecture's outcome ensemble, with a warning when it was trained
on another version of the virtual trial), :func:`load_gan`, :func:`load_served_odm`, the saved
evaluations (:func:`load_evaluation`, :func:`load_gan_evaluation`, :func:`load_odm_evaluation`).
:func:`odm_for_model` refuses an ODM whose recorded outcome model is not the one being served
(:class:`OdmUnavailable`): the recommender then falls back to the exact argmax of the reward and
says why (:mod:`engine.arclids.recommend`).

The catalogue. Per protocol the outcome models offered are the learned ensembles (in the order
of :data:`engine.arclids.architectures.ARCH_KEYS`), then the virtual trial's reference truth
(:data:`MODEL_KEYS`). :func:`load_catalogue` loads each once, with, per model, the decision maker
serving it or the one-line reason there is none; :func:`load_outcome_model` and
:func:`decision_maker` load one (the CLI). One failure policy for all of them
(:data:`LOAD_ERRORS`, :func:`failure_reason`): a model or decision maker that does not load is
never a crash but one line saying why: the app leaves the model out of its choices and shows the
line, ``artds recommend --model`` exits 2 with it; a decision maker that does not load makes the
recommendation the exact argmax of the reward, with the line as its note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from engine import settings
from engine.arclids.architectures import (
    ARCH_KEYS,
    ODM_ARCHS,
    REFERENCE,
    SERVED_ARCH,
    arch_label,
    choice_label,
)
from engine.arclids.calibration import (
    IDENTITY,
    AdviceCalibration,
    OutcomeCalibration,
    recalibration_words,
)
from engine.arclids.cohort import ReferenceModel, load_trial_spec
from engine.arclids.ensemble import EnsembleOutcomeModel
from engine.arclids.gan import WGANGP, GANConfig, TabularTransform
from engine.arclids.odm import ODMConfig, ODMEnsemble, ensemble_version
from engine.arclids.outcomes import OutcomeModel
from engine.arclids.rtoe import OutcomeEstimator, RTOEConfig
from engine.core.protocols import Protocol, load_protocol
from engine.core.rl import QNetwork
from engine.platform import registry

__all__ = [
    "GAN_FAMILY",
    "LOAD_ERRORS",
    "MODEL_KEYS",
    "NO_DECISION_MAKER",
    "N_ODM_MEMBERS",
    "N_RTOE_MEMBERS",
    "N_SYNTHETIC",
    "ODM_FAMILY",
    "RTOE_FAMILY",
    "SYNTHETIC_SEED",
    "Catalogue",
    "ModelChoice",
    "ModelUnavailable",
    "OdmUnavailable",
    "calibration_name",
    "decision_maker",
    "ensemble_model",
    "failure_reason",
    "gan_evaluation_name",
    "gan_name",
    "learned_version",
    "load_calibration",
    "load_catalogue",
    "load_evaluation",
    "load_gan",
    "load_gan_evaluation",
    "load_learned_version",
    "load_members",
    "load_odm_evaluation",
    "load_outcome_model",
    "load_served_model",
    "load_served_odm",
    "member_name",
    "odm_ensemble",
    "odm_evaluation_name",
    "odm_for_model",
    "odm_member_name",
    "one_line",
    "rtoe_evaluation_name",
    "served_rtoe_versions",
    "stale_trial_warnings",
    "synthetic_pool",
]

# ------------------------------------------------------------------------------------------------
# Artifact names

RTOE_FAMILY = "rtoe"
"""Artifact family of the outcome estimators under models/."""
GAN_FAMILY = "gan"
"""Artifact family of the synthetic-patient generators."""
ODM_FAMILY = "odm"
"""Artifact family of the decision makers."""
N_RTOE_MEMBERS = 20
"""Members per outcome of a served outcome ensemble, trained with the best setting, member k with
seed k on a bootstrap resample of the patients (bagging; the paper trained 5 on all data, whose
spread only measured fitting noise)."""
N_ODM_MEMBERS = 5
"""ODM members per architecture (the paper's 5), member k on ARTE member k."""
N_SYNTHETIC = 10_000
"""Synthetic patients drawn from the GAN (the paper's 10,000)."""
SYNTHETIC_SEED = 10_000
"""Seed of the latent draws of the synthetic pool."""


def member_name(protocol_name: str, arch: str, outcome: str, k: int) -> str:
    """Artifact name of outcome-ensemble member ``k`` (``rtoe/<name>.pt``)."""
    return f"{protocol_name}_{arch}_{outcome}_{k}"


def calibration_name(protocol_name: str, arch: str) -> str:
    """Artifact name of an ensemble's recalibration and interval (``rtoe/<name>.json``)."""
    return f"{protocol_name}_{arch}_calibration"


def rtoe_evaluation_name(protocol_name: str) -> str:
    """Artifact name of the outcome estimators' evaluation (``rtoe/<name>.json``)."""
    return f"{protocol_name}_evaluation"


def gan_name(protocol_name: str) -> str:
    """Artifact name of the generator (``gan/<name>.pt``)."""
    return f"{protocol_name}_generator"


def gan_evaluation_name(protocol_name: str) -> str:
    """Artifact name of the generator's distribution checks (``gan/<name>.json``)."""
    return f"{protocol_name}_evaluation"


def odm_member_name(protocol_name: str, arch: str, k: int) -> str:
    """Artifact name of ODM member ``k`` of an architecture (``odm/<name>.pt``)."""
    return f"{protocol_name}_{arch}_{k}"


def odm_evaluation_name(protocol_name: str) -> str:
    """Artifact name of the decision makers' evaluation (``odm/<name>.json``)."""
    return f"{protocol_name}_evaluation"


# ------------------------------------------------------------------------------------------------
# The failure policy

LOAD_ERRORS: tuple[type[Exception], ...] = (RuntimeError, KeyError, TypeError, ValueError, OSError)
"""What loading a served artifact may raise: :class:`registry.ArtifactError` (a RuntimeError:
missing, tampered or not a state_dict) and, for artifacts that pass the hash check but do not fit
this code (saved by another version, a config lacking a key), the others. Anything else is a bug
and propagates."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def failure_reason(exc: BaseException) -> str:
    """The one-line reason shown for an artifact that did not load (one of :data:`LOAD_ERRORS`).

    A registry.ArtifactError already names the file and the command that rewrites it: its first
    line. Anything else is an artifact that passed its hash check but does not fit this code:
    "could not be loaded (<type>: <first line>)".
    """
    if isinstance(exc, registry.ArtifactError):
        return one_line(exc)
    return f"could not be loaded ({type(exc).__name__}: {one_line(exc)})"


# ------------------------------------------------------------------------------------------------
# Outcome ensembles


def _n_members(root: Path, protocol_name: str, arch: str, outcome: str) -> int:
    """Members of one ensemble listed in the manifest under ``root``."""
    prefix = f"{protocol_name}_{arch}_{outcome}_"
    return sum(1 for m in registry.list_artifacts(root, RTOE_FAMILY)
               if m.name.startswith(prefix) and m.name[len(prefix):].isdigit())


def load_members(
    protocol_name: str, arch: str, outcome: str, models_dir: Any = None
) -> tuple[list[OutcomeEstimator], list[Any]]:
    """The saved ensemble members of one architecture and outcome (hash-checked)."""

    models_dir = settings.models_dir(models_dir)
    protocol = load_protocol(protocol_name)
    n = _n_members(Path(models_dir), protocol_name, arch, outcome)
    if n == 0:
        raise registry.ArtifactError(
            f"{models_dir}: no {protocol_name} {arch} {outcome} members in the manifest; train "
            f"them with `artds train rtoe --protocol {protocol_name}`")
    members, metas = [], []
    for k in range(n):
        state, meta = registry.load_artifact(
            models_dir, RTOE_FAMILY, member_name(protocol_name, arch, outcome, k)
        )
        with registry.fitting(meta, models_dir):
            config = RTOEConfig.from_dict(meta.config)
            members.append(OutcomeEstimator.from_state_dict(protocol, outcome, config, state))
        metas.append(meta)
    return members, metas


def load_calibration(
    protocol_name: str, arch: str, models_dir: Any = None
) -> tuple[OutcomeCalibration, OutcomeCalibration, AdviceCalibration | None, Any]:
    """An ensemble's TCP and NTCP recalibration and interval, its map of
    ``p_recommended_better`` (None when the artifact has none), and the artifact metadata.

    Raises registry.ArtifactError when absent: an ensemble is never served uncalibrated.
    """
    root = settings.models_dir(models_dir)
    payload, meta = registry.load_json_artifact(root, RTOE_FAMILY,
                                                calibration_name(protocol_name, arch))
    with registry.fitting(meta, root):
        advice = payload.get("advice")
        return (OutcomeCalibration.from_dict(payload["tcp"]),
                OutcomeCalibration.from_dict(payload["ntcp"]),
                None if advice is None else AdviceCalibration.from_dict(advice), meta)


def ensemble_model(
    protocol: Protocol,
    tcp_members: Sequence[OutcomeEstimator],
    ntcp_members: Sequence[OutcomeEstimator],
    *,
    arch: str,
    version: str,
    warnings: Sequence[str] = (),
    calibration: tuple[OutcomeCalibration, OutcomeCalibration] = (IDENTITY, IDENTITY),
    advice: AdviceCalibration | None = None,
) -> EnsembleOutcomeModel:
    """The servable outcome model of one architecture."""
    label = (f"{arch_label(arch)} ensemble ({len(tcp_members)} bagged members, "
             f"{recalibration_words(*calibration)}, trained on the virtual trial)")
    return EnsembleOutcomeModel(
        protocol,
        list(tcp_members),
        list(ntcp_members),
        name=f"rtoe-{arch}",
        label=label,
        version=version,
        warnings=warnings,
        tcp_calibration=calibration[0],
        ntcp_calibration=calibration[1],
        advice_calibration=advice,
    )


def load_served_model(
    protocol_name: str, arch: str = SERVED_ARCH, models_dir: Any = None
) -> EnsembleOutcomeModel:
    """The learned ensemble the app serves; raises registry.ArtifactError when missing/tampered."""
    protocol = load_protocol(protocol_name)
    tcp, tcp_meta = load_members(protocol_name, arch, protocol.target.outcome, models_dir)
    ntcp, ntcp_meta = load_members(protocol_name, arch, protocol.oar.outcome, models_dir)
    tcp_cal, ntcp_cal, advice, cal_meta = load_calibration(protocol_name, arch, models_dir)
    version = registry.ensemble_version(
        "rtoe", protocol_name, arch,
        [m.sha256 for m in [*tcp_meta, *ntcp_meta, cal_meta]], hex_per_member=4
    )
    return ensemble_model(
        protocol, tcp, ntcp, arch=arch, version=version,
        warnings=stale_trial_warnings(protocol_name, [*tcp_meta, *ntcp_meta]),
        calibration=(tcp_cal, ntcp_cal), advice=advice,
    )


def learned_version(protocol_name: str, arch: str, sha256s: Sequence[str]) -> str:
    """Version string of a Learning Mode ensemble from its artifacts' sha256s (in member order,
    TCP members then NTCP members)."""
    return registry.ensemble_version("learn", protocol_name, arch, sha256s)


def load_learned_version(protocol_name: str, arch: str, location: Path | str,
                       version: str, label: str) -> Any:
    """The ensemble of a Learning Mode version (hash-checked; the version must match).

    Its version string covers the members and, for versions trained since recalibration
    existed, the calibration artifact (``learned_version`` over members then calibration).
    """
    protocol = load_protocol(protocol_name)
    root = Path(location)
    members: dict[str, list] = {}
    shas: list[str] = []
    if _n_members(root, protocol_name, arch, protocol.target.outcome) == 0:
        raise registry.ArtifactError(f"{root}: no {protocol_name} {arch} members in the manifest")
    for outcome in protocol.outcome_names:
        members[outcome], metas = load_members(protocol_name, arch, outcome, root)
        shas.extend(m.sha256 for m in metas)
    calibration, advice = (IDENTITY, IDENTITY), None
    if any(m.name == calibration_name(protocol_name, arch)
           for m in registry.list_artifacts(root, RTOE_FAMILY)):
        tcp_cal, ntcp_cal, advice, cal_meta = load_calibration(protocol_name, arch, root)
        calibration = (tcp_cal, ntcp_cal)
        shas.append(cal_meta.sha256)
    found = learned_version(protocol_name, arch, shas)
    if found != version:
        raise registry.ArtifactError(
            f"{root}: holds version {found}, not {version}; restore the folder")
    return EnsembleOutcomeModel(protocol, members[protocol.target.outcome],
                                members[protocol.oar.outcome], name=f"rtoe-{arch}",
                                label=label, version=version, tcp_calibration=calibration[0],
                                ntcp_calibration=calibration[1], advice_calibration=advice)


def stale_trial_warnings(protocol_name: str, metas: Sequence[Any]) -> list[str]:
    """A caution when artifacts were trained on another version of the virtual trial.

    The weights still load (they are intact), but their recorded metrics describe a trial whose
    truth has since changed, so users are told to retrain.
    """
    current = load_trial_spec(protocol_name).version
    trained_on = sorted({m.cohort_version for m in metas} - {current})
    if not trained_on:
        return []
    return [
        f"trained on virtual trial {', '.join(trained_on)}, but the current trial is {current}: "
        f"its metrics may not hold; retrain with `artds train rtoe --protocol {protocol_name}`"
    ]


def load_evaluation(protocol_name: str, models_dir: Any = None) -> tuple[dict[str, Any], Any]:
    """The saved evaluation payload of a protocol and its (hash-checked) artifact metadata."""

    models_dir = settings.models_dir(models_dir)
    return registry.load_json_artifact(models_dir, RTOE_FAMILY, rtoe_evaluation_name(protocol_name))


def served_rtoe_versions(protocol_name: str, models_dir: Any = None) -> dict[str, str]:
    """Version of each outcome ensemble that loads now (architectures that do not are left out)."""
    out = {}
    for arch in ODM_ARCHS:
        try:
            out[arch] = load_served_model(protocol_name, arch, models_dir).version
        except LOAD_ERRORS:
            continue
    return out


# ------------------------------------------------------------------------------------------------
# GAN


def load_gan(protocol_name: str, models_dir: Any = None) -> tuple[WGANGP, registry.ArtifactMeta]:
    """The saved generator (hash-checked) and its manifest entry."""
    protocol = load_protocol(protocol_name)
    root = settings.models_dir(models_dir)
    state, meta = registry.load_artifact(root, GAN_FAMILY, gan_name(protocol_name))
    with registry.fitting(meta, root):
        config = GANConfig.from_dict(
            {k: v for k, v in meta.config.items() if k not in ("protocol", "budget")}
        )
        return WGANGP.from_state_dict(protocol, config, state), meta


def synthetic_pool(gan: WGANGP, n: int = N_SYNTHETIC) -> pd.DataFrame:
    """The synthetic patients every ODM member draws its planning patients from."""
    return gan.sample(n, seed=SYNTHETIC_SEED)


def load_gan_evaluation(protocol_name: str, models_dir: Any = None) -> dict[str, Any]:
    """The saved distribution checks of a protocol's generator (hash-checked)."""
    payload, _ = registry.load_json_artifact(
        settings.models_dir(models_dir), GAN_FAMILY, gan_evaluation_name(protocol_name)
    )
    return payload


# ------------------------------------------------------------------------------------------------
# Decision makers


class OdmUnavailable(Exception):
    """No decision maker can serve this outcome model; the message says why, in one line."""


def _q_network(state: dict[str, torch.Tensor], config: ODMConfig) -> QNetwork:
    weights = {k[len("q_net.") :]: v.float() for k, v in state.items()
               if k.startswith("q_net.") and k != "q_net.n_actions"}
    n_state = weights["net.0.weight"].shape[1]
    net = QNetwork(n_state, int(state["q_net.n_actions"]), config.hidden, config.n_layers)
    net.load_state_dict(weights, strict=True)
    return net.eval()


def _encoder(protocol: Protocol, state: dict[str, torch.Tensor]) -> TabularTransform:
    return TabularTransform.from_state(
        protocol, {k: state[f"encoder.{k}"] for k in ("mean", "sd", "dose_step_gy")}
    )


def odm_ensemble(
    protocol: Protocol, arch: str, states: Sequence[dict], metas: Sequence[Any]
) -> ODMEnsemble:
    """The ODM ensemble of one architecture from its members' weights and manifest entries.

    Raises registry.ArtifactError when the members disagree (serving rule, planning environment,
    outcome model) or were trained for another dose grid.
    """
    configs, trained_against = [], []
    for m in metas:
        with registry.fitting(m):
            configs.append(ODMConfig.from_dict(m.config["odm"]))
            trained_against.append(str(m.config["rtoe_version"]))
    rules = {(c.serving_rule, c.planning_arte) for c in configs}
    if len(rules) != 1:
        raise registry.ArtifactError(
            f"odm/{protocol.name}_{arch}_*: members disagree on the serving rule or the "
            f"planning environment; retrain with `artds train odm --protocol {protocol.name}`"
        )
    serving_rule, planning_arte = rules.pop()
    rtoe_versions = set(trained_against)
    if len(rtoe_versions) != 1:
        raise registry.ArtifactError(
            f"odm/{protocol.name}_{arch}_*: members were trained against different outcome "
            f"models ({', '.join(sorted(rtoe_versions))}); retrain with "
            f"`artds train odm --protocol {protocol.name}`"
        )
    if len(protocol.dose_grid_gy) != int(states[0]["q_net.n_actions"]):
        raise registry.ArtifactError(
            f"odm/{protocol.name}_{arch}_0.pt: trained for another dose grid "
            f"({int(states[0]['q_net.n_actions'])} doses, the protocol has "
            f"{len(protocol.dose_grid_gy)}); retrain with "
            f"`artds train odm --protocol {protocol.name}`"
        )
    networks = []
    for s, c, m in zip(states, configs, metas, strict=True):
        with registry.fitting(m):
            networks.append(_q_network(s, c))
    with registry.fitting(metas[0]):
        encoder = _encoder(protocol, states[0])
    return ODMEnsemble(
        protocol,
        encoder,
        networks,
        version=ensemble_version(protocol.name, arch, [m.sha256 for m in metas]),
        rtoe_version=rtoe_versions.pop(),
        arch=arch,
        serving_rule=serving_rule,
        planning_arte=planning_arte,
    )


def load_served_odm(protocol_name: str, arch: str, models_dir: Any = None) -> ODMEnsemble:
    """The saved ODM ensemble of one architecture (hash-checked); raises ArtifactError."""
    protocol = load_protocol(protocol_name)
    states, metas = [], []
    for k in range(N_ODM_MEMBERS):
        state, meta = registry.load_artifact(
            settings.models_dir(models_dir), ODM_FAMILY, odm_member_name(protocol_name, arch, k)
        )
        states.append(state)
        metas.append(meta)
    return odm_ensemble(protocol, arch, states, metas)


def odm_for_model(
    protocol_name: str, model: Any, models_dir: Any = None
) -> ODMEnsemble:
    """The ODM ensemble that may serve ``model``, or :class:`OdmUnavailable` saying why not.

    Refuses (never crashes on) a missing or tampered ODM, an outcome model no ODM is trained
    for (reference truth, logistic baseline) and an ODM trained against another version of the
    outcome model (e.g. after ``artds train rtoe`` without ``artds train odm``). An artifact that
    passes its hash check but does not fit this code raises as it is (see
    :func:`decision_maker` for the policy that turns it into a reason).
    """
    arch = str(getattr(model, "name", "")).removeprefix("rtoe-")
    if arch not in ODM_ARCHS:
        raise OdmUnavailable(
            f"no decision maker is trained for {model.label}; the recommendation is the exact "
            "argmax of the reward"
        )
    try:
        odm = load_served_odm(protocol_name, arch, models_dir)
    except registry.ArtifactError as exc:
        first = str(exc).splitlines()[0]
        raise OdmUnavailable(f"decision maker not loaded ({first}); the exact argmax of the "
                             "reward is shown") from exc
    if odm.rtoe_version != model.version:
        raise OdmUnavailable(
            f"decision maker {odm.version} was trained against outcome model {odm.rtoe_version}, "
            f"not the served {model.version}; retrain with `artds train odm --protocol "
            f"{protocol_name}`"
        )
    return odm


def load_odm_evaluation(protocol_name: str, models_dir: Any = None) -> tuple[dict, Any]:
    """The saved ODM evaluation payload (hash-checked) and its manifest entry."""
    return registry.load_json_artifact(
        settings.models_dir(models_dir), ODM_FAMILY, odm_evaluation_name(protocol_name)
    )


# ------------------------------------------------------------------------------------------------
# The catalogue

MODEL_KEYS: tuple[str, ...] = (*ARCH_KEYS, REFERENCE)
"""The outcome models offered for every protocol, in selector order: the learned ensembles, then
the virtual trial's reference truth (which always loads)."""
NO_DECISION_MAKER = "no decision maker is trained for this model; the exact argmax is shown"
"""The note of a model the catalogue did not load (e.g. a Learning Mode version)."""


class ModelUnavailable(Exception):
    """An outcome model of the catalogue is not served; the message is the one-line reason."""


@dataclass(frozen=True)
class ModelChoice:
    """One outcome model of the catalogue (an entry of the app's "Outcome model" selector)."""

    key: str
    """``"glogd"``, ``"single"``, ``"logistic"`` or ``"reference"``."""
    choice_label: str
    """What the selector shows, e.g. "GLoGD-GNN ensemble (served)"."""
    model: OutcomeModel
    """The loaded, read-only model."""


@dataclass(frozen=True)
class Catalogue:
    """A protocol's served outcome models, each loaded once, and their decision makers."""

    protocol_name: str
    """The protocol."""
    choices: Mapping[str, ModelChoice]
    """The models that loaded, keyed as :data:`MODEL_KEYS` and in its order (the reference
    last, always present)."""
    errors: Mapping[str, str]
    """The one-line reason of every model of :data:`MODEL_KEYS` left out (empty when all load)."""
    decision_makers: Mapping[str, tuple[ODMEnsemble | None, str | None]]
    """Per key of :attr:`choices`: (the ODM ensemble serving it, None) or (None, the one-line
    reason the recommendation is the exact argmax)."""

    @property
    def default_key(self) -> str:
        """The model served by default: the GLoGD-GNN ensemble when it loads, else the
        reference."""
        return SERVED_ARCH if SERVED_ARCH in self.choices else REFERENCE

    def decision_maker_for(self, model: OutcomeModel) -> tuple[ODMEnsemble | None, str | None]:
        """The decision-maker entry of ``model`` (one of :attr:`choices`): looked up, never
        loaded; a model from elsewhere gets (None, :data:`NO_DECISION_MAKER`)."""
        for key, choice in self.choices.items():
            if choice.model is model:
                return self.decision_makers[key]
        return None, NO_DECISION_MAKER


def load_outcome_model(protocol_name: str, key: str, models_dir: Any = None) -> OutcomeModel:
    """The outcome model ``key`` of :data:`MODEL_KEYS` (learned ensembles hash-checked).

    Raises:
        ModelUnavailable: the model did not load (or ``key`` is unknown); the message is the
            one-line reason (:func:`failure_reason`).
    """
    if key == REFERENCE:
        return ReferenceModel(protocol_name)
    if key not in ARCH_KEYS:
        raise ModelUnavailable(
            f"unknown outcome model {key!r}; choose one of {', '.join(MODEL_KEYS)}")
    try:
        return load_served_model(protocol_name, key, models_dir)
    except LOAD_ERRORS as exc:
        raise ModelUnavailable(failure_reason(exc)) from exc


def decision_maker(
    protocol_name: str, model: OutcomeModel, models_dir: Any = None
) -> tuple[ODMEnsemble | None, str | None]:
    """(the ODM ensemble serving ``model``, None) or (None, the one-line reason there is none).

    Never raises for an artifact that does not load (:data:`LOAD_ERRORS`): the recommendation is
    then the exact argmax of the reward and the reason its note.
    """
    try:
        return odm_for_model(protocol_name, model, models_dir), None
    except OdmUnavailable as exc:
        return None, one_line(exc)
    except LOAD_ERRORS as exc:
        return None, (f"decision maker could not be loaded ({type(exc).__name__}: "
                      f"{one_line(exc)}); the exact argmax of the reward is shown")


def load_catalogue(protocol_name: str, models_dir: Any = None) -> Catalogue:
    """Every outcome model of :data:`MODEL_KEYS` that loads, each loaded once, the one-line
    reason of each that does not, and the decision maker of each that does.

    Args:
        protocol_name: the protocol.
        models_dir: the models folder (default: ``engine.settings.models_dir()``).
    """
    choices: dict[str, ModelChoice] = {}
    errors: dict[str, str] = {}
    for key in MODEL_KEYS:
        try:
            model = load_outcome_model(protocol_name, key, models_dir)
        except ModelUnavailable as exc:
            errors[key] = str(exc)
            continue
        choices[key] = ModelChoice(key, choice_label(key), model)
    makers = {key: decision_maker(protocol_name, choice.model, models_dir)
              for key, choice in choices.items()}
    return Catalogue(protocol_name, choices, errors, makers)
