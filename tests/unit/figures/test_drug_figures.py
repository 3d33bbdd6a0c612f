"""Drug figures: one dot and whisker per drug, weak models grey, signed gene bars, tissue bars
coloured by direction, user text escaped."""

from __future__ import annotations

from engine.figures.drug import (
    direction_text,
    drug_probability_figure,
    group_label,
    is_weak,
    profile_genes_figure,
    tissue_genes_figure,
)
from engine.figures.style import BLUE, HISTOGRAM_GREY, VERMILLION

ROWS = [
    {"drug": "Gefitinib", "p_resistant": 0.6, "low": 0.5, "high": 0.7, "resistant_rate": 0.88,
     "cv_auroc": 0.72, "naive_auroc": 0.58},
    {"drug": "Cisplatin", "p_resistant": 0.9, "low": 0.88, "high": 0.93, "resistant_rate": 0.91,
     "cv_auroc": 0.60, "naive_auroc": 0.74},
]


def test_probability_figure_marks_weak_drugs_grey_and_escapes_the_sample():
    fig = drug_probability_figure(ROWS, "<b>T1</b>", 0.8)
    dots = fig.data[1]
    assert list(dots.y) == ["Cisplatin", "Gefitinib"]  # first row drawn on top
    assert list(dots.marker.color) == [HISTOGRAM_GREY, VERMILLION]
    assert list(dots.error_x.array) == [0.93 - 0.9, 0.7 - 0.6]
    assert "&lt;b&gt;T1&lt;/b&gt;" in fig.layout.title.text
    assert "80 % range" in fig.layout.title.subtitle.text
    assert is_weak(None, 0.5) and is_weak(0.6, 0.6) and not is_weak(0.7, 0.6)


def test_gene_bars_are_signed_and_tissue_bars_coloured_by_direction():
    feats = [{"label": "EGFR expression", "shap": -0.03, "value": 2.5, "units": "probability",
              "modality": "expr"},
             {"label": "KRAS mutation", "shap": 0.02, "value": 1.0, "units": "probability",
              "modality": "mut"}]
    fig = profile_genes_figure(feats, "Gefitinib", "HCC827")
    assert list(fig.data[0].x) == [0.02, -0.03]
    assert list(fig.data[0].marker.color) == [VERMILLION, BLUE]
    entry = {"n_lines": 39, "n_sensitive": 5, "top": [
        {"label": "EGFR expression", "mean_abs_shap": 0.01, "mean_shap": -0.002,
         "direction": -0.6, "modality": "expr"},
        {"label": "TP53 mutation", "mean_abs_shap": 0.005, "mean_shap": 0.001,
         "direction": 0.05, "modality": "mut"}]}
    fig = tissue_genes_figure(entry, "Gefitinib", "lung / NSCLC_adenocarcinoma", "probability")
    assert list(fig.data[0].marker.color) == [HISTOGRAM_GREY, BLUE]
    assert "lung, NSCLC adenocarcinoma" in fig.layout.title.text
    assert direction_text(entry["top"][0]) == "higher → sensitive"
    assert direction_text({"direction": 0.4, "modality": "mut"}) == "mutated → resistant"
    assert direction_text({"direction": None}) == "constant in these lines"
    assert group_label("all") == "all lines"


def test_tissue_bars_of_both_models_each_labelled_with_its_model():
    tree = {"n_lines": 39, "n_sensitive": 5, "top": [
        {"label": "EGFR expression", "mean_abs_shap": 0.01, "mean_shap": -0.002,
         "direction": -0.6, "modality": "expr"}]}
    vae = {"n_lines": 39, "n_sensitive": 5, "top": [
        {"label": "TP63 expression", "mean_abs_attribution": 0.3, "mean_attribution": 0.1,
         "direction": 0.5, "modality": "expr"},
        {"label": "MLF1 copy number", "mean_abs_attribution": 0.2, "mean_attribution": -0.1,
         "direction": None, "modality": "cn"}]}
    fig = tissue_genes_figure(tree, "Gefitinib", "lung", "probability",
                              model_label="random forest", resvae=vae,
                              resvae_label="Res-VAE, encoder fine-tuned")
    assert [t.name for t in fig.data] == ["random forest", "Res-VAE, encoder fine-tuned"]
    assert list(fig.data[1].x) == [0.2, 0.3] and list(fig.data[1].marker.color) == [
        HISTOGRAM_GREY, VERMILLION]
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["<b>random forest</b><br>mean |SHAP| (probability)",
                      "<b>Res-VAE, encoder fine-tuned</b><br>mean |integrated gradients| (logit)"]
    assert fig.layout.xaxis2.title.text == "mean |integrated gradients| (logit)"


def test_empty_figures_say_so():
    assert drug_probability_figure([], "x", 0.8).layout.annotations[0].text == (
        "No prediction to show")
    assert profile_genes_figure([], "D", "x").layout.annotations
