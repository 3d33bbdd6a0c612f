"""Data input: import a plan (DICOM-RT or a DVH table) and use its dosimetric features.

The user uploads the plan's RTDOSE and RTSTRUCT (and RTPLAN) together, or one DVH table
(:func:`engine.dvh.uploads.read_uploaded_plan` sorts them), and gives the number of fractions the
dose covers when there is no RTPLAN. The files are read and evaluated for the current protocol
in a worker thread (:func:`app.runtime.plan_pool`) with a progress bar; each upload is read into
memory and its temporary file deleted at once, and the plan read is kept in the session's memory
only. The section shows the structures found and the role each plays (a drop-down per role
re-evaluates), the features as the protocol defines them, the cumulative DVHs
(:func:`engine.figures.dvh.dvh_figure`), the constraint checks, every structure's DVH metrics and
the warnings. "Use these features" writes the features into the form's dosimetric fields and
gives them to a patient: the form's (added like "Add this patient") or a loaded case (a new input
version); the rest of the patient's features come from the form or the case. The recommendation
follows, and the report carries the plan (:attr:`DataInputState.plan_links`).

Every refusal is the engine's :class:`~engine.dvh.PlanError`, naming the file, tag or structure;
nothing about the files (names can hold a patient's name) is logged, and no patient name or id is
read from any header.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from shiny import reactive, render, ui
from shiny.session import Inputs
from shiny.types import FileInfo

from app.panels.data_input.form import form_frame
from app.panels.data_input.messages import error_box, form_labels
from app.panels.data_input.state import DataInputState, PlanLink
from app.panels.widgets import Progress, progress_bar, status_line
from app.plots import output_figure, render_figure
from app.runtime import plan_pool
from engine.core.protocols import Protocol
from engine.core.schema import case_labels, validate_dataframe
from engine.core.tabular import Problem, SchemaError, format_size
from engine.dvh import ImportLimits, PlanData, PlanError, PlanImport, evaluate_plan
from engine.dvh.plan import MAX_PLAN_FRACTIONS
from engine.dvh.uploads import DVH_SUFFIXES, largest_file_bytes, read_uploaded_plan
from engine.figures.dvh import dvh_figure
from engine.figures.wording import plan_feature_text
from engine.platform.inputs import with_features

__all__ = ["FORM_TARGET", "app_wording", "plan_card", "plan_server"]

FORM_TARGET = "__form__"
"""The "Use these features" target meaning the patient in the form."""
NO_STRUCTURE = ""
"""A role drop-down's value when the role has no structure."""
FEATURE_DIGITS = 2
"""Decimals of a feature given to a patient (0.01 Gy or cm³: far below any model's
resolution)."""
_HOW = {"name": "found by name", "built": "built from other structures", "chosen": "your choice"}
_WORDING = (
    (re.compile(r"give the RTPLAN or --plan-fractions N"),
     "upload the RTPLAN with the other files, or enter the fractions in this dose file"),
    (re.compile(r"--plan-fractions (\d+) overrides the"), r"the \1 fractions entered override the"),
    (re.compile(r"--plan-fractions"), "Fractions in this dose file"),
    (re.compile(r"(choose (?:one|another)) with --structure (\w+)=NAME"),
     r"\1 in the drop-down of role \2"),
)


def app_wording(text: str) -> str:
    """An engine message worded for the app: the command line's ``--plan-fractions`` and
    ``--structure ROLE=NAME`` become the section's fraction field and role drop-downs."""
    for pattern, replacement in _WORDING:
        text = pattern.sub(replacement, text)
    return text


# --------------------------------------------------------------------------------------------
# The work, in a worker thread


@dataclass(frozen=True)
class _Job:
    """One reading (``files``) or re-evaluation (``data``) of a plan."""

    protocol: Protocol
    plan_fractions: int | None
    structures: dict[str, str]
    """Role → structure the user chose (the others are found automatically)."""
    files: tuple[tuple[str, str], ...] = ()
    """A new upload: (name as the browser gave it, temporary path) per file."""
    data: PlanData | None = None
    """The plan read before (re-evaluation)."""
    previous: dict[str, str] | None = None
    """For a role chosen in a drop-down: the choices before it (restored if it is refused)."""
    serial: int = 0
    """The upload the job reads or evaluates (see ``plan_server``)."""


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    data: PlanData | None
    """The plan read (None when reading failed)."""
    result: PlanImport | None = None
    problems: tuple[str, ...] = ()
    """Why there is no result: every problem, each one sentence (empty on success)."""
    needs_fractions: bool = False
    """Read, but the number of fractions the dose covers is needed first."""


