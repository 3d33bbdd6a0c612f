"""engine.platform.doc_blocks: generated blocks of a doc page found, checked and rewritten."""

from __future__ import annotations

from pathlib import Path

from engine.platform.doc_blocks import (
    block_pattern,
    markdown_table,
    number,
    rewrite_blocks,
    stale_blocks,
)

PAGE = """# Card

Prose before.
<!-- generated: table nsclc -->
| old |
<!-- end generated -->
Between.
<!-- served: table all -->
left alone
<!-- end served -->
<!-- generated: table hcc -->
fresh hcc
<!-- end generated -->
"""


def _render(kind: str, arg: str) -> str:
    return f"fresh {arg}\n"


def test_only_the_stale_blocks_of_the_family_are_listed_and_rewritten(tmp_path: Path) -> None:
    page = tmp_path / "card.md"
    page.write_text(PAGE, encoding="utf-8")
    pattern = block_pattern("generated", r"[a-z0-9]+")
    assert stale_blocks(page, pattern, _render) == ["table nsclc"]
    assert rewrite_blocks(page, pattern, _render) == 1
    assert page.read_text(encoding="utf-8") == PAGE.replace("| old |", "fresh nsclc")
    assert stale_blocks(page, pattern, _render) == []
    assert rewrite_blocks(page, pattern, _render) == 0


def test_a_page_without_blocks_never_renders(tmp_path: Path) -> None:
    page = tmp_path / "plain.md"
    page.write_text("no blocks\n", encoding="utf-8")

    def fail(kind: str, arg: str) -> str:
        raise AssertionError("rendered")

    assert stale_blocks(page, block_pattern(), fail) == []
    assert rewrite_blocks(page, block_pattern(), fail) == 0


def test_tables_and_numbers() -> None:
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert markdown_table(["a", "b", "c"], [], text_columns=1) == "| a | b | c |\n|---|---:|---:|\n"
    assert number(None) == "n/a" and number(0.12345) == "0.123" and number(2, 1) == "2.0"
