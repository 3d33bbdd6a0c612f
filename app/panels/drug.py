"""Systemic therapy panel: how likely a tumour is to resist each drug, from its molecular profile.

Pick a cell line of the training data (held-out status stated: the served models were trained on
every labelled line, so the panel shows beside each served prediction the prediction of the
cross-validation fold model that never saw the line, and the line's measured response) or
upload profiles (``docs/data-format.md``, "Drug-resistance profiles"). Per drug: the calibrated
probability of resistance with its range over the bagged models, the model's
leave-cell-line-out AUROC beside the naive baseline's (a weak drug model is visibly weak), and
for a chosen drug the features behind this profile's prediction and the features that drive the
model in the sample's tissue.

The prediction and its explanation run in a worker thread (:func:`app.runtime.
recommendation_pool`), never on the event loop; a progress bar shows while they run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from shiny import module, reactive, render, ui

from app import shared
from app.panels.profile_source import no_profile_note, profile_source_server, profile_source_ui
from app.panels.widgets import Progress, number, progress_bar, unavailable
from app.plots import output_figure, render_figure
from app.runtime import recommendation_pool
from engine.drug.upload import MAX_UPLOAD_BYTES, read_profile_upload
from engine.figures.drug import (
    CELL_LINE_NOTE,
    direction_text,
    drug_probability_figure,
    group_label,
    is_weak,
    profile_genes_figure,
    tissue_genes_figure,
)

__all__ = ["drug_server", "drug_ui"]

DEFAULT_LINE = "HCC827"
"""Cell line selected when the panel opens: a lung adenocarcinoma (EGFR-mutant) line."""
DEFAULT_DRUG = "Gefitinib"
"""Drug whose genes are shown first."""
TOP_FEATURES = 15
"""Features in the "why this prediction" bars."""
POLL_SECONDS = 0.25
"""How often a running computation's progress is read."""
CAVEAT = ("Learned on cancer cell lines (GDSC drug screens, DepMap omics), not on patients: a "
          "research estimate, not clinical evidence. Resistance = ln IC50 at or above the "
          "drug's threshold in a 72-hour viability assay.")



def _load_resvae_interpretation() -> dict[str, Any] | None:
    """The Res-VAE's saved integrated gradients (``artds drug explain-resvae``), or None when
    there are none (the tissue bars then show the trees only)."""
    from engine.platform import registry

    try:
        from engine.drug.resvae_explain import load_resvae_interpretation

        return load_resvae_interpretation()[0]
    except (ImportError, registry.ArtifactError, KeyError, TypeError, ValueError, OSError):
        return None


RESVAE_INTERPRETATION = _load_resvae_interpretation()
"""Integrated gradients of the evaluation's Res-VAE models, shown beside the trees' SHAP."""


def _line_choices() -> dict[str, dict[str, str]]:
    """Lines grouped by lineage: {lineage: {DepMap id: "name (sub-subtype)"}}."""
    data = shared.DRUG_DATA
    if data is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    order = sorted(range(len(data.lines)), key=lambda i: (data.lineages[i].lower(),
                                                          data.cell_line_names[i].lower()))
    subs = data.lineage_sub_subtypes or ("",) * len(data.lines)
    for i in order:
        sub = subs[i].replace("_", " ")
        label = data.cell_line_names[i] + (f" ({sub})" if sub else "")
        out.setdefault(data.lineages[i].replace("_", " "), {})[data.lines[i]] = label
    return out


def _default_line() -> str | None:
    data = shared.DRUG_DATA
    if data is None:
        return None
    if DEFAULT_LINE in data.cell_line_names:
        return data.lines[data.cell_line_names.index(DEFAULT_LINE)]
    return data.lines[0]


def _drug_choices() -> dict[str, str]:
    models = shared.DRUG_MODELS
    if models is None:
        return {}
    out = {}
    for drug in models.drugs:
        ctx = models.info(drug)["rt_context"]
        out[drug] = f"{drug} (with RT: {ctx})" if ctx else drug
    return out


