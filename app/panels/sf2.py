"""SF2 panel: intrinsic radiosensitivity from gene expression, with an α for the planner.

Pick a cell line of the training panel or upload expression profiles (``docs/sf2.md``); the
served REPTILE ensemble adapts on a few labelled lines of the sample's subgroup and predicts SF2
with its ensemble spread, shows where that falls among the panel's measured SF2, which genes
drive the prediction, RSI and GARD when the profile has the 10 RSI genes on an absolute scale,
and how well each method did in cross-validation. "Use α in fractionation planner" stores the
implied α (Gy⁻¹); :func:`sf2_server` returns it for the planner panel.
"""

from __future__ import annotations

import pandas as pd
from shiny import module, reactive, render, ui

from app import shared
from app.panels.profile_source import no_profile_note, profile_source_server, profile_source_ui
from app.panels.widgets import figure_card
from app.plots import output_figure, render_figure
from engine.sf2.data import MAX_UPLOAD_BYTES, load_panel, read_expression_upload
from engine.sf2.figures import (
    evaluation_figure,
    gene_influence_figure,
    influence_heatmap_figure,
    sf2_population_figure,
)
from engine.sf2.influence import influence_map

__all__ = ["sf2_server", "sf2_ui"]

CAVEAT = ("Learned on cancer cell lines (Yard et al. 2016, a 9-day proliferation assay), not on "
          "patients' tumours: a research estimate, not clinical evidence.")
DEFAULT_LINE = "HCC827"
"""Cell line selected when the panel opens (a lung adenocarcinoma of the training panel)."""
INFLUENCE_CHOICES = {"gradient": "Gradient (SF2 per +1 sd)",
                     "gradient_x_input": "Gradient × expression"}


def _line_choices() -> dict[str, dict[str, str]]:
    """Panel lines grouped by tissue for the selector: {tissue: {DepMap_ID: label}}."""
    model = shared.SF2_MODEL
    if model is None:
        return {}
    ref = model.reference.sort_values(["tissue", "cell_line"], key=lambda s: s.str.lower())
    out: dict[str, dict[str, str]] = {}
    for rid, row in ref.iterrows():
        hist = f", {row['lung_histology'].replace('_', ' ')}" if row["lung_histology"] else ""
        out.setdefault(row["tissue"].replace("_", " "), {})[str(rid)] = (
            f"{row['cell_line']}{hist}")
    return out


def _default_line() -> str | None:
    model = shared.SF2_MODEL
    if model is None:
        return None
    hits = model.reference.index[model.reference["cell_line"] == DEFAULT_LINE]
    return str(hits[0]) if len(hits) else str(model.reference.index[0])


@module.ui
def sf2_ui() -> ui.TagList:
    if shared.SF2_MODEL is None:
        return ui.card(
            ui.card_header("Radiosensitivity (SF2) from gene expression"),
            ui.div(ui.p(shared.with_code("No trained SF2 model in models/: run "
                                         "`artds train sf2`")),
                   ui.tags.small(shared.with_code(shared.SF2_MODEL_ERROR or ""),
                                 class_="text-muted"), class_="artds-empty"),
        )
    controls = ui.card(
        ui.card_header("Sample"),
        profile_source_ui(
            line_choice="Cell line from the training panel",
            upload_choice="Upload expression profiles",
            line_choices=_line_choices(), selected_line=_default_line(),
            hint=ui.TagList(
                "First column sample_id; optional tissue and histology; then the model's "
                "genes as z-scores on the DepMap panel's scale; raw_<GENE> columns for RSI. "
                f"At most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Examples: ",
                ui.download_link("example_lines", "cell lines"), ", ",
                ui.download_link("example_full", "full profiles with RSI genes"), ".")),
        ui.input_radio_buttons("influence_method", "Gene influence", choices=INFLUENCE_CHOICES,
                               selected="gradient"),
        ui.input_action_button("use_alpha", "Use α in fractionation planner",
                               class_="btn-primary"),
        ui.output_ui("alpha_status"),
    )
    result = ui.card(
        ui.card_header("Predicted radiosensitivity"),
        ui.output_ui("summary"),
        output_figure("population", min_height="0px"),
        output_figure("influence", min_height="0px"),
        full_screen=True,
    )
    return ui.TagList(
        ui.p(CAVEAT, class_="small text-muted mb-2"),
        ui.layout_columns(controls, result, col_widths=(4, 8)),
        figure_card("Gene influence across the sample's subgroup (paper Fig. 7)",
                    "heatmap_note", "heatmap"),
        ui.card(
            ui.card_header("How good is it? Cross-validated error of every method"),
            ui.output_ui("evaluation_note"),
            output_figure("evaluation", min_height="0px"),
            ui.output_ui("genes_table"),
            full_screen=True,
        ),
    )


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


