"""Render the model cards' static figures (PNG) from the saved, hash-checked evaluations.

    .venv/bin/python -m tools.docs_figures

Writes ``docs/img/gan-<protocol>.png`` (synthetic vs real feature histograms with the per-feature
JSD), ``docs/img/odm-<protocol>.png`` (recommendation vs clinical decision, coloured by q),
``docs/img/reliability-<protocol>.png`` and ``docs/img/coverage-<protocol>.png`` (the
outcome models' calibration and interval coverage on the fresh cohort) and
``docs/img/regret-<protocol>.png`` (the recommendation's true-reward loss against the
clinicians and one dose for everyone) with
Debian's Chromium through Playwright (dev dependencies; nothing is downloaded). Skips a protocol
whose artifacts are missing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from engine.arclids.odm_eval import odm_summary
from engine.arclids.rtoe_eval import evaluation_summary
from engine.arclids.serving import load_gan_evaluation, load_odm_evaluation
from engine.core.protocols import PROTOCOL_NAMES, load_protocol
from engine.figures.model_review import interval_coverage_figure, reliability_figure
from engine.figures.odm_review import gan_overlay_figure, odm_decisions_figure, regret_figure
from engine.platform.registry import ArtifactError

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"
_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _png(fig: go.Figure, path: Path, width: int = 1200) -> None:
    from playwright.sync_api import sync_playwright

    height = int(fig.layout.height or 600)
    html = ("<html><head><meta charset='utf-8'><script>" + get_plotlyjs() + "</script></head>"
            "<body style='margin:0'>" + fig.to_html(full_html=False, include_plotlyjs=False,
                                                     default_width=f"{width}px",
                                                     default_height=f"{height}px")
            + "</body></html>")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_file = Path(tmp) / "fig.html"
        page_file.write_text(html, encoding="utf-8")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(page_file.as_uri())
        page.wait_for_selector(".main-svg")
        page.wait_for_timeout(500)
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in PROTOCOL_NAMES:
        protocol = load_protocol(name)
        try:
            _png(gan_overlay_figure(load_gan_evaluation(name), protocol), OUT / f"gan-{name}.png")
            payload, _ = load_odm_evaluation(name)
            _png(odm_decisions_figure(payload, protocol), OUT / f"odm-{name}.png")
            summary = evaluation_summary(name)
            _png(reliability_figure(summary, protocol), OUT / f"reliability-{name}.png")
            _png(interval_coverage_figure(summary, protocol), OUT / f"coverage-{name}.png")
            _png(regret_figure(odm_summary(name)), OUT / f"regret-{name}.png")
            print(f"wrote docs/img/{{gan,odm,reliability,coverage,regret}}-{name}.png")
        except ArtifactError as err:
            print(f"{name}: skipped ({err})")


if __name__ == "__main__":
    main()