@module.ui
def drug_ui() -> ui.TagList:
    models = shared.DRUG_MODELS
    if models is None:
        return ui.card(ui.card_header("Systemic therapy: drug resistance"),
                       unavailable("No trained drug models in models/: run "
                                   "`artds drug evaluate --save`, then `artds train drug`",
                                   shared.DRUG_MODELS_ERROR))
    drugs = _drug_choices()
    controls = ui.card(
        ui.card_header("Profile"),
        profile_source_ui(
            line_choice="Cell line from the training data", upload_choice="Upload profiles",
            line_choices=_line_choices(), selected_line=_default_line(),
            hint=ui.TagList(
                "First column sample_id; optional tissue; then the 706 panel genes as "
                "expression z-scores on the DepMap panel's scale; optional mut_<GENE> (0/1) "
                f"and cn_<GENE> (copy number) columns. At most "
                f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Example: ",
                ui.download_link("example", "six lines no model was trained on"), ".")),
        ui.input_checkbox("rt_only", "Only drugs given with radiotherapy (lung, liver)",
                          value=True),
        ui.input_select("drug", "Genes behind the prediction for", choices=drugs,
                        selected=DEFAULT_DRUG if DEFAULT_DRUG in drugs else next(iter(drugs)),
                        width="100%"),
        ui.output_ui("progress"),
    )
    result = ui.card(
        ui.card_header("Predicted resistance per drug"),
        ui.output_ui("summary"),
        ui.output_ui("table"),
        output_figure("probabilities", min_height="0px"),
        full_screen=True,
    )
    return ui.TagList(
        ui.p(CAVEAT, class_="small text-muted mb-2"),
        ui.layout_columns(controls, result, col_widths=(4, 8)),
        ui.layout_columns(
            ui.card(ui.card_header("Why this prediction"), ui.output_ui("genes_note"),
                    output_figure("genes", min_height="0px"), full_screen=True),
            ui.card(ui.card_header("What drives the model in this tissue"),
                    ui.output_ui("tissue_note"), output_figure("tissue", min_height="0px"),
                    full_screen=True),
            col_widths=(6, 6)),
    )


def _compute(x: np.ndarray, drug: str, progress: Progress) -> dict[str, Any]:
    """Every drug's prediction for one profile and the chosen drug's explanation (runs in a
    worker thread)."""
    models = shared.DRUG_MODELS
    progress(0.1, f"predicting {len(models.drugs)} drugs")
    preds = models.predict(x)[0]
    progress(0.5, f"explaining {drug} (SHAP)")
    genes = models.explain(x, drug, TOP_FEATURES)[0]
    progress(1.0, "done")
    return {"predictions": preds, "drug": drug, "genes": genes}