@module.server
def sf2_server(input, output, session) -> reactive.Value[float | None]:
    """Predictions for the chosen sample; returns the α (Gy⁻¹) sent to the planner (or None)."""
    chosen_alpha: reactive.Value[float | None] = reactive.value(None)
    chosen_label: reactive.Value[str] = reactive.value("")
    model = shared.SF2_MODEL
    if model is None:
        return chosen_alpha
    tissues = sorted(set(model.reference["tissue"]))
    uploaded = profile_source_server(input, lambda path: read_expression_upload(
        path, required_genes=model.genes, panel_genes=load_panel().genes, tissues=tissues))

    @reactive.calc
    def uploaded_predictions():
        up = uploaded()
        if up is None or not len(up.expression.columns):
            return None
        return {p.sample_id: p for p in model.predict_upload(
            up, influence_method=input.influence_method())}

    @reactive.calc
    def prediction():
        """The shown prediction (SF2Prediction), or None."""
        if input.source() == "line":
            rid = input.line()
            if not rid or rid not in model.reference.index:
                return None
            return model.predict_lines([rid], influence_method=input.influence_method())[0]
        preds = uploaded_predictions()
        if preds is None:
            return None
        sid = input.sample() if "sample" in input else None
        return preds.get(sid) or next(iter(preds.values()))

    @reactive.calc
    def subgroup_ids() -> list[str]:
        p = prediction()
        if p is None:
            return []
        exclude = input.line() if input.source() == "line" else None
        _, pool = model.support_pool(p.tissue, p.histology, exclude)
        ids = list(pool.index)
        if exclude is not None:
            ids.append(exclude)
        return ids

    @render.ui
    def summary():
        p = prediction()
        if p is None:
            up = uploaded()
            if input.source() == "upload" and up is not None and up.has_full_rsi:
                return _rsi_only(up)
            return no_profile_note(input.source())
        adapted = p.adapted_on
        if adapted["n_lines"]:
            how = (f"adapted on {min(adapted['n_lines'], model.config.support_size)} of the "
                   f"{adapted['n_lines']} labelled lines of its {adapted['subgroup']}")
        else:
            how = "not adapted (no tissue given, or no labelled line of it): the ensemble's "\
                  "initialisation scores it"
        rows = [
            ui.tags.tr(ui.tags.th("Predicted SF2"),
                       ui.tags.td(ui.strong(f"{p.sf2:.3f} ± {p.sf2_sd:.3f}"),
                                  class_="num sf2-value")),
            ui.tags.tr(ui.tags.th("Implied α", ui.br(),
                                  ui.tags.small(f"α/β = {p.alpha_beta_gy:g} Gy")),
                       ui.tags.td(f"{p.alpha_per_gy:.3f} ± {p.alpha_per_gy_sd:.3f} Gy⁻¹",
                                  class_="num")),
        ]
        if p.measured_sf2 is not None:
            rows.append(ui.tags.tr(ui.tags.th("Measured SF2"),
                                   ui.tags.td(f"{p.measured_sf2:.3f}", class_="num")))
        if p.rsi is not None:
            reg = p.gard_regimen or {}
            rows.append(ui.tags.tr(ui.tags.th("RSI (10 genes)"),
                                   ui.tags.td(f"{p.rsi:.3f}", class_="num")))
            rows.append(ui.tags.tr(
                ui.tags.th("GARD", ui.br(), ui.tags.small(
                    f"{reg.get('n_fractions')} × {reg.get('dose_per_fraction_gy'):g} Gy, "
                    "β 0.05 Gy⁻²")),
                ui.tags.td(_fmt(p.gard, ".1f"), class_="num")))
        notes = [ui.p(f"{p.sample_id}: {how}. The ± is the spread over "
                      f"{len(model.members)} ensemble members × {model.config.n_support_draws} "
                      "support draws, not a calibrated interval.", class_="small mb-1")]
        if p.measured_sf2 is not None:
            notes.append(ui.p("This line was in the training data (its own label is never used "
                              "to adapt, but the initialisation saw it): the cross-validated "
                              "error below is the honest measure.", class_="small text-muted"))
        if p.rsi is None:
            notes.append(ui.p("RSI and GARD need the 10 RSI genes on an absolute scale "
                              "(raw_<GENE> columns); the panel's z-scores cannot be ranked "
                              "within a sample.", class_="small text-muted"))
        return ui.TagList(ui.tags.table(ui.tags.tbody(*rows),
                                        class_="table table-sm sf2-summary w-auto"), *notes)

    def _rsi_only(up) -> ui.Tag:
        from engine.sf2.rsi import gard, rsi

        values = rsi(up.raw_rsi)
        rows = [ui.tags.tr(ui.tags.td(sid), ui.tags.td(f"{r:.3f}", class_="num"),
                           ui.tags.td(f"{float(gard(r)):.1f}", class_="num"))
                for sid, r in zip(up.samples.index, values, strict=True)]
        return ui.TagList(
            ui.p("No panel genes in this file: RSI and GARD (30 × 2 Gy) only.", class_="small"),
            ui.tags.table(ui.tags.thead(ui.tags.tr(ui.tags.th("Sample"), ui.tags.th("RSI"),
                                                   ui.tags.th("GARD"))),
                          ui.tags.tbody(*rows), class_="table table-sm w-auto"))

    @render_figure
    def population():
        p = prediction()
        if p is None:
            return None
        return sf2_population_figure(
            model.reference, sample_id=p.sample_id, sf2=p.sf2, sf2_sd=p.sf2_sd,
            subgroup_ids=subgroup_ids(), subgroup_label=p.adapted_on["subgroup"],
            measured_sf2=p.measured_sf2)

    @render_figure
    def influence():
        p = prediction()
        if p is None:
            return None
        return gene_influence_figure(p.top_genes(len(model.genes)), p.sample_id,
                                     input.influence_method())

    @reactive.effect
    @reactive.event(input.use_alpha)
    def _use_alpha() -> None:
        p = prediction()
        if p is None:
            chosen_alpha.set(None)
            chosen_label.set("")
            return
        chosen_alpha.set(float(p.alpha_per_gy))
        chosen_label.set(f"{p.sample_id} (SF2 {p.sf2:.3f} ± {p.sf2_sd:.3f}, α/β "
                         f"{p.alpha_beta_gy:g} Gy)")

    @render.ui
    def alpha_status():
        alpha = chosen_alpha()
        if alpha is None:
            if input.use_alpha() > 0:
                return ui.div("No prediction to send: pick a line or upload a profile.",
                              class_="small text-danger mt-2")
            return None
        return ui.div(f"α = {alpha:.3f} Gy⁻¹ from {chosen_label()} is set for the "
                      "fractionation planner.", class_="alert alert-info small py-2 mt-2",
                      id=session.ns("alpha_confirmation"))

    @reactive.calc
    def subgroup_map() -> pd.DataFrame | None:
        ids = [i for i in subgroup_ids() if i in model.reference.index]
        if len(ids) < 2:
            return None
        preds = model.predict_lines(ids, influence_method=input.influence_method())
        influence = [[p.influence[g] for g in model.genes] for p in preds]
        lines = pd.DataFrame({"cell_line": [p.sample_id for p in preds],
                              "subgroup": [p.adapted_on["subgroup"].split(": ", 1)[-1]
                                           for p in preds]})
        return influence_map(pd.DataFrame(influence).to_numpy(), model.genes, lines,
                             [p.sf2 for p in preds])

    @render.ui
    def heatmap_note():
        if subgroup_map() is None:
            return ui.div("No labelled subgroup lines for this sample.", class_="artds-empty")
        return ui.p("Each row is a labelled line of the same subgroup, adapted on the others "
                    "and sorted by its predicted SF2 (in brackets); colour is the gene's "
                    "influence on that line's prediction (red raises SF2).",
                    class_="small text-muted mb-1")

    @render_figure
    def heatmap():
        table = subgroup_map()
        return None if table is None else influence_heatmap_figure(table, model.genes)

    @render.ui
    def evaluation_note():
        ev = shared.SF2_EVALUATION
        if ev is None:
            return ui.div(shared.with_code(
                "No saved evaluation: run `artds sf2 evaluate --save`."), class_="artds-empty")
        c = ev["config"]
        lung = ev["settings"].get("lung", {}).get("methods", {})
        pan = ev["settings"].get("pan_cancer", {}).get("methods", {})

        def mae(methods, m):
            v = methods.get(m, {}).get("mae", {})
            return "–" if v.get("mean") is None else f"{v['mean']:.3f} ± {v['sd']:.3f}"

        return ui.TagList(ui.p(
            f"{c['n_repeats']} repeats of a 5-fold split stratified by subgroup; every method "
            "scores the same held-out lines. Honest protocol: a held-out line is predicted "
            f"after adapting on up to {c['support_size']} labelled lines of its subgroup, never "
            "on its own SF2. Held-out MAE, lung / pan-cancer: predict-the-mean "
            f"{mae(lung, 'train_mean')} / {mae(pan, 'train_mean')}; served REPTILE "
            f"{mae(lung, 'reptile_served')} / {mae(pan, 'reptile_served')}. Grey bars (⚠) "
            "follow the paper's protocol and are scored on labels they were given: "
            f"REPTILE fine-tuned on the line's own SF2 {mae(lung, 'reptile_finetune_on_own_label')}"
            f", OLS in-sample {mae(lung, 'ols_top20_in_sample')} (lung). Dotted line: "
            "predict-the-mean.", class_="small mb-1"))

    @render_figure
    def evaluation():
        ev = shared.SF2_EVALUATION
        return None if ev is None else evaluation_figure(ev)

    @render.ui
    def genes_table():
        sel = model.selection.head(len(model.genes))
        ev = shared.SF2_EVALUATION
        cv = {}
        if ev is not None and "pan_cancer" in ev["settings"]:
            cv = {d["gene"]: d["top20_frequency"]
                  for d in ev["settings"]["pan_cancer"]["gene_stability"]}
        head = ui.tags.tr(ui.tags.th("Rank"), ui.tags.th("Gene"),
                          ui.tags.th("Mean LASSO coef", class_="num"),
                          ui.tags.th("Selected in", ui.br(), ui.tags.small("of 50 LASSO fits"),
                                     class_="num"),
                          ui.tags.th("In top 20", ui.br(), ui.tags.small("of the CV folds"),
                                     class_="num"))
        rows = [ui.tags.tr(ui.tags.td(str(int(r["rank"]))), ui.tags.td(gene),
                           ui.tags.td(f"{r['mean_coef']:+.4f}", class_="num"),
                           ui.tags.td(f"{100 * r['selection_frequency']:.0f} %", class_="num"),
                           ui.tags.td("–" if gene not in cv else f"{100 * cv[gene]:.0f} %",
                                      class_="num"))
                for gene, r in sel.iterrows()]
        return ui.TagList(
            ui.h6("The served model's 20 genes (pan-cancer selection) and their stability",
                  class_="mt-3"),
            ui.div(ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows),
                                 class_="table table-sm metrics-table"),
                   class_="table-responsive"))

    @render.download(filename="sf2_cell_lines.csv")
    def example_lines():
        yield shared.SF2_EXAMPLE_FILES["sf2_cell_lines.csv"].read_bytes()

    @render.download(filename="sf2_full_profiles.csv")
    def example_full():
        yield shared.SF2_EXAMPLE_FILES["sf2_full_profiles.csv"].read_bytes()

    return chosen_alpha
