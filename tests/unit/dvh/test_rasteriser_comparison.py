"""docs/plan-import.md shows the saved comparison of the engine's rasteriser with dicompyler-core
(docs/bench/dvh_rasterisers.json, written by ``python -m tests.bench.dvh_rasterisers --save …
--docs``), never numbers from memory; the saved engine rows and truths are what the code gives
again; the project does not depend on dicompyler."""

from __future__ import annotations

import json

import pytest

from engine.dvh.accuracy import block
from engine.dvh.phantom import write_phantom
from engine.settings import ROOT_DIR
from tests.bench.dvh_rasterisers import (
    ANALYTIC_CASES,
    BLOCK_KEY,
    DICOMPYLER_VARIANTS,
    DOC,
    DOCS_JSON,
    ENGINE_METHODS,
    _analytic,
    _engine_rows,
    docs_table,
)


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(DOCS_JSON.read_text(encoding="utf-8"))


def test_the_page_shows_the_saved_comparison(saved):
    body = block(DOC.read_text(encoding="utf-8"), BLOCK_KEY)
    assert body is not None, f"docs/plan-import.md lacks the {BLOCK_KEY} block"
    assert body == docs_table(saved), (
        "rewrite the block with `python -m tests.bench.dvh_rasterisers --docs`")


def test_every_method_ran_on_every_structure(saved):
    assert saved["dicompyler"]["dicompyler-core"] == "0.5.6"
    assert saved["dicompyler"]["pydicom"].startswith("2.")
    methods = [*ENGINE_METHODS, *DICOMPYLER_VARIANTS]
    expected = {(c["case"], s, m) for c in saved["cases"] for s in c["truth"] for m in methods}
    assert {(r["case"], r["structure"], r["method"]) for r in saved["rows"]} == expected
    assert [c["case"] for c in saved["cases"]][:len(ANALYTIC_CASES)] == [
        f"{name}@{grid:g}mm" for name, grid in ANALYTIC_CASES]


@pytest.mark.parametrize("case", [("sphere_r7", 4.0), ("box_gradient", 2.5)])
def test_the_saved_truth_and_engine_rows_are_what_the_code_gives(saved, case, tmp_path):
    name, grid_mm = case
    key = f"{name}@{grid_mm:g}mm"
    phantom, structure, _, v_dose, truth = _analytic(name, grid_mm)
    saved_case = next(c for c in saved["cases"] if c["case"] == key)
    assert saved_case["truth"][structure] == pytest.approx(truth, abs=1e-6)
    paths = write_phantom(phantom, tmp_path)
    for row in _engine_rows(key, paths, {structure: v_dose}):
        old = next(r for r in saved["rows"] if (r["case"], r["structure"], r["method"])
                   == (key, structure, row["method"]))
        assert old["metrics"] == pytest.approx(row["metrics"], abs=1e-6)


def test_the_project_does_not_depend_on_dicompyler():
    text = (ROOT_DIR / "pyproject.toml").read_text(encoding="utf-8").lower()
    assert "dicompyler" not in text
    for folder in ("engine", "app"):
        for path in (ROOT_DIR / folder).rglob("*.py"):
            assert "import dicompyler" not in path.read_text(encoding="utf-8")
            assert "from dicompyler" not in path.read_text(encoding="utf-8")
