"""The model card's section on the served drug models: calibration, interval, interpretation and
the paper's TFF1 claim, written from the saved (hash-checked) ``served.json`` and
``interpretation.json``.

Its blocks sit between their own markers (distinct from the evaluation tables' markers of
:mod:`engine.drug.cards`, so each module rewrites only its own)::

    <!-- served: drug-calibration all -->
    | ... table ... |
    <!-- end served -->

:func:`stale_blocks` lists the blocks whose text differs from what the saved JSON gives (a unit
test keeps it empty); ``python -m engine.drug.serving_card`` rewrites them after
``artds train drug`` (the markers' reading and rewriting: :mod:`engine.platform.doc_blocks`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import settings
from engine.platform.doc_blocks import Renderer, block_pattern, markdown_table, rewrite_blocks
from engine.platform.doc_blocks import number as _num
from engine.platform.doc_blocks import stale_blocks as _stale_blocks

__all__ = ["BLOCKS", "CARD", "render_block", "rewrite_card", "stale_blocks"]

CARD = "model-card-drug.md"
"""The card under docs/."""

_BLOCK = block_pattern("served", r"[A-Za-z0-9_-]+")
"""The served-model blocks; the argument is unused (``all``)."""


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A markdown table; the first ``text_columns`` columns left-aligned, the rest right."""
    return markdown_table(header, rows, text_columns)


def _choice(saved: dict[str, Any], _arg: str) -> str:
    served, interp = saved["served"], saved["interpretation"]
    choice = served["choice"]
    rows = [[m + (" **(served)**" if m == served["model"] else ""), _num(v)]
            for m, v in sorted(choice["mean_auroc"].items(), key=lambda kv: -(kv[1] or 0))]
    note = f" Note: {choice['note']}." if choice["note"] else ""
    s = served["summary"]
    interval = served["interval"]
    return (_table(["model (leave-cell-line-out, saved evaluation)", "mean AUROC over drugs"],
                   rows)
            + f"\nServed: **{served['model_label']}** for {s['n_drugs']} drugs, chosen by the "
              f"rule: {choice['rule']}.{note} The refitted fold models reproduce the "
              f"evaluation's AUROC for {s['n_auroc_matches_evaluation']} of {s['n_drugs']} "
              f"drugs. Interval: {round(100 * interval['level'])} % range over "
              f"{interval['n_members']} bagged models ({interval['meaning']}). SHAP units: "
              f"{interp['units']}.\n")


def _calibration(saved: dict[str, Any], _arg: str) -> str:
    s = saved["served"]["summary"]
    rows = [
        ["raw out-of-fold probability", _num(s["brier_raw_mean"]), _num(s["ece_raw_mean"])],
        ["Platt, cross-fitted (honest)", _num(s["brier_cross_fitted_mean"]),
         _num(s["ece_cross_fitted_mean"])],
        ["Platt, fitted and measured on the same predictions", _num(s["brier_in_sample_mean"]),
         _num(s["ece_in_sample_mean"])],
        ["the drug's base rate (other folds)", _num(s["brier_base_rate_mean"]), "—"],
    ]
    return (_table(["probability (mean over drugs)", "Brier", "ECE (10 equal-count bins)"],
                   rows)
            + f"\nThe calibrated Brier score beats the base rate's for "
              f"{s['n_drugs_better_than_base_rate_brier']} of {s['n_drugs']} drugs. The "
              f"model's AUROC is above the naive baseline's for {s['n_drugs_auroc_above_naive']}"
              f" of {s['n_drugs']} drugs (mean {_num(s['auroc_out_of_fold_mean'])} vs "
              f"{_num(s['naive_auroc_mean'])}). With expression only (mutations taken as none, "
              f"copy numbers as diploid, as for an upload without those columns) the "
              f"out-of-fold AUROC is {_num(s['auroc_expression_only_mean'])} on average.\n")


def _rt(saved: dict[str, Any], _arg: str) -> str:
    served = saved["served"]
    rows = []
    for drug, info in sorted(served["drugs"].items(), key=lambda kv: kv[0].lower()):
        if not info["rt_context"]:
            continue
        m, cv = info["metrics"], info["cv"]
        rows.append([drug, info["rt_context"], f"{info['n_lines']} ({info['n_sensitive']})",
                     _num(cv["auroc"]), _num(cv["naive_auroc"]),
                     _num(m["auroc_expression_only"]), _num(m["brier_cross_fitted"]),
                     _num(m["brier_base_rate"]), _num(m["ece_cross_fitted"])])
    return _table(["drug", "with RT", "lines (sensitive)", "CV AUROC", "naive AUROC",
                   "AUROC, expression only", "Brier (calibrated)", "Brier (base rate)",
                   "ECE"], rows, text_columns=2)


