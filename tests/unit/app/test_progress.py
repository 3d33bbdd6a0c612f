"""app.panels.widgets.Progress and progress_bar: a worker's progress as the page shows it."""

from __future__ import annotations

from app.panels.widgets import Progress, progress_bar


def test_progress_is_clipped_to_zero_to_one_and_keeps_the_last_text() -> None:
    progress = Progress()
    assert progress.get() == (0.0, "")
    progress(1.7, "evaluating")
    assert progress.get() == (1.0, "evaluating")
    progress(-0.2, "queued")
    assert progress.get() == (0.0, "queued")


def test_the_bar_shows_at_least_a_sliver_and_states_the_true_share() -> None:
    html = str(progress_bar(0.0, class_="progress mt-2", style="height: 8px"))
    assert 'style="width: 5%"' in html and 'aria-valuenow="0"' in html
    html = str(progress_bar(0.426, class_="progress", style="height: 0.8rem"))
    assert 'style="width: 43%"' in html and 'aria-valuenow="43"' in html
    assert 'class="progress"' in html and 'style="height: 0.8rem"' in html
