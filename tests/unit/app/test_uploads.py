"""app.panels.widgets.read_upload deletes the uploaded file (and its folder, left empty) once
read, whether the file was accepted, refused or unreadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.panels.widgets import read_upload
from engine.core.tabular import Problem, SchemaError


def _upload(tmp_path: Path, name: str, text: str) -> list[dict]:
    folder = tmp_path / "fileupload-x" / "job1"  # as Shiny lays out an upload
    folder.mkdir(parents=True)
    path = folder / "0.csv"
    path.write_text(text)
    return [{"name": name, "size": len(text), "type": "text/csv", "datapath": str(path)}]


def _refuse(path: Path) -> None:
    raise SchemaError([Problem(1, "x", "?", "row 1, column x: refused")])


def _unreadable(path: Path) -> None:
    raise ValueError("not UTF-8")


@pytest.mark.parametrize(("read", "expected"), [
    (lambda path: path.read_text(), "a,b\n"),
    (_refuse, [Problem(1, "x", "?", "row 1, column x: refused")]),
    (_unreadable, [Problem(None, None, None, "the file could not be read (not UTF-8)")]),
])
def test_the_uploaded_file_goes_once_read(tmp_path: Path, read, expected) -> None:
    files = _upload(tmp_path, "cases.csv", "a,b\n")
    assert read_upload(files, read) == ("cases.csv", expected)
    assert not Path(files[0]["datapath"]).exists()
    assert not (tmp_path / "fileupload-x" / "job1").exists()
    assert (tmp_path / "fileupload-x").is_dir()  # Shiny's own folder: Shiny removes it
    assert read_upload(None, read) is None