def _read_and_delete(files: tuple[tuple[str, str], ...]) -> list[tuple[str, bytes]]:
    """Each upload's bytes (refusing one larger than any plan file may be before reading it);
    every temporary file is deleted, read or not."""
    out = []
    limit = largest_file_bytes()
    try:
        for name, path in files:
            size = Path(path).stat().st_size
            if size > limit:
                raise PlanError(f"{name} is {format_size(size)}, larger than the limit of "
                                f"{format_size(limit)} for a plan file")
            out.append((name, Path(path).read_bytes()))
    finally:
        for _, path in files:
            with contextlib.suppress(OSError):
                os.remove(path)
    return out


def _needs_fractions(data: PlanData) -> bool:
    return data.plan is None or data.plan.n_fractions is None


def _run(job: _Job, progress: Progress) -> _Outcome:
    """Read (a new upload) and evaluate a plan; never raises, never logs."""
    data = job.data
    try:
        if data is None:
            progress(0.0, "reading the files")
            data = read_uploaded_plan(_read_and_delete(job.files))
        if job.plan_fractions is None and _needs_fractions(data):
            return _Outcome(job, data, needs_fractions=True)
        progress(0.1, "DVHs")
        result = evaluate_plan(data, job.protocol, plan_fractions=job.plan_fractions,
                               structures=job.structures,
                               progress=lambda share, text: progress(0.1 + 0.9 * share, text))
        return _Outcome(job, data, result)
    except PlanError as err:
        return _Outcome(job, data, problems=tuple(app_wording(p) for p in err.problems))
    except Exception as err:  # a reader's bug: said without its text (it may name a file)
        return _Outcome(job, data, problems=(
            f"the plan could not be read ({type(err).__name__}); check that the files are the "
            "plan's DICOM-RT export or a DVH table as in docs/data-format.md",))


# --------------------------------------------------------------------------------------------
# The card


def _limits_text(limits: ImportLimits | None = None) -> str:
    limits = limits or ImportLimits()
    return ", ".join(f"{kind} {format_size(limits.for_kind(kind))}" for kind in
                     ("RTDOSE", "RTSTRUCT", "RTPLAN")) + \
        f", DVH table {format_size(limits.dvh_bytes)}"


def plan_card() -> ui.Tag:
    suffixes = ", ".join(DVH_SUFFIXES)
    return ui.card(
        ui.card_header("Import plan (DICOM-RT or DVH)"),
        ui.layout_columns(
            ui.div(
                ui.input_file("plan_files", "Plan files", multiple=True, width="100%",
                              button_label="Choose files…"),
                ui.tags.small(
                    "Select the plan's RTDOSE and RTSTRUCT (and RTPLAN) together, or one DVH "
                    f"table ({suffixes}: the CSV of docs/data-format.md or an Eclipse text "
                    f"export). Size limits: {_limits_text()}. The files are read in memory "
                    "and deleted at once; nothing is stored unless you use the features for a "
                    "patient.",
                    class_="text-muted d-block mb-2"),
                ui.div(
                    ui.input_numeric("plan_fractions", "Fractions in this dose file",
                                     value=None, min=1, max=MAX_PLAN_FRACTIONS, step=1,
                                     width="100%"),
                    ui.output_ui("plan_fractions_hint"),
                    class_="artds-field mb-2",
                ),
                ui.output_ui("plan_status"),
                ui.output_ui("plan_roles"),
                ui.output_ui("plan_features"),
                ui.output_ui("plan_warnings"),
            ),
            ui.div(
                output_figure("plan_dvh", min_height="0px"),
                ui.output_ui("plan_constraints"),
            ),
            col_widths=(5, 7),
        ),
        ui.output_ui("plan_metrics"),
        full_screen=True,
        id="plan_card",
    )


