"""Generated blocks in the docs: text written from saved (hash-checked) JSON between markers.

Every number of a doc page that comes from a saved evaluation or model sits in a block::

    <!-- generated: rtoe-calibration nsclc -->
    | ... table ... |
    <!-- end generated -->

``generated`` is the block family's tag (a page may hold several families, each rewritten by its
own module: ``served`` for the drug card's served-model section), then the block's kind and one
argument (a protocol, a setting, ``all``). A module that owns a family gives a renderer
``(kind, argument) → markdown``; :func:`stale_blocks` lists the blocks whose text differs from
what the renderer gives (a unit test per card keeps it empty) and :func:`rewrite_blocks` rewrites
them. :func:`markdown_table` and :func:`number` are the cells' formatting.

Users: :mod:`engine.arclids.cards` (RTOE and ODM cards), :mod:`engine.drug.cards` (the drug card's
evaluation tables) and :mod:`engine.drug.serving_card` (its served-model section).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Renderer", "block_pattern", "markdown_table", "number", "rewrite_blocks",
           "stale_blocks"]

Renderer = Callable[[str, str], str]
"""A block's markdown from its kind and argument (ending in a newline)."""


def block_pattern(tag: str = "generated", arg: str = r"[a-z0-9_]+") -> re.Pattern[str]:
    """The blocks of the family ``tag`` whose argument matches the regular expression ``arg``;
    groups ``kind``, ``arg`` and ``body`` (the text between the marker lines)."""
    return re.compile(
        rf"(<!-- {re.escape(tag)}: (?P<kind>[a-z-]+) (?P<arg>{arg}) -->\n)(?P<body>.*?)"
        rf"(<!-- end {re.escape(tag)} -->)",
        re.DOTALL,
    )


def _fresh(text: str, pattern: re.Pattern[str],
           render: Renderer) -> list[tuple[re.Match[str], str]]:
    return [(m, render(m["kind"], m["arg"])) for m in pattern.finditer(text)]


def stale_blocks(card: Path, pattern: re.Pattern[str], render: Renderer) -> list[str]:
    """``"<kind> <arg>"`` of each block of the page ``card`` whose text differs from
    ``render``'s (file order); ``render`` is not called when the page has no block."""
    text = Path(card).read_text(encoding="utf-8")
    return [f"{m['kind']} {m['arg']}" for m, fresh in _fresh(text, pattern, render)
            if m["body"] != fresh]


def rewrite_blocks(card: Path, pattern: re.Pattern[str], render: Renderer) -> int:
    """Rewrite every block of the page ``card`` with ``render``'s text (the rest of the page
    untouched); returns how many blocks changed."""
    path = Path(card)
    text = path.read_text(encoding="utf-8")
    changed = 0
    for m, fresh in reversed(_fresh(text, pattern, render)):
        if m["body"] != fresh:
            changed += 1
            text = text[: m.start("body")] + fresh + text[m.end("body"):]
    path.write_text(text, encoding="utf-8")
    return changed


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   text_columns: int | None = None) -> str:
    """A markdown table, ending in a newline. With ``text_columns``, the first ``text_columns``
    columns are left-aligned and the rest right-aligned (numbers); without, no alignment."""
    rule = ("|" + "---|" * len(header) if text_columns is None else
            "|" + "|".join("---" if i < text_columns else "---:"
                           for i in range(len(header))) + "|")
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; "n/a" when it is None."""
    return "n/a" if value is None else f"{value:.{digits}f}"
