"""Learning Mode panel (physicists): retrain on stored cases, compare, promote, roll back.

"Train a new version" queues a job in the database; the app process's job runner
(:func:`app.runtime.learning_runner`) — or another app process's — claims it and runs
``engine.arclids.learning.run_job`` in a worker process of its own, so this and every other
session stay responsive. Progress, messages and the cancel flag live in the job's database row
(:class:`engine.platform.jobs.StoreJobReporter`): the progress bar polls it, and a job started in
another session or app process shows here too. "Cancel" ends a queued job at once and a running
one at its next step; a worker that does not stop within seconds is ended by its runner. A job
whose worker is gone (the app was restarted, a process killed) is failed with the reason, so a
new run is accepted again.

A finished job registers a new model version; it serves only after "Promote to Operation Mode"
(confirmed in a dialog, recorded with the user, time and reason). "Roll back" (also confirmed in a
dialog naming both versions) promotes the version that served before the current one. Nothing here
deletes a version.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from shiny import module, reactive, render, ui

from app import shared
from app.db import poll_in_thread
from app.panels.widgets import status_line
from app.runtime import in_database_thread, learning_runner
from app.serving import served_model
from engine.arclids.learning import BUDGETS, LearningConfig
from engine.core.protocols import Protocol
from engine.platform.accounts import role_allows
from engine.platform.store import JobInfo, ModelVersionInfo, Store, UserInfo

__all__ = ["learning_server", "learning_ui"]

_ACTIVE = ("queued", "running")


def _when(info_time) -> str:
    return "–" if info_time is None else info_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value, fmt: str = ".3f") -> str:
    return "–" if value is None else format(float(value), fmt)


def _confirm(*body: ui.TagChild, title: str, button: ui.Tag) -> None:
    """Ask before an action: a dialog with ``body``, "Cancel" and the confirming ``button``."""
    ui.modal_show(ui.modal(*body, title=title,
                           footer=ui.TagList(ui.modal_button("Cancel"), button),
                           easy_close=True))


@module.ui
def learning_ui() -> ui.TagList:
    budgets = {"standard": "Standard (the served configuration, 5 members)",
               "tiny": "Tiny (seconds; for tests and demonstrations)"}
    assert set(budgets) == set(BUDGETS)
    return ui.TagList(
        ui.layout_columns(
            ui.card(
                ui.card_header("Train a new version"),
                ui.output_ui("data_summary"),
                ui.input_select("budget", "Training budget", choices=budgets,
                                selected="standard", width="100%"),
                ui.input_checkbox("pool", "Pool with the virtual trial", value=True),
                ui.div(
                    ui.input_task_button("start", "Train a new version",
                                         label_busy="Training…"),
                    ui.input_action_button("cancel", "Cancel training",
                                           class_="btn-outline-danger", disabled=True),
                    class_="d-flex gap-2",
                ),
                ui.output_ui("progress"),
            ),
            ui.card(
                ui.card_header("Operation Mode: serving version"),
                ui.output_ui("serving_info"),
                ui.input_select("version", "Model version", choices=[], width="100%"),
                ui.input_text("reason", "Reason (recorded with the promotion)", width="100%",
                              placeholder="e.g. better held-out AUROC on our cases"),
                ui.div(
                    ui.input_action_button("promote", "Promote to Operation Mode",
                                           class_="btn-primary"),
                    ui.input_action_button("rollback", "Roll back",
                                           class_="btn-outline-secondary"),
                    class_="d-flex gap-2",
                ),
                ui.output_ui("promote_status"),
            ),
            col_widths=(5, 7),
        ),
        ui.card(
            ui.card_header("Metrics: the selected version next to the serving version"),
            ui.output_ui("comparison"),
        ),
        ui.card(
            ui.card_header("Promotions and rollbacks"),
            ui.output_ui("history"),
        ),
    )


@module.server
def learning_server(input, output, session, *, protocol: Callable[[], Protocol], store: Store,
                    user: UserInfo) -> None:
    """Learning Mode for physicists (the caller registers it only for them)."""
    if not role_allows(user.role, "physicist"):
        raise PermissionError("Learning Mode is for physicists")
    changed = reactive.value(0)
    promote_msg: reactive.Value[tuple[bool, str] | None] = reactive.value(None)
    start_msg: reactive.Value[str | None] = reactive.value(None)

    @reactive.calc
    def cases():
        changed()
        return store.inputs_with_outcomes(protocol().name)

    job_seen: reactive.Value[JobInfo | None] = reactive.value(None)

    @reactive.effect
    async def _watch_job() -> None:
        # The newest job of the protocol, read in a thread (never on the event loop) fast while
        # one runs (the progress bar), slowly otherwise (a job started by another physicist or
        # app process still shows up). Only a changed row invalidates what depends on it.
        changed()
        name = protocol().name
        found = await in_database_thread(store.jobs, name, 1)
        info = found[0] if found else None
        reactive.invalidate_later(0.5 if info is not None and info.status in _ACTIVE else 10)
        with reactive.isolate():
            if job_seen() != info:
                job_seen.set(info)

    @reactive.calc
    def job() -> JobInfo | None:
        current = job_seen()
        return current if current is not None and current.protocol == protocol().name else None

    @reactive.calc
    def versions() -> list[ModelVersionInfo]:
        changed()
        j = job()
        _ = None if j is None else (j.id, j.status)
        return store.model_versions(protocol().name)

    @reactive.calc
    def serving_now():
        changed()
        promotion_marker()
        return served_model(protocol().name, store)

    promotion_marker = poll_in_thread(store.latest_promotion_id, 5)

    sent: dict[str, object] = {"choices": None, "job": None}

    @reactive.effect
    def _version_choices() -> None:
        found = versions()
        current = serving_now().info
        choices = {}
        for v in found:
            tags = [v.source]
            if current is not None and v.version == current.version:
                tags.append("serving")
            choices[v.version] = f"{v.version} ({', '.join(tags)}, {_when(v.created_at)})"
        with reactive.isolate():
            selected = input.version()
        j = job()
        fresh = (j is not None and j.status == "done" and j.model_version in choices
                 and sent.get("job") != j.id)
        if fresh:  # a job just finished here or elsewhere: show its version
            sent["job"] = j.id
            selected = j.model_version
        elif selected not in choices:
            learned = [v.version for v in found if v.source == "learning"]
            selected = learned[0] if learned else (next(iter(choices), None))
        if sent["choices"] == (choices, selected):
            return  # unchanged: do not reset the user's selection
        sent["choices"] = (choices, selected)
        ui.update_select("version", choices=choices, selected=selected)

    @reactive.effect
    def _buttons() -> None:
        # "Train" stays busy while the protocol's job is queued or running (in any session or
        # app process), "Cancel" is enabled only then.
        j = job()
        active = j is not None and j.status in _ACTIVE
        ui.update_action_button("cancel", disabled=not active)
        ui.update_task_button("start", state="busy" if active else "ready")

    @render.ui
    def data_summary():
        found = cases()
        p = protocol()
        n = len(found)
        events = {o: sum(int(c.values.get(o) or 0) for c in found) for o in p.outcome_names}
        text = (f"{n} stored {p.name.upper()} case{'s' if n != 1 else ''} with known outcomes"
                + (": " + ", ".join(f"{events[o]} with {o.replace('_', ' ')}"
                                    for o in p.outcome_names) if n else "") + ".")
        n_virtual = len(shared.POPULATIONS[p.name])
        return ui.TagList(
            ui.p(text, class_="mb-1"),
            ui.p(f"Pooling adds the virtual trial's {n_virtual} complete cases (simulated "
                 "patients).", class_="small text-muted"),
            None if n else ui.div("No stored case has a known outcome yet: train on the "
                                  "virtual trial alone, or record follow-ups first.",
                                  class_="artds-empty"),
        )

    @reactive.effect
    @reactive.event(input.start)
    def _start() -> None:
        newest = store.jobs(protocol().name, limit=1)  # fresh: another session may have started one
        current = newest[0] if newest else None
        if current is not None and current.status in _ACTIVE:
            start_msg.set(f"Job {current.id} is still {current.status}; wait or cancel it.")
            return
        if not cases() and not input.pool():
            start_msg.set("Nothing to train on: no stored case has a known outcome. Pool with "
                          "the virtual trial or record follow-ups first.")
            return
        config = LearningConfig(protocol=protocol().name, budget=input.budget(),
                                pool_virtual_trial=bool(input.pool()))
        store.create_job(config.protocol, config.to_dict(), username=user.username)
        learning_runner().kick()  # claimed by this process's runner now, or another's
        start_msg.set(None)
        changed.set(changed() + 1)

    @reactive.effect
    @reactive.event(input.cancel)
    def _cancel() -> None:
        current = job()
        if current is not None and current.status in _ACTIVE:
            store.request_cancel(current.id, username=user.username)
            learning_runner().kick()  # a worker of this process is ended if it does not stop
            changed.set(changed() + 1)

    @render.ui
    def progress():
        note = start_msg()
        j = job()
        if j is None:
            return ui.div(note or "No training job yet.", class_="artds-empty mt-2")
        pct = round(100 * j.progress)
        bar_class = {"done": "bg-success", "failed": "bg-danger", "cancelled": "bg-secondary"}
        bar = ui.div(
            ui.div(f"{pct} %", class_="progress-bar " + bar_class.get(j.status, ""),
                   role="progressbar", style=f"width: {pct}%",
                   **{"aria-valuenow": str(pct), "aria-valuemin": "0", "aria-valuemax": "100"}),
            class_="progress mt-2", style="height: 1.4rem;",
        )
        status = {"queued": "Queued", "running": "Training", "done": "Finished",
                  "failed": "Failed", "cancelled": "Cancelled"}[j.status]
        lines = [ui.tags.strong(f"Job {j.id}: {status}"),
                 f" — {j.message}" if j.message else "",
                 ui.br(),
                 ui.tags.small(f"started by {j.created_by} at {_when(j.created_at)}"
                               + (" · cancel requested" if j.cancel_requested
                                  and j.status in _ACTIVE else ""), class_="text-muted")]
        if j.status == "failed":
            lines += [ui.br(), ui.span(j.error, class_="text-danger")]
        if j.status == "done" and j.model_version:
            lines += [ui.br(), "New version ", ui.tags.code(j.model_version),
                      ": compare it below, then promote it if it is better."]
        return ui.div(bar, ui.p(*lines, class_="small mt-1 job-status"),
                      ui.div(note, class_="small text-danger") if note else None,
                      id="learning-job", **{"data-status": j.status})

    @render.ui
    def serving_info():
        s = serving_now()
        info = s.info
        return ui.div(
            ui.p(ui.span("Serving now: ", class_="fw-semibold"),
                 ui.tags.code(s.model.version, class_="serving-version"),
                 f" ({info.source}, since {_when(_since(info))})" if info else "",
                 class_="mb-1"),
            ui.div(s.warning, class_="model-warning") if s.warning else None,
        )

    def _since(info: ModelVersionInfo):
        history = store.promotions(info.protocol)
        return history[0].created_at if history else info.created_at

    @render.ui
    def comparison():
        found = {v.version: v for v in versions()}
        selected = found.get(input.version() or "")
        if selected is None:
            return ui.div("No model version registered for this protocol.",
                          class_="artds-empty")
        return _comparison_table(selected, serving_now().info, protocol())

    @render.ui
    def history():
        changed()
        promotion_marker()
        rows = store.promotions(protocol().name)
        if not rows:
            return ui.div("No promotion yet: the shipped version serves.", class_="artds-empty")
        return ui.tags.table(
            ui.tags.thead(ui.tags.tr(*[ui.tags.th(h) for h in
                                       ("Time", "User", "Action", "Version", "Reason")])),
            ui.tags.tbody(*[ui.tags.tr(ui.tags.td(_when(p.created_at)), ui.tags.td(p.created_by),
                                       ui.tags.td(p.action), ui.tags.td(ui.tags.code(p.version)),
                                       ui.tags.td(p.reason))
                            for p in rows]),
            class_="table table-sm promotions-table",
        )

    @reactive.effect
    @reactive.event(input.promote)
    def _ask_promote() -> None:
        version = input.version()
        current = serving_now().info
        if not version:
            return
        if current is not None and version == current.version:
            promote_msg.set((False, f"{version} is already serving."))
            return
        _confirm(
            ui.p("Promote ", ui.tags.code(version), f" to Operation Mode for "
                 f"{protocol().name.upper()}? Every user will be served this version from now "
                 "on; the promotion is recorded with your name, the time and the reason."),
            title="Promote to Operation Mode",
            button=ui.input_action_button("confirm_promote", "Promote", class_="btn-primary"),
        )

    @reactive.effect
    @reactive.event(input.confirm_promote)
    def _promote() -> None:
        ui.modal_remove()
        _do_promote(input.version(), "promote")

    def _rollback_target() -> tuple[str | None, str | None, str | None]:
        """(version serving now, version a rollback would serve, why not when none)."""
        history = store.promotions(protocol().name)
        if not history:
            return None, None, "Nothing to roll back: no version was ever promoted."
        current = history[0].version
        earlier = next((p.version for p in history[1:] if p.version != current), None)
        if earlier is None:  # only one promotion: back to the shipped version
            shipped = [v for v in versions() if v.source == "shipped"]
            earlier = shipped[0].version if shipped else None
        if earlier is None or earlier == current:
            return current, None, "No earlier version to roll back to."
        return current, earlier, None

    @reactive.effect
    @reactive.event(input.rollback)
    def _ask_rollback() -> None:
        current, earlier, why_not = _rollback_target()
        if earlier is None:
            promote_msg.set((False, why_not or "No earlier version to roll back to."))
            return
        _confirm(
            ui.p("Roll back ", protocol().name.upper(), " from ", ui.tags.code(current),
                 " to the version that served before it, ", ui.tags.code(earlier), "?"),
            ui.p("Every user will be served ", ui.tags.code(earlier), " from now on. The "
                 "rollback is recorded with your name, the time and the reason; nothing is "
                 "deleted, and you can promote the current version again later."),
            title="Roll back Operation Mode",
            button=ui.input_action_button("confirm_rollback", "Roll back", class_="btn-warning"),
        )

    @reactive.effect
    @reactive.event(input.confirm_rollback)
    def _rollback() -> None:
        ui.modal_remove()
        _, earlier, why_not = _rollback_target()  # again: someone may have promoted meanwhile
        if earlier is None:
            promote_msg.set((False, why_not or "No earlier version to roll back to."))
            return
        _do_promote(earlier, "rollback")

    def _do_promote(version: str, action: str) -> None:
        reason = (input.reason() or "").strip()[:500]
        try:
            store.promote(protocol().name, version, username=user.username, action=action,
                          reason=reason)
        except ValueError as err:
            promote_msg.set((False, str(err)))
            return
        verb = "Promoted" if action == "promote" else "Rolled back to"
        promote_msg.set((True, f"{verb} {version}: it serves {protocol().name.upper()} now."))
        changed.set(changed() + 1)

    @render.ui
    def promote_status():
        return status_line(promote_msg(), id="learning-promote-status")


def _comparison_table(selected: ModelVersionInfo, serving_now: ModelVersionInfo | None,
                      protocol: Protocol) -> ui.Tag:
    metrics = selected.metrics or {}
    mine = metrics.get("candidate", metrics)
    theirs = metrics.get("serving", {})
    against = metrics.get("serving_version")
    # Without a version it was compared with (e.g. the shipped version): one column of values.
    width = 3 if against else 2
    rows = []
    for key, short, label in (("tcp", "TCP", protocol.target.outcome_label),
                              ("ntcp", "NTCP", protocol.oar.outcome_label)):
        m, s = mine.get(key, {}), theirs.get(key, {})
        n_cases, n_events = m.get("n_cases"), m.get("n_events")
        held = ("" if n_cases is None or selected.source != "learning"
                else f" ({n_cases} cases, {n_events} events)")
        rows.append(ui.tags.tr(ui.tags.th(f"{short}: {label}", colspan=str(width)),
                               class_="outcome-row"))
        why = m.get("why_not")
        for name, k, fmt in (
            (f"Held-out AUROC, clinic cases{held}", "held_out_auroc", ".3f"),
            ("Held-out Brier, clinic cases", "held_out_brier", ".3f"),
            ("AUROC, fresh virtual cohort", "auroc_vs_truth", ".3f"),
            ("Bayes ceiling, fresh virtual cohort", "auroc_bayes_ceiling", ".3f"),
            ("Brier, fresh virtual cohort", "brier", ".3f"),
            ("Monotonicity violations", "monotonicity_violation_rate", ".1%"),
            ("Ensemble sd (mean)", "ensemble_sd_mean", ".3f"),
        ):
            mine_text = _num(m.get(k), fmt)
            if why and k.startswith("held_out"):
                mine_text = ui.span("n/a", title=why)
            cells = [ui.tags.td(name), ui.tags.td(mine_text, class_="num")]
            if against:
                cells.append(ui.tags.td(_num(s.get(k), fmt), class_="num"))
            rows.append(ui.tags.tr(*cells))
    notes = []
    if selected.source == "learning":
        t = selected.training
        notes.append(f"Trained by {selected.created_by} on {t.get('n_clinic_cases', 0)} clinic "
                     f"cases + {t.get('n_virtual_cases', 0)} virtual-trial cases "
                     f"({t.get('config', {}).get('budget', '?')} budget). Held-out: the same "
                     "clinic cases held out for both versions; the right column is the version "
                     "that served when it was trained.")
        if serving_now is not None and against and serving_now.version != against:
            notes.append(f"The version serving now ({serving_now.version}) differs from the "
                         f"one it was compared with ({against}).")
    else:
        notes.append("The shipped version, trained on the virtual trial (metrics from its saved "
                     "evaluation on the fresh virtual cohort).")
    notes.append("Virtual-cohort figures come from simulated patients: not clinical evidence.")
    head = [ui.tags.th("Metric"),
            ui.tags.th("Selected: ", ui.tags.code(selected.version), class_="num")]
    if against:
        head.append(ui.tags.th("Serving when trained: ", ui.tags.code(against), class_="num"))
    return ui.TagList(
        ui.tags.table(
            ui.tags.thead(ui.tags.tr(*head)),
            ui.tags.tbody(*rows),
            class_="table table-sm metrics-table comparison-table",
        ),
        *[ui.p(n, class_="small text-muted mb-1") for n in notes],
    )
