"""Help: a short help box on every panel and the user guide (the "Help" tab).

The boxes are ``<details>`` elements: closed by default, opened by click or keyboard (Tab to the
summary, Enter), and printed open or closed as the user left them. All text is static.
"""

from __future__ import annotations

from shiny import ui

from app.auth import duration_text
from engine import settings
from engine.arclids.recommend import ADVICE_THRESHOLD
from engine.platform.report import DISCLAIMER

__all__ = ["APP_DISCLAIMER", "HELP", "help_ui", "panel_help"]

APP_DISCLAIMER = DISCLAIMER.replace("in this report", "that artds shows")
"""The report's disclaimer, worded for the app (the guide is not a report)."""

HELP: dict[str, tuple[str, list[str]]] = {
    "data": ("Help: entering patients", [
        "Load an example, upload a CSV file (format: docs/data-format.md) or type a patient "
        "into the form. Every case you add is saved in the database as a new input version; "
        "nothing saved is ever overwritten, and an identical re-entry adds no version.",
        "Choose up to seven cases in the sidebar to compare them side by side on every panel "
        "(one colour each). “Saved patients” reloads stored cases after a restart: it offers "
        "the 100 most recently changed; type part of a case label to find any other. The "
        "history lists every stored version with who stored it and when.",
        "Physician notes belong to the patient: press “Save notes” to store them (each save is "
        "a new version); they are shown again whenever the patient is loaded and go into the "
        "report. Notes are plain text: markup is shown as typed, never run.",
        "To compare the recommendation with your own choice, give your proposed adaptive dose "
        "per fraction: in the form, as the column proposed_dose_adapt_gy of a file, or under "
        "“Your proposed dose” for a shown case (saved as a new input version).",
        "“Import plan (DICOM-RT or DVH)” reads the plan's RTDOSE, RTSTRUCT (and RTPLAN), or "
        "one DVH table, finds the structures the protocol needs (a drop-down per role to "
        "choose another), computes its dosimetric features as the protocol defines them, "
        "draws the DVHs and checks the dose constraints. “Use these features” fills the form's "
        "dosimetric fields and gives them to the form's patient or a loaded case; the report "
        "then carries the plan (format and method: docs/plan-import.md).",
        "When the outcome is known, record the adaptive dose given and the outcomes under "
        "“Follow-up”: Learning Mode trains on such cases.",
        "Download the inputs as CSV (it uploads again unchanged) or as a printable page.",
    ]),
    "outcome": ("Help: reading the outcome space", [
        "Each curve runs over the candidate adaptive doses per fraction: x is the tumour "
        "control probability (TCP), y the normal-tissue complication probability (NTCP). Good "
        "outcomes lie bottom right.",
        "The background is the reward tcp·(1 − ntcp) plus the goal bonus; the shaded boxes "
        "are the goals (population goal, default goal) of the protocol.",
        "The star marks the recommended dose, the open square your proposal, the open circle "
        "the dose chosen with the slider. Where the outcome model states an interval, an "
        "ellipse at every fourth dose spans that interval of TCP and of NTCP (its level, e.g. "
        "80 %, is printed above the plot), tilted by how the models' TCP and NTCP move "
        "together: wide ellipses mean the models are unsure. The thick band along a curve is "
        "the best dose's interval: how far the outcome models' uncertainty moves the best "
        "dose.",
        "The reward, and a decision maker's q-value, is a predicted reward on a 0–3 scale "
        "(tcp·(1 − ntcp) plus the goal bonuses), not a confidence. The decision maker's ± SEM "
        "is only its own fitting noise, not the outcome models' uncertainty. A recommendation "
        "whose NTCP exceeds the protocol's default goal carries a caution.",
        "With your proposal, the card shows it beside the recommendation (TCP, NTCP and "
        "predicted reward with their intervals), the probability that the recommendation's "
        "reward is truly higher (the share of plausible outcome models saying so, calibrated "
        "against the virtual trial's truth), and the advice: change only when that "
        f"probability reaches {ADVICE_THRESHOLD:.2f}, otherwise keep your proposal.",
        "Below the cases, the track record: on a fresh virtual cohort no model was trained on, "
        "the mean true reward lost against each patient's best dose by following the "
        "recommendation, the advice, the virtual trial's clinicians' own rule and one dose for "
        "everyone (lower is better; the best in bold). Where the clinicians' rule did better, "
        "weigh the recommendation accordingly.",
        "Zoom by dragging a box, pan with the mode bar, double-click (or the house icon) to "
        "reset; the zoom is kept while you move the dose.",
        "The dose-response plot shows TCP, NTCP and the predicted reward against the dose, with "
        "the interval as a shaded band (its level in the subtitle), the best dose's interval "
        "shaded across both rows and your proposal dotted.",
    ]),
    "population": ("Help: where the patient sits", [
        "Grey bars: the complete cases of the protocol's virtual trial, feature by feature. "
        "Coloured lines: the shown cases; hover for the value and its percentile. A case far "
        "outside the population is one the models have seen little like.",
    ]),
    "report": ("Help: the report", [
        "One self-contained HTML file: it opens offline, its plots stay interactive, and it "
        "prints on A4. It carries the user, the time, the input hash of every case, the model "
        "versions, the audit-trail ids of the recommendations, the notes and the disclaimer.",
    ]),
    "review": ("Help: model review", [
        "Cross-validated and fresh-cohort AUROC of the learned outcome estimators, next to the "
        "Bayes ceiling (the best any model can reach on the virtual trial). The contrast plot "
        "shows why the GLoGD-GNN is served: its curves can only rise with dose.",
        "Calibration is measured against the truth on a fresh virtual cohort no model was "
        "trained on: the reliability diagram (predicted probability against the observed rate "
        "and the true probability) and the coverage of the stated interval. The "
        "recommendation is judged by its true-reward loss against the virtual trial's best "
        "dose (lower is better), side by side with the historic clinicians, one constant dose "
        "for everyone and the advised dose (the clinician's, changed only when the models are "
        "confident); the regret learning curve shows from how many training patients on the "
        "learned recommender does better than the clinicians.",
    ]),
    "learning": ("Help: Learning Mode", [
        "Retrain the outcome estimators on this clinic's stored cases whose outcome is known "
        "(the adaptive dose given and both outcomes recorded, e.g. through “Follow-up” on the "
        "Data input panel or an uploaded file with those columns), optionally pooled with the "
        "virtual trial. Training runs in the background; you can leave this panel. “Cancel "
        "training” ends a queued run at once and a running one within seconds. A run whose "
        "worker stopped (the app was restarted, a process killed) is marked failed with the "
        "reason, and a new run can be started.",
        "The new version is compared with the version serving now on the same held-out clinic "
        "cases (paired) and on a fresh virtual cohort. It serves only after you promote it; "
        "every promotion and rollback is recorded with your name, the time and your reason.",
    ]),
    "audit": ("Help: the audit trail", [
        "Every recommendation any user was shown, with the time (UTC), the user, the case, the "
        "hash of its inputs (the same hash the report prints), the outcome model and every "
        "model version behind it, and the recommended dose. Rows are never changed or deleted. "
        "Events list who logged in, saved notes, trained, promoted or rolled back models, and "
        "managed users.",
    ]),
    "planner": ("Help: fractionation planner", [
        "Plans a whole 35-fraction course (7 weeks × 5 fractions, 1.8/2.0/2.2 Gy per fraction) "
        "with a Double-DQN agent trained on a tumour-response model whose biology (α, α/β, "
        "repopulation and decay times) is sampled from the ranges you set, then compares the "
        "adaptive (ART) plan with the equal-dose reference of 2 Gy × 35 on fresh scenarios.",
        "The exact oracle scores every one of the 3⁷ weekly plans on the same scenarios: the "
        "oracle ratio and the share of the oracle's gain the planner captures tell how close "
        "the agent came to the best reachable plan. Under this model the reachable gain over "
        "the reference is small (well under 1 % tumour BED at +0.5 % OAR BED).",
        "A patient's own α (for example carried over from the SF2 panel) fixes α in every "
        "scenario. Everything here comes from a response model over simulated scenarios: it "
        "is not clinical evidence (docs/planner.md).",
        "A run trains in the background with a progress bar; other users are not held up. "
        "“Cancel run” stops it at its next training episode or evaluation stage and keeps the "
        "previous result on screen.",
    ]),
    "sf2": ("Help: radiosensitivity (SF2)", [
        "Predicts a tumour's surviving fraction after 2 Gy (SF2) from its gene expression with "
        "an ensemble of meta-learned networks (REPTILE) adapted on labelled cell lines of the "
        "same subgroup; ± is the ensemble's standard deviation. Pick a cell line of the panel "
        "or upload profiles (format: docs/sf2.md).",
        "The bars show which genes push this prediction up or down. RSI and GARD appear when "
        "the upload carries all ten RSI genes on an absolute scale.",
        "Honest cross-validation finds little signal: predicting the training mean is about as "
        "accurate (docs/sf2.md). Trained on cell lines in a proliferation assay, not on "
        "patients: not clinical evidence. “Use α in fractionation planner” fixes the patient's "
        "α in the planner.",
    ]),
    "drug": ("Help: systemic therapy (drug resistance)", [
        "For a tumour's molecular profile (706 cancer genes: expression, and optionally "
        "mutations and copy numbers), the probability that it resists each drug, from tree "
        "models trained on cancer cell lines (GDSC screens, DepMap omics). Pick a cell line or "
        "upload profiles (format: docs/data-format.md).",
        "Each probability is calibrated on cross-validation predictions and comes with the "
        "range over bagged models (model uncertainty, not a coverage guarantee). Beside it: "
        "how well the model ranked held-out cell lines for that drug (CV AUROC) and the naive "
        "baseline's AUROC; drugs marked “≤ naive” have a model no better than that baseline.",
        "For a cell line of the training data the models saw its response: the “Held out” "
        "column is the honest prediction, from the model that never saw it.",
        "The bars show the genes behind the prediction for the chosen drug, and the genes that "
        "drive the model in the sample's tissue. Cell lines are not patients: not clinical "
        "evidence.",
    ]),
    "users": ("Help: users and roles", [
        "Clinicians enter patients, see recommendations, write notes and download reports; "
        "physicists also review models, run Learning Mode and read the audit trail; "
        "administrators also manage users here. Passwords need at least 10 characters and are "
        "stored only as argon2 hashes; there is no default password.",
        "“Disable” ends the user's sessions at once and refuses their logins; nothing they "
        "saved is removed. A new password ends the user's open logins too (your own other "
        "logins, when you set yours). A new role applies at the user's next action: their page "
        "reloads with the new role's panels. Every change here is recorded in the audit trail.",
    ]),
}
"""Per panel: the summary line and the paragraphs of its help box."""


