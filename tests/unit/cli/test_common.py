"""engine.cli.common: the input-file and comma-list checks every command shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import settings
from engine.cli.common import InputError, comma_list, models_root, read_input
from engine.core.tabular import Problem, SchemaError


def test_comma_list_strips_checks_and_names_the_bad_items() -> None:
    assert comma_list(None, ("a", "b"), "--x") == ()
    assert comma_list(" a, ,b ", ("a", "b"), "--x") == ("a", "b")
    with pytest.raises(InputError, match=r"^--x c,d: accepted are a, b$"):
        comma_list("a,c,d", ("a", "b"), "--x")


def test_read_input_names_a_missing_or_refused_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_input(str(tmp_path / "none.csv"), Path.read_text)
    file = tmp_path / "cases.csv"
    file.write_text("x\n")
    assert read_input(str(file), Path.read_text) == "x\n"

    def refuse(path: Path) -> None:
        raise SchemaError([Problem(2, "x", "?", "row 2, column x: refused")])

    with pytest.raises(InputError, match=r"^cases.csv: .*row 2, column x: refused"):
        read_input(str(file), refuse)


def test_models_root_is_the_flag_else_the_configured_folder(tmp_path: Path) -> None:
    assert models_root(str(tmp_path)) == tmp_path
    assert models_root(None) == settings.models_dir()
