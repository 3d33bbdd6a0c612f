"""The model card's section on the Res-VAE's integrated gradients: fold stability, completeness,
the explained models reproducing the evaluation, and the paper's TFF1 claim, written from the
saved (hash-checked) ``interpretation_resvae.json`` (``artds drug explain-resvae``).

Its blocks sit between their own markers (distinct from :mod:`engine.drug.cards` and
:mod:`engine.drug.serving_card`, so each module rewrites only its own)::

    <!-- resvae: drug-resvae-stability all -->
    | ... table ... |
    <!-- end resvae -->

:func:`stale_blocks` lists the blocks whose text differs from what the saved JSON gives (a unit
test keeps it empty); ``python -m engine.drug.resvae_card`` rewrites them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import settings

__all__ = ["BLOCKS", "CARD", "render_block", "rewrite_card", "stale_blocks"]

CARD = "model-card-drug.md"
"""The card under docs/."""

_BLOCK = re.compile(
    r"(<!-- resvae: (?P<kind>[a-z-]+) (?P<arg>[A-Za-z0-9_-]+) -->\n)(?P<body>.*?)"
    r"(<!-- end resvae -->)",
    re.DOTALL,
)


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A markdown table; the first ``text_columns`` columns left-aligned, the rest right."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _stability(saved: dict[str, Any], _arg: str) -> str:
    from engine.drug.data import RT_DRUGS
    from engine.drug.interpret import feature_parts

    summary = saved["stability_summary"]
    rows = []
    for drug, info in sorted(saved["drugs"].items(), key=lambda kv: kv[0].lower()):
        st = info["stability"]
        if st is None or drug not in RT_DRUGS:
            continue
        common = ", ".join(feature_parts(f)["label"] for f in st["in_every_fold"][:5])
        rows.append([drug, _num(info["auroc_out_of_fold"]), _num(st["mean_pairwise_jaccard"], 2),
                     _num(st["min_pairwise_jaccard"], 2), common or "none"])
    random = next((v["stability"]["random_expectation"] for v in saved["drugs"].values()
                   if v["stability"]), None)
    n = len(saved["drugs"])
    return (f"Explained: **{saved['model_label']}** ({saved['choice']['rule']}), {n} drugs. "
            f"The refitted fold models reproduce the evaluation's held-out AUROC for "
            f"{saved['n_auroc_matches_evaluation']} of {n} drugs. Completeness (attributions "
            f"summing to the logit minus the baseline's): median relative gap "
            f"{saved['completeness_median_relative_gap']:.1e}. Top-{summary['k']} features of "
            f"the 5 fold models, mean pairwise Jaccard index: "
            f"{_num(summary['mean_pairwise_jaccard_mean'], 2)} on average over "
            f"{summary['n_drugs']} drugs (range {_num(summary['mean_pairwise_jaccard_min'], 2)}"
            f"–{_num(summary['mean_pairwise_jaccard_max'], 2)}; two random sets: "
            f"{_num(random, 3)}).\n\n"
            + _table(["drug (with RT)", "CV AUROC", "mean Jaccard", "lowest pair",
                      "in every fold's top set (up to 5)"], rows, text_columns=1))


def _gene_check(saved: dict[str, Any], _arg: str) -> str:
    check = saved.get("paper_gene_check")
    if not check:
        return "The checked drug is not explained.\n"
    from engine.figures.drug import direction_text

    out = (f"**{check['gene']} for {check['drug']} in {check['group']}, Res-VAE** "
           f"({check.get('n_lines', 'n/a')} labelled lines): {check['finding']}.\n")
    group = saved["drugs"][check["drug"]]["groups"].get(check["group"])
    if group:
        rows = [[str(f["rank"]), f["label"], _num(f["mean_abs_attribution"], 4),
                 _num(f["mean_attribution"], 4), direction_text(f)] for f in group["top"][:10]]
        out += (f"\nWhat drives the Res-VAE's {check['drug']} predictions in that group "
                f"({group['n_lines']} held-out lines, {group['n_sensitive']} sensitive; "
                f"integrated gradients, {saved['units']} units):\n\n"
                + _table(["rank", "feature", "mean abs. IG", "mean IG", "direction"], rows,
                         text_columns=2))
    return out


BLOCKS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "drug-resvae-stability": _stability,
    "drug-resvae-gene-check": _gene_check,
}
"""Block kind → renderer (the argument is unused: ``all``)."""


def _saved(models_dir: Any = None) -> dict[str, Any]:
    from engine.drug.resvae_explain import load_resvae_interpretation

    return load_resvae_interpretation(models_dir)[0]


def render_block(kind: str, arg: str = "all", models_dir: Any = None,
                 saved: dict[str, Any] | None = None) -> str:
    """The markdown of one block from the saved JSON (or ``saved``)."""
    if kind not in BLOCKS:
        raise ValueError(f"unknown resvae block {kind!r}; known: {', '.join(BLOCKS)}")
    return BLOCKS[kind](saved if saved is not None else _saved(models_dir), arg)


def stale_blocks(card: Path, models_dir: Any = None) -> list[str]:
    """``"<kind> <arg>"`` of every block of ``card`` whose text differs from the saved JSON."""
    text = Path(card).read_text(encoding="utf-8")
    saved = _saved(models_dir)
    return [f"{m['kind']} {m['arg']}" for m in _BLOCK.finditer(text)
            if m["body"] != render_block(m["kind"], m["arg"], saved=saved)]


def rewrite_card(card: Path, models_dir: Any = None) -> int:
    """Rewrite every resvae block of ``card`` from the saved JSON; returns how many changed."""
    path = Path(card)
    text = path.read_text(encoding="utf-8")
    saved = _saved(models_dir)
    changed = 0

    def fill(m: re.Match[str]) -> str:
        nonlocal changed
        body = render_block(m["kind"], m["arg"], saved=saved)
        changed += body != m["body"]
        return m.group(1) + body + m.group(5)

    path.write_text(_BLOCK.sub(fill, text), encoding="utf-8")
    return changed


if __name__ == "__main__":
    n = rewrite_card(settings.ROOT_DIR / "docs" / CARD)
    print(f"rewrote {n} resvae block(s) of docs/{CARD}", file=sys.stderr)