def _stability(saved: dict[str, Any], _arg: str) -> str:
    interp = saved["interpretation"]
    summary = interp["stability_summary"]
    rows = []
    for drug, info in sorted(interp["drugs"].items(), key=lambda kv: kv[0].lower()):
        st = info["stability"]
        if st is None or not saved["served"]["drugs"][drug]["rt_context"]:
            continue
        from engine.drug.interpret import feature_parts

        common = ", ".join(feature_parts(f)["label"] for f in st["in_every_fold"][:5])
        rows.append([drug, _num(st["mean_pairwise_jaccard"], 2),
                     _num(st["min_pairwise_jaccard"], 2), common or "none"])
    random = next((v["stability"]["random_expectation"] for v in interp["drugs"].values()
                   if v["stability"]), None)
    return (f"Top-{summary['k']} features of the 5 fold models, mean pairwise Jaccard index: "
            f"{_num(summary['mean_pairwise_jaccard_mean'], 2)} on average over "
            f"{summary['n_drugs']} drugs (range {_num(summary['mean_pairwise_jaccard_min'], 2)}"
            f"–{_num(summary['mean_pairwise_jaccard_max'], 2)}; two random sets: "
            f"{_num(random, 3)}).\n\n"
            + _table(["drug (with RT)", "mean Jaccard", "lowest pair",
                      "in every fold's top set (up to 5)"], rows, text_columns=1))


def _gene_check(saved: dict[str, Any], _arg: str) -> str:
    interp = saved["interpretation"]
    check = interp.get("paper_gene_check")
    if not check:
        return "The checked drug is not served.\n"
    from engine.figures.drug import direction_text

    out = (f"**{check['gene']} for {check['drug']} in {check['group']}** "
           f"({check.get('n_lines', 'n/a')} labelled lines): {check['finding']}.\n")
    group = interp["drugs"][check["drug"]]["groups"].get(check["group"])
    if group:
        rows = [[str(f["rank"]), f["label"], _num(f["mean_abs_shap"], 4),
                 _num(f["mean_shap"], 4), direction_text(f)] for f in group["top"][:10]]
        out += (f"\nWhat drives the served model's {check['drug']} predictions in that group "
                f"({group['n_lines']} held-out lines, {group['n_sensitive']} sensitive; "
                f"{interp['units']} units):\n\n"
                + _table(["rank", "feature", "mean abs. SHAP", "mean SHAP", "direction"], rows,
                         text_columns=2))
    return out


BLOCKS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "drug-served-choice": _choice,
    "drug-served-calibration": _calibration,
    "drug-served-rt": _rt,
    "drug-served-stability": _stability,
    "drug-served-gene-check": _gene_check,
}
"""Block kind → renderer (the argument is unused: ``all``)."""


def _saved(models_dir: Any = None) -> dict[str, Any]:
    from engine.drug.evaluate import FAMILY
    from engine.drug.interpret import INTERPRETATION_NAME
    from engine.drug.serving import SERVED_NAME
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    served, _ = registry.load_json_artifact(root, FAMILY, SERVED_NAME)
    interp, _ = registry.load_json_artifact(root, FAMILY, INTERPRETATION_NAME)
    return {"served": served, "interpretation": interp}


def render_block(kind: str, arg: str = "all", models_dir: Any = None,
                 saved: dict[str, Any] | None = None) -> str:
    """The markdown of one block from the saved JSON (or ``saved``)."""
    if kind not in BLOCKS:
        raise ValueError(f"unknown served block {kind!r}; known: {', '.join(BLOCKS)}")
    return BLOCKS[kind](saved if saved is not None else _saved(models_dir), arg)


def _renderer(models_dir: Any) -> Renderer:
    """Blocks from the saved JSON, read once at the first block."""
    saved = functools.cache(lambda: _saved(models_dir))
    return lambda kind, arg: render_block(kind, arg, saved=saved())


def stale_blocks(card: Path, models_dir: Any = None) -> list[str]:
    """``"<kind> <arg>"`` of every block of ``card`` whose text differs from the saved JSON."""
    return _stale_blocks(card, _BLOCK, _renderer(models_dir))


def rewrite_card(card: Path, models_dir: Any = None) -> int:
    """Rewrite every served block of ``card`` from the saved JSON; returns how many changed."""
    return rewrite_blocks(card, _BLOCK, _renderer(models_dir))


if __name__ == "__main__":
    n = rewrite_card(settings.ROOT_DIR / "docs" / CARD)
    print(f"rewrote {n} served block(s) of docs/{CARD}", file=sys.stderr)