def _fractions(value: object) -> int | float | None:
    """The fraction field's value: None when empty, an int when whole (else left for the
    engine to refuse with its message)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # type: ignore[return-value]


def _fractions_source(result: PlanImport) -> str:
    """Where the number of fractions came from, as the section says it."""
    if result.fractions_source == "--plan-fractions":
        return "entered above"
    return result.fractions_source


def _gy(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def plan_server(input: Inputs, state: DataInputState) -> None:
    """Read, evaluate and show an uploaded plan; give its features to a patient."""
    data: reactive.Value[PlanData | None] = reactive.value(None)
    """The plan read from the last upload (memory only)."""
    result: reactive.Value[PlanImport | None] = reactive.value(None)
    problems: reactive.Value[tuple[str, tuple[str, ...]] | None] = reactive.value(None)
    """(what was not done, every problem) of the last refusal; None after a success."""
    needs_fractions: reactive.Value[bool] = reactive.value(False)
    overrides: reactive.Value[dict[str, str]] = reactive.value({})
    """Role → structure chosen in the drop-downs for the current upload and protocol."""
    used: reactive.Value[tuple[bool, str] | list[Problem] | None] = reactive.value(None)
    """What "Use these features" did, or the problems of the patient it refused."""
    progress = Progress()
    serial = {"upload": 0, "data": 0}
    """The number of the last upload and of the upload ``data`` holds: an outcome of an older
    upload, or a re-evaluation of its plan, is dropped (the newest upload wins)."""

    @reactive.extended_task
    async def work(job: _Job) -> _Outcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(plan_pool(), _run, job, progress)

    def _job(**extra) -> _Job:
        with reactive.isolate():
            return _Job(protocol=state.protocol(),
                        plan_fractions=_fractions(input.plan_fractions()),
                        structures=dict(overrides()), serial=serial["upload"], **extra)

    @reactive.effect
    @reactive.event(input.plan_files)
    def _upload() -> None:
        files: list[FileInfo] = input.plan_files() or []
        if not files:
            return
        first = serial["upload"] == 0
        serial["upload"] += 1
        overrides.set({})
        used.set(None)
        job = _job(files=tuple((str(f["name"]), str(f["datapath"])) for f in files))
        if not first and job.plan_fractions is not None:
            # A number typed since an earlier upload was that plan's: never carry it over.
            # (value=None would mean "unchanged"; "" empties the field.)
            ui.update_numeric("plan_fractions", value="")  # type: ignore[arg-type]
            job = replace(job, plan_fractions=None)
        progress(0.0, "uploading")
        work.invoke(job)

    @reactive.effect
    @reactive.event(state.protocol)
    def _on_protocol() -> None:
        overrides.set({})  # the roles are the protocol's
        used.set(None)
        _reevaluate()

    @reactive.effect
    @reactive.event(input.plan_fractions, ignore_init=True)
    def _on_fractions() -> None:
        _reevaluate()

    def _reevaluate() -> None:
        """Evaluate the plan read again (protocol, fractions or a role changed); when an upload
        is still being read, its outcome brings the change in (see ``_finished``)."""
        with reactive.isolate():
            current = data()
        if current is not None and serial["data"] == serial["upload"]:
            work.invoke(_job(data=current))

    @reactive.effect
    def _finished() -> None:
        if work.status() != "success":
            return
        outcome = work.result()
        with reactive.isolate():
            job = outcome.job
            if job.serial != serial["upload"]:
                return  # a newer upload is on its way
            if job.files:
                data.set(outcome.data)
                serial["data"] = job.serial
            needs_fractions.set(outcome.needs_fractions)
            if outcome.result is not None:
                result.set(outcome.result)
                problems.set(None)
            elif outcome.problems and job.previous is not None:
                # A role choice the plan cannot use: keep the last result, drop the choice.
                overrides.set(job.previous)
                problems.set(("That choice was not applied; the roles stay as they were.",
                              outcome.problems))
                shown = result()
                if shown is not None:  # put the drop-downs back
                    for role, a in shown.roles.items():
                        ui.update_select(f"plan_role_{role}", selected=a.structure)
            elif outcome.problems:
                result.set(None)
                problems.set(("The plan was not imported." if job.files else
                              "The plan could not be evaluated.", outcome.problems))
            else:  # read; waiting for the number of fractions
                result.set(None)
                problems.set(None)
            # The user may have changed the protocol or the fractions meanwhile.
            current = data()
            if current is not None and (
                    job.protocol.name != state.protocol().name
                    or job.plan_fractions != _fractions(input.plan_fractions())):
                work.invoke(_job(data=current))

    # ---- roles

    @reactive.effect
    def _role_choice() -> None:
        p = state.protocol()
        if p.plan is None:
            return
        chosen = {}
        for role in p.plan.roles:
            key = f"plan_role_{role.name}"
            if key in input:
                chosen[role.name] = input[key]()
        with reactive.isolate():
            r = result()
            if r is None or r.protocol != p.name or work.status() == "running":
                return
            changed = {}
            for role, value in chosen.items():
                current = r.roles[role].structure if role in r.roles else NO_STRUCTURE
                if value and value != current and value in r.role_candidates.get(role, ()):
                    changed[role] = value
            if changed:
                before = dict(overrides())
                overrides.set({**before, **changed})
                work.invoke(_job(data=data(), previous=before))

    # ---- what is shown

    @render.ui
    def plan_fractions_hint():
        current = data()
        if current is not None and current.plan is not None and \
                current.plan.n_fractions is not None:
            text = (f"{current.plan.file} says {current.plan.n_fractions}; leave empty to use "
                    "it (a number here overrides it)")
        else:
            text = ("needed without an RTPLAN: the fractions the dose file covers (e.g. 30 "
                    f"for a 60 Gy plan in 2 Gy fractions); accepted 1 – {MAX_PLAN_FRACTIONS}; "
                    "a new upload clears it")
        return ui.tags.small(text, class_="text-muted form-hint")

    @render.ui
    def plan_status():
        if work.status() == "running":
            reactive.invalidate_later(0.3)
            share, text = progress.get()
            return ui.div(
                ui.div(f"Importing the plan: {text}…", class_="small mb-1"),
                progress_bar(share, class_="progress", style="height: 0.8rem"),
                class_="plan-progress mb-2", role="status",
            )
        refused = problems()
        if refused is not None:
            title, items = refused
            note = ("Nothing was kept from the refused files; correct them and upload them again."
                    if title.startswith("The plan was not") else
                    "Correct the choice or the fractions and try again.")
            # Not error_box: its first letter capitalised would change a file's name.
            return ui.div(
                ui.tags.strong(title), ui.p(note, class_="mb-2"),
                ui.tags.ul(*[ui.tags.li(text) for text in items], class_="problem-list"),
                class_="alert alert-danger artds-error plan-refusal", role="alert",
            )
        if needs_fractions():
            current = data()
            names = ", ".join(current.files.values()) if current else ""
            return ui.div(
                ui.strong(f"Read {names}. "),
                "Enter the number of fractions this dose file covers (there is no RTPLAN with "
                "it) to compute the features.",
                class_="alert alert-info small py-2 plan-needs-fractions", role="status")
        r = result()
        if r is None:
            return ui.div("No plan imported yet.", class_="artds-empty")
        kinds = ", ".join(f"{name} ({kind.upper()})" for kind, name in r.files.items())
        return ui.div(
            ui.strong("Plan read: "), kinds, ui.br(),
            f"{len(r.structures)} structures with a DVH; the dose covers "
            f"{r.n_plan_fractions} fractions ({_fractions_source(r)}); the "
            f"protocol's evaluation phase is {r.n_eval_fractions} fractions.",
            class_="alert alert-success small py-2 plan-summary", role="status",
        )

    @reactive.calc
    def shown_result() -> PlanImport | None:
        """The result of the current protocol (None while another protocol's is shown)."""
        r = result()
        return r if r is not None and r.protocol == state.protocol().name else None

    @render.ui
    def plan_roles():
        r = shown_result()
        p = state.protocol()
        if r is None or p.plan is None:
            return None
        rows = []
        for role in p.plan.roles:
            a = r.roles.get(role.name)
            choices = {c: c for c in r.role_candidates.get(role.name, [])}
            if a is None:
                choices = {NO_STRUCTURE: "(none)", **choices}
            rows.append(ui.tags.tr(
                ui.tags.th(role.label, ui.br(), ui.tags.small(role.name, class_="text-muted")),
                ui.tags.td(
                    ui.input_select(f"plan_role_{role.name}", None, choices=choices,
                                    selected=a.structure if a else NO_STRUCTURE, width="100%"),
                    ui.tags.small(_HOW.get(a.how, a.how) if a else "no structure: its "
                                  "constraints are not checked", class_="text-muted d-block"),
                ),
                class_=f"plan-role plan-role-{role.name}",
            ))
        return ui.tags.table(
            ui.tags.thead(ui.tags.tr(ui.tags.th("Role"), ui.tags.th("Structure"))),
            ui.tags.tbody(*rows), class_="table table-sm plan-roles mb-2")

    @render.ui
    def plan_features():
        r = shown_result()
        if r is None:
            return None
        p = state.protocol()
        labels = form_labels(p)
        rows = []
        for f in r.feature_details:
            flag = None if f.in_range else ui.tags.small(
                f"outside the accepted {f.min:g} – {f.max:g} {f.unit}",
                class_="text-danger d-block")
            rows.append(ui.tags.tr(
                ui.tags.th(labels.get(f.feature, f.feature),
                           ui.tags.small(f.feature, class_="text-muted d-block"),
                           ui.tags.small(plan_feature_text(f, r), class_="d-block "
                                         "feature-how")),
                ui.tags.td(ui.strong(f"{f.value:.{FEATURE_DIGITS}f} {f.unit}"), flag,
                           class_="num"),
                class_=f"plan-feature plan-feature-{f.feature}",
            ))
        with reactive.isolate():
            previous = input.plan_target() if "plan_target" in input else FORM_TARGET
        targets = {FORM_TARGET: "the patient in the form below (adds it)"}
        targets |= {lab: f"{lab} (a new input version)" for lab in state.labels()}
        return ui.div(
            ui.tags.table(
                ui.tags.thead(ui.tags.tr(ui.tags.th("Feature, computed as"),
                                         ui.tags.th("Value", class_="num"))),
                ui.tags.tbody(*rows), class_="table table-sm plan-features mb-2"),
            ui.input_select("plan_target", "Use for", choices=targets,
                            selected=previous if previous in targets else FORM_TARGET,
                            width="100%"),
            ui.input_action_button("plan_use", "Use these features", class_="btn-primary"),
            ui.output_ui("plan_use_status"),
            class_="plan-use",
        )

    @render.ui
    def plan_warnings():
        r = shown_result()
        if r is None or not r.warnings:
            return None
        return ui.div(
            ui.strong("Check: "),
            ui.tags.ul(*[ui.tags.li(app_wording(w)) for w in r.warnings], class_="mb-0"),
            class_="alert alert-warning small py-2 mt-2 plan-warnings",
        )

    @render_figure
    def plan_dvh():
        r = shown_result()
        return None if r is None else dvh_figure(r, height_px=560)

    @render.ui
    def plan_constraints():
        r = shown_result()
        if r is None:
            return ui.div(
                "After an import: the plan's cumulative DVHs, the protocol's dose constraints "
                "checked on it (value, limit, margin and source) and every structure's DVH "
                "metrics.", class_="artds-empty")
        rows = []
        for c in r.constraints:
            d = c.display()
            rows.append(ui.tags.tr(
                ui.tags.td(d["constraint"], ui.tags.small(d["source"], class_="d-block "
                                                          "text-muted constraint-source")),
                ui.tags.td(d["structure"]),
                ui.tags.td(d["value"], class_="num"),
                ui.tags.td(d["limit"], class_="num"),
                ui.tags.td(d["margin"], class_="num"),
                ui.tags.td(ui.span(d["status"], class_="constraint-status"),
                           ui.tags.small(d["note"], class_="d-block text-muted")
                           if d["note"] else None),
                class_="constraint " + d["status"].replace(" ", "-"),
            ))
        return ui.div(
            ui.tags.h6(f"Constraints of the protocol, on the plan's dose ({r.n_plan_fractions} "
                       "fractions)", class_="mt-2"),
            ui.tags.table(
                ui.tags.thead(ui.tags.tr(*[ui.tags.th(h, class_=k) for h, k in (
                    ("Constraint and source", ""), ("Structure", ""), ("Value", "num"),
                    ("Limit", "num"), ("Margin", "num"), ("", ""))])),
                ui.tags.tbody(*rows), class_="table table-sm metrics-table plan-constraints"),
        )

    @render.ui
    def plan_metrics():
        r = shown_result()
        if r is None or not r.structures:
            return None
        v_keys = [k for k in r.structures[0].metrics if re.fullmatch(r"v[\d_]+_percent", k)]
        physical = [("volume_cc", "Volume", "cm³"), ("mean_gy", "Mean", "Gy"),
                    ("max_gy", "Max (D0.03cc)", "Gy"), ("d98_gy", "D98%", "Gy"),
                    ("d95_gy", "D95%", "Gy"), ("d50_gy", "D50%", "Gy"), ("d2_gy", "D2%", "Gy")]
        physical += [(k, k.removesuffix("_percent").replace("_", ".").upper() + "Gy", "%")
                     for k in v_keys]
        eqd2 = [("mean_eqd2_gy", "Mean", "Gy"), ("max_eqd2_gy", "Max", "Gy"),
                ("d98_eqd2_gy", "D98%", "Gy"), ("d2_eqd2_gy", "D2%", "Gy")]
        head = [ui.tags.th("Structure"), ui.tags.th("Role")]
        head += [ui.tags.th(label, ui.br(), ui.tags.small(unit), class_="num")
                 for _, label, unit in physical]
        head += [ui.tags.th("α/β", ui.br(), ui.tags.small("Gy"), class_="num eqd2-first")]
        head += [ui.tags.th(f"{label}", ui.br(), ui.tags.small("EQD2 Gy"), class_="num")
                 for _, label, _ in eqd2]
        rows = []
        for s in r.structures:
            cells = [ui.tags.td(s.name, class_="arch"),
                     ui.tags.td(", ".join(s.roles))]
            for key, _, unit in physical:
                digits = 1 if unit in ("cm³", "%") else 2
                cells.append(ui.tags.td(_gy(s.metrics.get(key), digits), class_="num"))
            cells.append(ui.tags.td(f"{s.alpha_beta_gy:g}", class_="num eqd2-first"))
            cells += [ui.tags.td(_gy(s.metrics.get(key)), class_="num") for key, _, _ in eqd2]
            rows.append(ui.tags.tr(*cells, class_="with-role" if s.roles else None))
        return ui.tags.details(
            ui.tags.summary(f"DVH metrics of every structure ({len(r.structures)}): the plan's "
                            f"dose in {r.n_plan_fractions} fractions, physical and EQD2"),
            ui.div(ui.tags.table(ui.tags.thead(ui.tags.tr(*head)), ui.tags.tbody(*rows),
                                 class_="table table-sm metrics-table plan-metrics"),
                   class_="table-responsive"),
            ui.tags.small("Max is D0.03cc (the point maximum for structures under 0.03 cm³ or "
                          "without absolute volumes); EQD2 converts each dose bin with the "
                          "structure's α/β (its role's, else the protocol's default).",
                          class_="text-muted"),
            class_="plan-metrics-block mt-2", open=True,
        )

    # ---- using the features

    @reactive.effect
    @reactive.event(input.plan_use)
    def _use() -> None:
        r = shown_result()
        p = state.protocol()
        if r is None:
            used.set((False, "Import a plan first."))
            return
        values = {name: round(v, FEATURE_DIGITS) for name, v in r.features.items()}
        for name, value in values.items():
            ui.update_numeric(f"m_{name}", value=value)
        target = input.plan_target() if "plan_target" in input else FORM_TARGET
        try:
            if target == FORM_TARGET:
                new = validate_dataframe(form_frame(input, p, values), p)
            else:
                labels = state.labels()
                if target not in labels:
                    used.set((False, f"{target} is no longer loaded; choose another patient."))
                    return
                case = state.cases().iloc[[labels.index(target)]].reset_index(drop=True)
                new = with_features(case, p, values)
        except SchemaError as err:
            used.set(err.problems)
            return
        label = case_labels(new)[0]
        links = state.plan_links()
        state.plan_links.set({**links, p.name: {**links[p.name], label: PlanLink(r, values)}})
        names = form_labels(p)
        units = {f.feature: f.unit for f in r.feature_details}
        said = ", ".join(f"{names.get(k, k)} {v:.{FEATURE_DIGITS}f} {units[k]}" for k, v in
                         values.items())
        # Saved off the event loop (state.add_cases): the message follows once it is stored.
        state.add_cases(new, "plan", done=lambda _added, _replaced: used.set((True, (
            f"{said}: written into the form and given to {label} (saved as a new input "
            "version; its recommendation follows)."))), refused=used.set)

    @render.ui
    def plan_use_status():
        message = used()
        if message is None:
            return None
        if isinstance(message, list):
            return error_box("The features were not used.", message, show_rows=False,
                             note="Correct these fields of the form (or the plan) and press "
                             "“Use these features” again.", labels=form_labels(state.protocol()))
        return status_line(message, id="plan-use-line")

