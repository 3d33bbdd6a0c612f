"""The app's plan import work (app/panels/data_input/plan.py), without a browser: the worker reads
each upload once and deletes it, asks for the fractions when nothing gives them, never raises,
and words the engine's command-line hints for the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.panels.data_input.plan import _Job, _run, app_wording
from app.panels.widgets import Progress
from engine.core.protocols import load_protocol
from engine.dvh import PlanError, evaluate_plan, read_plan
from tests.unit.dvh.helpers import named, thorax_files

NSCLC = load_protocol("nsclc")


def _uploads(tmp_path: Path, files: dict[str, tuple[str, bytes]]) -> tuple[tuple[str, str], ...]:
    """The files as Shiny leaves them: temporary paths ("0.dcm", …) with the browser's names."""
    out = []
    for i, (name, content) in enumerate(files.values()):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(content)
        out.append((name, str(path)))
    return tuple(out)


def test_an_upload_is_read_evaluated_and_its_temporary_files_deleted(tmp_path: Path) -> None:
    files = named(thorax_files())
    progress = Progress()
    outcome = _run(_Job(NSCLC, None, {}, files=_uploads(tmp_path, files)), progress)
    assert outcome.result is not None and not outcome.problems
    assert outcome.result.features == evaluate_plan(read_plan(**files), NSCLC).features
    assert list(tmp_path.iterdir()) == []
    assert progress.get()[0] == 1.0


def test_without_an_rtplan_the_fractions_are_asked_for(tmp_path: Path) -> None:
    files = named(thorax_files())
    del files["rtplan"]
    outcome = _run(_Job(NSCLC, None, {}, files=_uploads(tmp_path, files)), Progress())
    assert outcome.needs_fractions and outcome.result is None and outcome.data is not None
    again = _run(_Job(NSCLC, 30, {}, data=outcome.data), Progress())
    assert again.result is not None and again.result.n_plan_fractions == 30


def test_a_refusal_is_returned_with_its_message_and_the_files_deleted(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path, {"x": ("notes.dcm", b"not a dicom file\n")})
    outcome = _run(_Job(NSCLC, None, {}, files=uploads), Progress())
    assert outcome.result is None and outcome.data is None
    assert outcome.problems[0].startswith("notes.dcm is not a DICOM file")
    assert list(tmp_path.iterdir()) == []


def test_a_role_choice_the_plan_cannot_use_is_refused_in_app_words(tmp_path: Path) -> None:
    data = read_plan(**named(thorax_files()))
    outcome = _run(_Job(NSCLC, None, {"tumour": "Nowhere"}, data=data), Progress())
    assert outcome.result is None and "Nowhere" in outcome.problems[0]


def test_an_unexpected_error_is_said_without_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.panels.data_input.plan as module

    def broken(*args, **kwargs):
        raise RuntimeError("secret Doe^John")

    monkeypatch.setattr(module, "evaluate_plan", broken)
    data = read_plan(**named(thorax_files()))
    outcome = _run(_Job(NSCLC, None, {}, data=data), Progress())
    assert outcome.problems and "RuntimeError" in outcome.problems[0]
    assert "Doe" not in outcome.problems[0]


def test_engine_messages_lose_their_command_line_hints() -> None:
    files = named(thorax_files())
    del files["rtplan"]
    with pytest.raises(PlanError) as err:
        evaluate_plan(read_plan(**files), NSCLC)
    assert "--plan-fractions" in str(err.value)
    worded = app_wording(str(err.value))
    assert "--" not in worded and "fractions in this dose file" in worded
    assert app_wording("no structure for role lung (Lungs minus GTV) in RS.dcm: …; choose one "
                       "with --structure lung=NAME").endswith("choose one in the drop-down of "
                                                          "role lung")
    assert app_wording("--plan-fractions 25 overrides the 30 fractions of RP.dcm") == \
        "the 25 fractions entered override the 30 fractions of RP.dcm"
