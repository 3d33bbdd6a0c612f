"""The drug model card's tables, written from the saved (hash-checked) evaluation.

Every number of ``docs/model-card-drug.md`` that comes from the evaluation sits between
generated-block markers::

    <!-- generated: drug-summary leave_cell_line_out -->
    | ... table ... |
    <!-- end generated -->

:func:`render_block` renders one block from ``models/drug/evaluation.json``;
:func:`stale_blocks` lists the blocks whose text differs from what the saved JSON gives (a unit
test keeps it empty) and :func:`rewrite_card` rewrites them (``python -m engine.drug.cards``
after a new evaluation); the markers' reading and rewriting are
:mod:`engine.platform.doc_blocks`'.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import settings
from engine.drug.data import RT_DRUGS
from engine.platform.doc_blocks import Renderer, block_pattern, rewrite_blocks
from engine.platform.doc_blocks import markdown_table as _table
from engine.platform.doc_blocks import number as _num
from engine.platform.doc_blocks import stale_blocks as _stale_blocks

__all__ = ["BLOCKS", "CARD", "render_block", "rewrite_card", "stale_blocks"]

CARD = "model-card-drug.md"
"""The card under docs/."""

_BLOCK = block_pattern("generated", r"[a-z_]+")
"""The card's evaluation blocks; the argument is a setting, or ``all``."""

MODEL_LABELS = {
    "naive_mean_effects": "naive mean effects (uses the line's other drugs)",
    "drug_rate": "drug's training rate",
    "random_forest": "random forest (tuned)",
    "xgboost": "XGBoost (tuned)",
    "resvae_frozen": "Res-VAE, encoder frozen",
    "resvae_unfrozen": "Res-VAE, encoder fine-tuned",
}
"""Row labels of the card's tables."""

SETTING_LABELS = {"leave_cell_line_out": "leave-cell-line-out (5 folds)",
                  "leave_tissue_out": "leave-tissue-out"}
"""Setting names as the card reads them."""

PAPER = {"auroc": 0.81, "f1": 0.92}
"""The paper's headline numbers on GDSC (abstract: mean AUC 0.81, F1 0.92)."""


