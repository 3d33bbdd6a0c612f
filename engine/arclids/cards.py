"""The model cards' tables, written from the saved (hash-checked) evaluations.

Every number in ``docs/model-card-rtoe.md`` and ``docs/model-card-odm.md`` that comes from a
training run sits between generated-block markers::

    <!-- generated: rtoe-calibration nsclc -->
    | ... table ... |
    <!-- end generated -->

:func:`render_block` renders one block from ``models/``; :func:`stale_blocks` lists the blocks of
a card whose text differs from what the saved JSON gives (a unit test keeps it empty), and
:func:`rewrite_card` rewrites them (``python -m engine.arclids.cards`` after a retraining); the
markers' reading and rewriting are :mod:`engine.platform.doc_blocks`'.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import settings
from engine.arclids.architectures import ARCH_KEYS, arch_label
from engine.arclids.rtoe_eval import evaluation_summary
from engine.platform.doc_blocks import block_pattern, rewrite_blocks
from engine.platform.doc_blocks import markdown_table as _table
from engine.platform.doc_blocks import number as _num
from engine.platform.doc_blocks import stale_blocks as _stale_blocks

__all__ = ["BLOCKS", "CARDS", "render_block", "rewrite_card", "stale_blocks"]

_BLOCK = block_pattern("generated", r"[a-z0-9]+")
"""The cards' blocks; the argument is the protocol."""


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _signed(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _rtoe_rows(summary: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    archs = summary["architectures"]
    return [(arch, key, archs[arch][key]) for arch in ARCH_KEYS if arch in archs
            for key in ("tcp", "ntcp")]


def _rtoe_discrimination(summary: dict[str, Any]) -> str:
    rows = []
    for arch, key, res in _rtoe_rows(summary):
        cv = ("n/a" if res.get("cv_auroc_mean") is None
              else f"{res['cv_auroc_mean']:.3f} ± {res['cv_auroc_sd']:.3f}")
        rows.append([arch_label(arch), key.upper(), cv, _num(res["auroc_vs_truth"]),
                     _num(res["auroc_bayes_ceiling"]),
                     _pct(res["monotonicity_violation_rate"])])
    return _table(["arch", "outcome", "CV AUROC (split by patient)", "AUROC vs truth (fresh)",
                   "Bayes ceiling", "monotonicity violations"], rows)


def _rtoe_calibration(summary: dict[str, Any]) -> str:
    rows = []
    for arch, key, res in _rtoe_rows(summary):
        cal, raw = res.get("calibration") or {}, res.get("calibration_raw") or {}
        rows.append([
            arch_label(arch), key.upper(), (res.get("calibrator") or {}).get("method") or "—",
            _signed(raw.get("citl")), _signed(cal.get("citl")),
            _num(cal.get("slope"), 2), _num(cal.get("brier")), _num(cal.get("brier_base_rate")),
            _signed(cal.get("brier_skill")), _num(cal.get("ece")),
            _pct(cal.get("interval_level")), _pct(cal.get("interval_coverage_truth")),
            _num(cal.get("interval_width_mean"), 2),
        ])
    return _table(["arch", "outcome", "map", "CITL raw", "CITL served", "slope", "Brier",
                   "Brier base rate", "Brier skill", "ECE", "interval level",
                   "coverage of truth", "mean width"], rows)


def _rtoe_recalibration(summary: dict[str, Any]) -> str:
    """The candidate maps' squared error against the calibration cohort's truth and the choice."""
    from engine.arclids.calibration import RECALIBRATION_METHODS

    rows = []
    for arch, key, res in _rtoe_rows(summary):
        cal = res.get("calibrator") or {}
        mse = cal.get("candidate_mse") or {}
        rows.append([arch_label(arch), key.upper(),
                     *(_num(mse.get(m), 4) for m in RECALIBRATION_METHODS),
                     cal.get("method") or "—"])
    return _table(["arch", "outcome", *(f"MSE {m}" for m in RECALIBRATION_METHODS), "chosen"],
                  rows)


def _rtoe_dose_response(summary: dict[str, Any]) -> str:
    """The served curves against the truth along the dose grid, on the fresh cohort."""
    rows = []
    for arch, key, res in _rtoe_rows(summary):
        dr = res.get("dose_response") or {}
        rows.append([arch_label(arch), key.upper(), _num(dr.get("grid_mse_truth"), 4),
                     _signed(dr.get("rise_served_median")), _signed(dr.get("rise_true_median")),
                     _num(dr.get("rise_mae"))])
    return _table(["arch", "outcome", "MSE vs truth over the grid", "median rise, served",
                   "median rise, truth", "mean rise error"], rows)


def _rtoe_regret_curve(summary: dict[str, Any]) -> str:
    rows = []
    for row in summary.get("regret_learning_curve", []):
        rows.append([f"{row['n_train_patients']:,}",
                     _num(row["learned_exact_argmax"]["true_reward_loss"]),
                     _num(row["historic"]["true_reward_loss"]),
                     f"{_num(row['best_constant_dose']['true_reward_loss'])} "
                     f"({row['best_constant_dose_gy']:.1f} Gy)"])
    return _table(["training patients", "learned (exact argmax, GLoGD)", "historic clinicians",
                   "best constant dose"], rows)


def _rtoe_learning_curve(summary: dict[str, Any]) -> str:
    curve = summary.get("learning_curve", [])
    sizes = sorted({r["n_train_patients"] for r in curve})
    rows = []
    for arch in ARCH_KEYS:
        for outcome_key, outcome in (("tcp", 0), ("ntcp", 1)):
            got = {r["n_train_patients"]: r for r in curve if r["arch"] == arch
                   and r["outcome"] == list(_outcomes(summary, arch))[outcome]}
            if not got:
                continue
            rows.append([arch_label(arch), outcome_key.upper()] + [
                f"{got[s]['auroc_vs_truth']:.3f} ({got[s]['gap_to_ceiling']:.3f})"
                if s in got else "n/a" for s in sizes])
    return _table(["arch", "outcome", *[f"{s:,} patients" for s in sizes]], rows)


def _outcomes(summary: dict[str, Any], arch: str) -> tuple[str, str]:
    entry = summary["architectures"][arch]
    return entry["tcp"]["outcome"], entry["ntcp"]["outcome"]


def _pm(entry: dict[str, Any] | None, digits: int = 2) -> str:
    if not entry or entry.get("mean") is None:
        return "n/a"
    sem = entry.get("sem") or 0.0
    return f"{entry['mean']:.{digits}f} ± {sem:.{digits}f}"


def _odm_archs(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    archs = summary["architectures"]
    return [(a, archs[a]) for a in ARCH_KEYS if a in archs]


def _odm_metrics(summary: dict[str, Any]) -> str:
    archs = _odm_archs(summary)

    def verdicts(m: dict[str, Any], group: str) -> str:
        v = m["self_evaluation"][group]
        return " / ".join(_pct(v.get(k)) for k in ("good", "bad", "not_sure"))

    def capture(m: dict[str, Any]) -> str:
        return f"{_num(m.get('argmax_reward_ratio'))} / {_num(m.get('gain_captured'))}"

    lines: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("RMSD vs clinic, all (Gy/fx)", lambda m: _pm(m["rmsd_gy"]["overall"])),
        ("MAD vs clinic, all (Gy/fx)", lambda m: _pm(m["mad_gy"]["overall"])),
        ("self-evaluation all: good / bad / not sure", lambda m: verdicts(m, "overall")),
        ("argmax_reward_ratio / gain_captured, trial (served)", capture),
        ("… fresh cohort", lambda m: capture(m["fresh_cohort"])),
        ("best single fixed dose on the model (Gy/fx)",
         lambda m: _num(m.get("best_fixed_dose_gy"), 1)),
        ("mean SEM of the dose (Gy/fx; the Q-networks' fitting noise)",
         lambda m: _num(m.get("dose_sem_mean_gy"), 2)),
        ("mean predicted reward of the chosen dose (q-value, 0–3)",
         lambda m: _num(m.get("q_value_mean"), 2)),
    ]
    rows = [[label, *[fn(m) for _, m in archs]] for label, fn in lines]
    return _table(["metric", *[f"{arch_label(a)} + DDQN" for a, _ in archs]], rows)


def _odm_regret(summary: dict[str, Any]) -> str:
    from engine.arclids.odm_eval import REGRET_LABELS, REGRET_POLICIES

    rows = []
    for arch, m in _odm_archs(summary):
        for cohort, reg in (("fresh cohort", (m.get("fresh_cohort") or {}).get("regret")),
                            ("training trial", m.get("regret"))):
            reg = reg or {}
            cells = []
            for policy in REGRET_POLICIES:
                row = reg.get(policy)
                cells.append("n/a" if row is None else
                             f"{row['true_reward_loss']:.3f} ({row['dose_abs_error_gy']:.2f})")
            advised = reg.get("advised") or {}
            rows.append([arch_label(arch), f"{cohort} (n = {reg.get('n_cases', 'n/a')})", *cells,
                         _pct(advised.get("change_share"))])
    header = ["arch", "cohort", *[REGRET_LABELS[p] for p in REGRET_POLICIES],
              "advised to change"]
    return _table(header, rows)


BLOCKS: dict[str, Callable[[dict[str, Any]], str]] = {
    "rtoe-discrimination": _rtoe_discrimination,
    "rtoe-calibration": _rtoe_calibration,
    "rtoe-recalibration": _rtoe_recalibration,
    "rtoe-dose-response": _rtoe_dose_response,
    "rtoe-regret-curve": _rtoe_regret_curve,
    "rtoe-learning-curve": _rtoe_learning_curve,
    "odm-metrics": _odm_metrics,
    "odm-regret": _odm_regret,
}
"""Generated-block kinds and their renderers (each takes the saved evaluation's summary)."""

_SOURCES: dict[str, Callable[[str, Any], dict[str, Any]]] = {
    "rtoe": evaluation_summary,
}

CARDS = ("model-card-rtoe.md", "model-card-odm.md")
"""The cards under docs/ with generated blocks."""


def _source(kind: str) -> Callable[[str, Any], dict[str, Any]]:
    family = kind.split("-", 1)[0]
    if family == "odm":
        from engine.arclids.odm_eval import odm_summary

        return odm_summary
    return _SOURCES[family]


def render_block(kind: str, protocol_name: str, models_dir: Any = None) -> str:
    """The markdown of one generated block from the saved evaluation under ``models_dir``."""
    if kind not in BLOCKS:
        raise ValueError(f"unknown generated block {kind!r}; known: {', '.join(BLOCKS)}")
    return BLOCKS[kind](_source(kind)(protocol_name, models_dir))


def stale_blocks(card: Path, models_dir: Any = None) -> list[str]:
    """``"<kind> <protocol>"`` of each block of ``card`` that differs from the saved JSON."""
    return _stale_blocks(card, _BLOCK, lambda kind, arg: render_block(kind, arg, models_dir))


def rewrite_card(card: Path, models_dir: Any = None) -> int:
    """Rewrite every generated block of ``card`` from the saved JSON; returns how many changed."""
    return rewrite_blocks(card, _BLOCK, lambda kind, arg: render_block(kind, arg, models_dir))


if __name__ == "__main__":  # python -m engine.arclids.cards: rewrite the cards' tables
    for name in CARDS:
        path = settings.ROOT_DIR / "docs" / name
        print(f"{name}: {rewrite_card(path)} block(s) rewritten", file=sys.stderr)
