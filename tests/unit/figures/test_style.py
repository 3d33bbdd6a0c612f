"""The shared style (engine/figures/style.py), used by the ARCliDS, planner and SF2 figures, and
the figures package's layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.figures.style import CASE_COLOURS


def test_figures_package_only_maps_its_modules():
    """engine.figures re-exports nothing: every figure is imported from its submodule."""
    import types

    import engine.figures

    public = {n: v for n, v in vars(engine.figures).items() if not n.startswith("_")}
    assert all(isinstance(v, types.ModuleType) for v in public.values()), sorted(public)
    assert "outcome_space" in engine.figures.__doc__ and "style" in engine.figures.__doc__


def test_style_has_a_colour_and_a_dash_per_architecture():
    from engine.arclids.architectures import ARCH_KEYS, REFERENCE
    from engine.figures.style import ARCH_COLOURS, ARCH_DASHES, arch_colour, arch_dash, arch_order

    assert set(ARCH_COLOURS) == set(ARCH_DASHES) == {*ARCH_KEYS, REFERENCE}
    assert len(set(ARCH_COLOURS.values())) == len(ARCH_COLOURS)  # told apart by colour
    assert len(set(ARCH_DASHES.values())) == len(ARCH_DASHES)  # and in greyscale by dash
    assert arch_colour("unknown", 0) in CASE_COLOURS and arch_dash("unknown") == "solid"
    assert arch_order(["x", REFERENCE, *reversed(ARCH_KEYS)]) == [*ARCH_KEYS, REFERENCE, "x"]


def test_style_escapes_user_text_and_builds_rgba():
    from engine.figures.style import case_colour, fmt_dose, rgba, safe

    assert safe("<b>P&1</b>") == "&lt;b&gt;P&amp;1&lt;/b&gt;"
    assert safe('say "hi"') == 'say "hi"'  # quotes are fine inside plotly labels
    assert rgba("#0072B2", 0.5) == "rgba(0,114,178,0.5)"
    assert fmt_dose(3.0) == "3" and fmt_dose(2.75) == "2.75"
    assert case_colour(len(CASE_COLOURS)) == case_colour(0)


def test_base_layout_defaults_and_overrides():
    from engine.figures.style import FONT, base_layout

    fig = go.Figure()
    base_layout(fig, "Title", 420, "rev", subtitle_text="second line",
                margin_px=dict(t=96), legend_y=-0.2)
    layout = fig.layout
    assert layout.height == 420 and layout.uirevision == "rev"
    assert layout.font.family == FONT["family"] and layout.title.text == "Title"
    assert layout.title.subtitle.text == "second line"
    assert (layout.margin.l, layout.margin.r, layout.margin.t, layout.margin.b) == (70, 30, 96, 60)
    assert layout.legend.y == -0.2 and layout.legend.orientation == "h"


def test_sf2_figures_escape_sample_ids_in_the_shared_style():
    from engine.figures.style import FONT
    from engine.sf2.figures import (
        gene_influence_figure,
        influence_heatmap_figure,
        sf2_population_figure,
    )

    reference = pd.DataFrame({"sf2": np.linspace(0.2, 0.9, 30)},
                             index=[f"L{i}" for i in range(30)])
    sid = "<img src=x>"
    pop = sf2_population_figure(reference, sample_id=sid, sf2=0.5, sf2_sd=0.05,
                                subgroup_ids=["L1", "L2", "missing"], subgroup_label="tissue: <i>",
                                measured_sf2=0.45)
    texts = [pop.layout.title.text, *(t.name for t in pop.data)]
    assert not any("<img" in t or "<i>" in t for t in texts)
    assert any("&lt;img src=x&gt;" in t for t in texts)
    assert pop.layout.font.family == FONT["family"] and pop.layout.legend.y == -0.3
    top = [{"gene": "G1", "influence_per_sd": 0.01, "z": 1.0},
           {"gene": "G2", "influence_per_sd": -0.02, "z": -0.5}]
    inf = gene_influence_figure(top, sid)
    assert "<img" not in inf.layout.title.text and list(inf.data[0].y) == ["G2", "G1"]
    table = pd.DataFrame({"cell_line": [sid], "subgroup": ["lung"], "predicted_sf2": [0.4],
                          "G1": [0.01]})
    heat = influence_heatmap_figure(table, ["G1"])
    assert heat.data[0].y[0].startswith("&lt;img")