def _pm(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("mean") is None:
        return "n/a"
    return f"{entry['mean']:.3f} ± {entry['sd']:.3f}"


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _models(info: dict[str, Any]) -> list[str]:
    """The setting's models in table order (the saved JSON has its keys sorted)."""
    return [m for m in MODEL_LABELS if m in info["summary"]] + sorted(
        m for m in info["summary"] if m not in MODEL_LABELS)


def _summary(result: dict[str, Any], setting: str) -> str:
    info = result["settings"][setting]
    rows = [[_label(m), _pm(s["auroc"]), _pm(s["auprc_sensitive"]), _pm(s["f1"]),
             _pm(s["f1_all_resistant"]), str(s["auroc"]["n"])]
            for m, s in ((m, info["summary"][m]) for m in _models(info))]
    return _table(["model", "AUROC", "AUPRC, sensitive class", "F1 (resistant)",
                   "F1 of calling every line resistant", "drugs"], rows)


def _ci(d: dict[str, Any] | None) -> str:
    if not d or d.get("mean") is None:
        return "n/a"
    interval = ("" if d["ci_low"] is None else
                f" [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
    return f"{d['mean']:+.3f}{interval}; better on {d['n_better']}/{d['n_drugs']}"


def _comparisons(result: dict[str, Any], setting: str) -> str:
    info = result["settings"][setting]
    best = info["best_tree"]
    naive = info["comparisons"].get("vs_naive_mean_effects", {})
    tree = info["comparisons"].get(f"vs_{best}", {}) if best else {}
    level = next((d["level"] for d in (*naive.values(), *tree.values())), 0.95)
    rows = [[_label(m), _ci(naive.get(m)), _ci(tree.get(m))]
            for m in _models(info) if m not in ("naive_mean_effects", best)]
    if best:
        rows.insert(0, [_label(best), _ci(naive.get(best)), "(reference)"])
    header = ["model", f"ΔAUROC vs naive mean effects [{100 * level:.0f} % CI]",
              f"ΔAUROC vs {_label(best) if best else 'best tree'} [{100 * level:.0f} % CI]"]
    return _table(header, rows)


def _rt_drugs(result: dict[str, Any], setting: str) -> str:
    info = result["settings"][setting]
    models = _models(info)
    rows = []
    for drug in result["data"]["evaluated"]:
        if drug not in RT_DRUGS:
            continue
        first = next((info["per_drug"][m][drug] for m in models
                      if drug in info["per_drug"][m]), None)
        if first is None:
            continue
        cells = [_num(info["per_drug"][m].get(drug, {}).get("auroc")) for m in models]
        rows.append([drug, RT_DRUGS[drug], f"{first['n_lines']} ({first['n_sensitive']})",
                     *cells])
    return _table(["drug", "RT context", "lines (sensitive)", *[_label(m) for m in models]],
                  rows)


def _tissues(result: dict[str, Any], setting: str) -> str:
    info = result["settings"][setting]
    models = _models(info)
    rows = []
    by_tissue = info.get("by_tissue", {})
    for tissue in [sp["name"] for sp in info["splits"] if sp["name"] in by_tissue]:
        t = by_tissue[tissue]
        rank = max((v["n"] for v in t["auroc"].values()), default=0)
        rows.append([tissue.replace("_", " "), str(t["n_lines"]), str(rank),
                     *[_num(t["auroc"][m]["mean"]) if t["auroc"][m]["n"] else "n/a"
                       for m in models]])
    return _table(["held-out tissue", "lines", "drugs rankable in it",
                   *[f"{_label(m)}, mean AUROC" for m in models]], rows)


def _best(result: dict[str, Any], setting: str, family: str) -> tuple[str | None, Any]:
    info = result["settings"][setting]
    names = [m for m, v in result["models"].items() if v["family"] == family]
    if not names:
        return None, None
    best = max(names, key=lambda m: info["summary"][m]["auroc"]["mean"] or -1.0)
    return best, info["summary"][best]


def _paper(result: dict[str, Any], _arg: str) -> str:
    rows = []
    for setting, info in result["settings"].items():
        vae, vae_s = _best(result, setting, "resvae")
        tree, tree_s = _best(result, setting, "tree")
        naive = info["summary"].get("naive_mean_effects")
        trivial = info["summary"].get("drug_rate")
        where = SETTING_LABELS.get(setting, setting)
        rows.append([f"mean AUROC over drugs, {where}",
                     f"{PAPER['auroc']:.2f} (split not stated in the abstract)",
                     "not run" if vae is None else f"{_pm(vae_s['auroc'])} ({_label(vae)})",
                     "not run" if tree is None else f"{_pm(tree_s['auroc'])} ({_label(tree)})",
                     _pm(naive["auroc"]) if naive else "not run",
                     _pm(trivial["auroc"]) + " (drug's rate)" if trivial else "n/a"])
        rows.append([f"mean F1 over drugs, {where}", f"{PAPER['f1']:.2f}",
                     "not run" if vae is None else _pm(vae_s["f1"]),
                     "not run" if tree is None else _pm(tree_s["f1"]),
                     _pm(naive["f1"]) if naive else "not run",
                     _pm(trivial["f1_all_resistant"]) + " (every line called resistant)"
                     if trivial else "n/a"])
    return _table(["claim", "paper", "ours: Res-VAE (best variant)", "ours: best tree",
                   "ours: naive mean effects", "ours: trivial"], rows)


def _data(result: dict[str, Any], _arg: str) -> str:
    d = result["data"]
    sources: dict[str, int] = {}
    for drug in d["evaluated"]:
        src = d["drugs"][drug]["label_source"]
        sources[src] = sources.get(src, 0) + 1
    rows = [
        ["cell lines (features: expression z, mutation, copy number)",
         f"{d['n_lines']} × {d['n_features']}"],
        ["drugs in the catalogue / evaluated", f"{len(d['drugs'])} / {len(d['evaluated'])}"],
        ["label source of the evaluated drugs",
         ", ".join(f"{k}: {v}" for k, v in sorted(sources.items()))],
        ["not evaluated (too few lines of a class)",
         "; ".join(f"{k} ({v})" for k, v in d["not_evaluated"].items()) or "none"],
        ["radiotherapy drugs not held with a threshold",
         "; ".join(f"{k}: {v}" for k, v in d["not_held"].items()) or "none"],
        ["data version", d["version"]],
        ["time of the run: wall (2 workers on a shared machine) / CPU of its jobs",
         f"{result['elapsed_s'] / 60:.1f} min / {sum(result.get('cpu_s', {}).values()) / 60:.1f}"
         " min"],
    ]
    return _table(["", ""], rows)


BLOCKS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "drug-summary": _summary,
    "drug-comparisons": _comparisons,
    "drug-rt": _rt_drugs,
    "drug-tissues": _tissues,
    "drug-paper": _paper,
    "drug-data": _data,
}
"""Generated-block kinds and their renderers ``(saved evaluation, argument) → markdown``; the
argument is a setting, or ``all``."""


def render_block(kind: str, arg: str, models_dir: Any = None,
                 result: dict[str, Any] | None = None) -> str:
    """The markdown of one generated block from the saved evaluation (or ``result``)."""
    if kind not in BLOCKS:
        raise ValueError(f"unknown generated block {kind!r}; known: {', '.join(BLOCKS)}")
    if result is None:
        from engine.drug.evaluate import load_evaluation

        result, _ = load_evaluation(models_dir)
    return BLOCKS[kind](result, arg)


def _renderer(models_dir: Any) -> Renderer:
    """Blocks from the saved evaluation, read once at the first block."""
    from engine.drug.evaluate import load_evaluation

    saved = functools.cache(lambda: load_evaluation(models_dir)[0])
    return lambda kind, arg: render_block(kind, arg, result=saved())


def stale_blocks(card: Path, models_dir: Any = None) -> list[str]:
    """``"<kind> <arg>"`` of each block of ``card`` that differs from the saved JSON."""
    return _stale_blocks(card, _BLOCK, _renderer(models_dir))


def rewrite_card(card: Path, models_dir: Any = None) -> int:
    """Rewrite every generated block of ``card`` from the saved JSON; returns how many changed."""
    return rewrite_blocks(card, _BLOCK, _renderer(models_dir))


if __name__ == "__main__":  # python -m engine.drug.cards: rewrite the card's tables
    path = settings.ROOT_DIR / "docs" / CARD
    print(f"{CARD}: {rewrite_card(path)} block(s) rewritten", file=sys.stderr)