@module.server
def drug_server(input, output, session) -> None:
    models = shared.DRUG_MODELS
    data = shared.DRUG_DATA
    if models is None or data is None:
        return
    tracker = Progress()
    tissues = sorted(set(data.lineages))
    defaults = models.payload["defaults"]
    uploaded = profile_source_server(input, lambda path: read_profile_upload(
        path, feature_names=models.feature_names, tissues=tissues,
        default_mutation=defaults["mut"], default_copy_number=defaults["cn"]),
        notes=lambda up: up.notes)

    @reactive.calc
    def profile() -> dict[str, Any] | None:
        """The shown profile: label, features ``[1, F]``, tissue, the data set's line id (or
        None for an upload)."""
        if input.source() == "line":
            rid = input.line()
            if not rid or rid not in data.lines:
                return None
            i = data.lines.index(rid)
            sub = data.lineage_sub_subtypes[i] if data.lineage_sub_subtypes else ""
            return {"label": data.cell_line_names[i], "x": data.x[i:i + 1],
                    "tissue": data.lineages[i], "sub_subtype": sub, "line": rid}
        up = uploaded()
        if up is None:
            return None
        ids = list(up.samples.index)
        sid = input.sample() if "sample" in input and input.sample() in ids else ids[0]
        k = ids.index(sid)
        return {"label": sid, "x": up.x[k:k + 1], "tissue": up.samples["tissue"].iloc[k],
                "sub_subtype": "", "line": None}

    @reactive.extended_task
    async def compute(x: np.ndarray, drug: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(recommendation_pool(), _compute, x, drug, tracker)

    @reactive.effect
    def _start() -> None:
        p = profile()
        drug = input.drug()
        if p is None or not drug:
            return
        tracker(0.0, "queued")
        compute(p["x"], drug)

    @reactive.calc
    def outcome() -> dict[str, Any] | None:
        """The finished computation for the shown profile and drug (None while running)."""
        if compute.status() != "success":
            return None
        return compute.result()

    @render.ui
    def progress():
        status = compute.status()
        if status == "error":
            try:
                compute.result()
            except Exception as exc:  # shown to the user, one line
                return ui.div(f"The prediction failed: {type(exc).__name__}: {exc}",
                              class_="artds-error small mt-2")
        if status != "running":
            return None
        reactive.invalidate_later(POLL_SECONDS)
        share, message = tracker.get()
        return ui.div(progress_bar(share, class_="progress mt-2", style="height: 8px"),
                      ui.tags.small(f"{message}…", class_="text-muted"), class_="drug-progress")

    def _shown_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        p = profile()
        for pred in result["predictions"]:
            info = models.info(pred.drug)
            if input.rt_only() and not info["rt_context"]:
                continue
            row = {**pred.to_dict(), "low": pred.low, "high": pred.high,
                   "rt_context": info["rt_context"], "n_lines": info["n_lines"],
                   "n_sensitive": info["n_sensitive"], "held_out": None}
            if p is not None and p["line"] is not None:
                row["held_out"] = models.held_out(pred.drug, p["line"])
            rows.append(row)
        return sorted(rows, key=lambda r: r["p_resistant"])

    @render.ui
    def summary():
        p = profile()
        if p is None:
            return no_profile_note(input.source())
        pct = round(100 * models.level)
        parts = [ui.p(
            ui.strong(p["label"]), f" ({p['tissue'] or 'tissue not given'}"
            + (f", {p['sub_subtype'].replace('_', ' ')}" if p["sub_subtype"] else "") + "). ",
            f"Model: {models.label} (version {models.version}); one model family for every "
            "drug, chosen by the highest mean leave-cell-line-out AUROC. The range is the "
            f"{pct} % range over bagged models: model uncertainty, not a coverage guarantee.",
            class_="small mb-1")]
        if p["line"] is not None:
            n_seen = sum(models.held_out(d, p["line"]) is not None for d in models.drugs)
            parts.append(ui.p(
                f"{p['label']} is a training line: the served models were trained on its "
                f"measured response for {n_seen} of {len(models.drugs)} drugs, so their "
                "prediction for it is in-sample. “Held out” is the prediction of the "
                "cross-validation model that never saw this line (calibrated on the other "
                "folds) — the honest one — beside its measured response. A dash: the line was "
                "not tested with that drug, so the served model never saw it there.",
                class_="small text-muted mb-1"))
        else:
            up = uploaded()
            if up is not None and up.notes:
                parts.append(ui.p("; ".join(up.notes) + ".", class_="small text-muted mb-1"))
        return ui.TagList(*parts)

    @render.ui
    def table():
        result = outcome()
        if result is None or profile() is None:
            return None
        rows = _shown_rows(result)
        line = profile()["line"] is not None
        pct = round(100 * models.level)
        head = [ui.tags.th("Drug"), ui.tags.th("P(resistant)", class_="num"),
                ui.tags.th(f"{pct} % range", ui.br(), ui.tags.small("bagged models"),
                           class_="num"),
                ui.tags.th("Base rate", class_="num")]
        if line:
            head += [ui.tags.th("Held out", ui.br(), ui.tags.small("fold model"),
                                class_="num"), ui.tags.th("Measured")]
        head += [ui.tags.th("CV AUROC", ui.br(), ui.tags.small("leave-cell-line-out"),
                            class_="num"),
                 ui.tags.th("Naive AUROC", ui.br(), ui.tags.small("same splits"),
                            class_="num")]
        body = []
        for r in rows:
            weak = is_weak(r["cv_auroc"], r["naive_auroc"])
            cells = [ui.tags.td(r["drug"], ui.tags.small(f" · RT: {r['rt_context']}",
                                                         class_="text-muted")
                                if r["rt_context"] else None),
                     ui.tags.td(ui.strong(probability(r["p_resistant"])), class_="num"),
                     ui.tags.td(probability_range(r["low"], r["high"]), class_="num"),
                     ui.tags.td(number(r["resistant_rate"], ".2f"), class_="num")]
            if line:
                held = r["held_out"]
                cells += [ui.tags.td("–" if held is None else
                                     probability(held["p_held_out"]), class_="num"),
                          ui.tags.td("not tested" if held is None else held["measured"])]
            cells += [ui.tags.td(number(r["cv_auroc"], ".2f"),
                                 ui.tags.span(" ≤ naive", class_="badge text-bg-warning ms-1")
                                 if weak else None, class_="num"),
                      ui.tags.td(number(r["naive_auroc"], ".2f"), class_="num")]
            body.append(ui.tags.tr(*cells, class_="drug-weak" if weak else None,
                                   style="opacity: 0.6" if weak else None,
                                   **{"data-drug": r["drug"]}))
        note = ui.p(
            "Sorted from most likely sensitive. CV AUROC: how well the served model family "
            "ranked held-out cell lines for this drug; naive: a baseline that reads the "
            "held-out line's measured responses to other drugs (not available for a new "
            "tumour), so a model at or below it is weak (“≤ naive”, greyed).",
            class_="small text-muted mb-1")
        return ui.TagList(note, ui.div(
            ui.tags.table(ui.tags.thead(ui.tags.tr(*head)), ui.tags.tbody(*body),
                          class_="table table-sm metrics-table drug-table"),
            class_="table-responsive"))

    @render_figure
    def probabilities():
        result = outcome()
        p = profile()
        if result is None or p is None:
            return None
        return drug_probability_figure(_shown_rows(result), p["label"], models.level)

    @render.ui
    def genes_note():
        result = outcome()
        if result is None:
            return None
        drug = result["drug"]
        pred = next(x for x in result["predictions"] if x.drug == drug)
        return ui.p(
            f"{drug}: P(resistant) {probability(pred.p_resistant)}. Each bar is a feature's "
            "SHAP value for this profile in the served point model: red pushes toward "
            "resistance, blue toward sensitivity; they add up to the model's raw output minus "
            "its average (before calibration). " + CELL_LINE_NOTE + ".",
            class_="small text-muted mb-1")

    @render_figure
    def genes():
        result = outcome()
        p = profile()
        if result is None or p is None:
            return None
        return profile_genes_figure(result["genes"], result["drug"], p["label"])

    def _tissue_group(drug: str) -> tuple[str, dict[str, Any]] | None:
        interp = shared.DRUG_INTERPRETATION
        if interp is None or drug not in interp["drugs"]:
            return None
        groups = interp["drugs"][drug]["groups"]
        p = profile()
        candidates = []
        if p is not None and p["tissue"]:
            if p["sub_subtype"]:
                candidates.append(f"{p['tissue']} / {p['sub_subtype']}")
            candidates.append(p["tissue"])
        candidates.append("all")
        for name in candidates:
            if name in groups:
                return name, groups[name]
        return None

    @render.ui
    def tissue_note():
        interp = shared.DRUG_INTERPRETATION
        if interp is None:
            return unavailable("No saved interpretation: run `artds train drug`.",
                               shared.DRUG_INTERPRETATION_ERROR)
        drug = input.drug()
        got = _tissue_group(drug)
        if got is None:
            return ui.div(f"No ranking saved for {drug}.", class_="artds-empty")
        name, entry = got
        st = interp["drugs"][drug]["stability"]
        parts = [ui.p(f"{drug} in {group_label(name)}: features ranked by mean |SHAP| over "
                      f"{entry['n_lines']} labelled lines, each explained by the "
                      "cross-validation model that never saw it. Colour: direction (red: higher "
                      "expression or copy number, or a mutation, pushes toward resistance).",
                      class_="small text-muted mb-1")]
        if st:
            parts.append(ui.p(
                f"Stability: the top {st['k']} features of the {st['n_folds']} fold models "
                f"overlap by a mean Jaccard index of {st['mean_pairwise_jaccard']:.2f} (random "
                f"sets: {st['random_expectation']:.3f}); in every fold's top {st['k']}: "
                + (", ".join(_label(f) for f in st["in_every_fold"][:6]) or "none") + ".",
                class_="small text-muted mb-1"))
        check = interp.get("paper_gene_check")
        if check and check["drug"] == drug:
            parts.append(ui.p(f"The method paper names {check['gene']} for {drug} in lung "
                              f"adenocarcinoma: {check['finding']}.",
                              class_="small mb-1"))
        top = entry["top"][:3]
        if top:
            parts.append(ui.p("Top: " + "; ".join(f"{f['label']} ({direction_text(f)})"
                                                  for f in top) + ".",
                              class_="small mb-1"))
        vae = _resvae_group(drug, name)
        if vae is not None:
            payload, got = RESVAE_INTERPRETATION, vae
            vst = payload["drugs"][drug]["stability"]
            text = (f"Lower bars: {payload['model_label']}, integrated gradients (logit units) "
                    f"over the same held-out lines; top: " + "; ".join(
                        f"{f['label']} ({direction_text(f)})" for f in got["top"][:3]) + ".")
            if vst:
                text += (f" Top-{vst['k']} Jaccard across folds "
                         f"{vst['mean_pairwise_jaccard']:.2f}.")
            vcheck = payload.get("paper_gene_check")
            if vcheck and vcheck["drug"] == drug:
                text += f" {vcheck['gene']}: {vcheck['finding']}."
            parts.append(ui.p(text, class_="small text-muted mb-1"))
        return ui.TagList(*parts)

    def _resvae_group(drug: str, group: str) -> dict[str, Any] | None:
        payload = RESVAE_INTERPRETATION
        if payload is None:
            return None
        return payload["drugs"].get(drug, {}).get("groups", {}).get(group)

    @render_figure
    def tissue():
        interp = shared.DRUG_INTERPRETATION
        drug = input.drug()
        got = _tissue_group(drug)
        if interp is None or got is None:
            return None
        name, entry = got
        vae = RESVAE_INTERPRETATION
        return tissue_genes_figure(
            entry, drug, name, interp["units"],
            model_label=str(interp.get("model", "tree model")).replace("_", " "),
            resvae=_resvae_group(drug, name),
            resvae_label=vae["model_label"] if vae is not None else "")

    @render.download(filename="drug_profiles.csv")
    def example():
        yield shared.DRUG_EXAMPLE_FILE.read_bytes()


def probability(value: float | None) -> str:
    """A probability to two decimals, never rounded to a certainty: "> 0.99", "< 0.01"."""
    if value is None:
        return "–"
    if value > 0.99:
        return "> 0.99"
    if value < 0.01:
        return "< 0.01"
    return f"{value:.2f}"


def probability_range(low: float, high: float) -> str:
    """``"0.25–0.78"``; ``"0.94 to > 0.99"`` at an end; one value when both ends read alike."""
    a, b = probability(low), probability(high)
    if a == b:
        return a
    return f"{a} to {b}" if ">" in b or "<" in a else f"{a}–{b}"


def _label(feature: str) -> str:
    from engine.drug.interpret import feature_parts

    return feature_parts(feature)["label"]