def panel_help(key: str) -> ui.Tag:
    """The collapsible help box of a panel."""
    title, paragraphs = HELP[key]
    return ui.tags.details(ui.tags.summary(title), *[ui.p(p) for p in paragraphs],
                           class_="artds-help")


def help_ui() -> ui.Tag:
    """The user guide."""
    sections = [
        ("What artds does",
         "For a patient halfway through radiotherapy, artds predicts, for every candidate "
         "adaptive dose per fraction, the probability of tumour control (TCP) and of a "
         "complication (NTCP), marks the dose an AI recommends, and shows where the patient "
         "sits among comparable patients. It supports a decision; it does not make it."),
        ("Curves, intervals and ellipses",
         "In the outcome space each case is a curve through its candidate doses. The learned "
         "outcome models state an interval for TCP and NTCP at every dose, with its level "
         "(e.g. an 80 % interval should contain the true probability four times in five); an "
         "ellipse around a point spans that interval of TCP and of NTCP, tilted by how the "
         "ensemble members' TCP and NTCP move together. Trust a recommendation less when its "
         "ellipses are wide; the best dose's interval says how far that uncertainty moves the "
         "best dose. The reference model (the virtual trial's truth) has no interval."),
        ("Reward and goals",
         "The recommended dose maximises the predicted reward tcp·(1 − ntcp), plus 2 when the "
         "protocol's population goal is met (e.g. NSCLC: TCP > 70 % and NTCP < 17.2 %) or "
         "plus 1 when the default goal is met (TCP > 50 % and NTCP < 50 %): a predicted "
         "reward on a 0–3 scale, not a confidence. A recommendation whose NTCP exceeds the "
         "default goal's limit carries a caution."),
        ("q-value",
         "When a learned decision maker (Double DQN) recommends the dose, its q-value for a "
         "dose is the reward it predicts for giving that dose (0–3, with goal bonuses; it can "
         "exceed 3): a prediction, not a confidence. Each of its networks picks the dose with "
         "its highest q-value; the recommendation is their mean, and its standard error (SEM) "
         "is only the networks' fitting noise — the uncertainty of the dose is the best "
         "dose's interval from the outcome models. For some patients the q-value overstates "
         "the reward the outcome curves give, so read it next to the exact reward argmax shown "
         "beside it, and trust a recommendation less when the two doses differ."),
        ("Your proposal",
         "Give your own proposed adaptive dose per fraction and artds compares it with the "
         "recommendation under the outcome models' uncertainty: TCP, NTCP and predicted reward "
         "at both doses with their intervals, and p(recommendation better), the probability "
         "that the recommendation's reward is truly higher: the share of plausible outcome "
         "models saying so, calibrated against the truth of a virtual calibration cohort (the "
         "raw share is over-confident). The advice is to change only when that probability "
         f"reaches {ADVICE_THRESHOLD:.2f}; otherwise it keeps your dose, the safe default. The "
         "80 % intervals hold their level on virtual patients; for real patients only as far "
         "as the virtual trial resembles them."),
        ("Operation Mode and Learning Mode",
         "In Operation Mode the app serves the outcome-model version a physicist promoted. In "
         "Learning Mode a physicist retrains the models on the clinic's stored cases with known "
         "outcomes, compares the new version with the serving one on the same held-out cases, "
         "and promotes it (or rolls back) explicitly; every promotion is recorded."),
        ("Roles",
         "Clinicians enter patients, see recommendations, write notes and download reports. "
         "Physicists also review models, run Learning Mode and read the audit trail. "
         "Administrators also manage users."),
        ("Audit trail",
         "Every recommendation shown is stored with the user, the time, the hash of the inputs "
         "and the model versions; the report prints the same identifiers, so a printed report "
         "can always be traced back."),
        ("Logging out",
         f"You are logged out after {duration_text(settings.session_idle_s())} without using the "
         f"app, after {duration_text(settings.session_max_age_s())} at the latest, and at once in "
         "every tab of this browser when you press “Log out”; “Log out everywhere” also ends "
         "your logins in other browsers and on other computers. The page then returns to the "
         "login form; what you saved (inputs, notes, follow-ups) stays in the database."),
        ("Keyboard",
         "Every control is reachable with Tab; Enter or Space presses buttons and opens help "
         "boxes; the arrow keys move the dose slider."),
    ]
    return ui.div(
        ui.h2("User guide", class_="h4"),
        ui.div(ui.tags.strong("Not clinical evidence. "), APP_DISCLAIMER,
               class_="artds-disclaimer", role="note"),
        *[ui.div(ui.h3(title, class_="h6 mt-3"), ui.p(text)) for title, text in sections],
        class_="artds-guide",
    )
