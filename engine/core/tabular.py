"""Reading an uploaded CSV file: bytes → text → numbered records, and the problems found on the way.

The generic layer under every table a user gives us (the case table of
:mod:`engine.core.schema`, the expression upload of :mod:`engine.sf2.data`):

* :class:`Problem` and :class:`SchemaError` — one thing wrong with an input table, and the
  refusal listing every problem found;
* the file-level checks, in the order they run: :func:`read_bytes` (source type, size limit),
  :func:`decode` (empty, binary, UTF-16, not UTF-8), :func:`csv_records` (malformed quoting, with
  spreadsheet row numbers) and :func:`check_separator` (semicolon- or tab-separated files);
* small formatting helpers for messages: :func:`short` (quoted values truncated to 40
  characters), :func:`format_number`, :func:`format_size`, :func:`column_letter`.

Messages quote the offending text so the user can find it; nothing here logs.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

__all__ = [
    "FORMULA_START",
    "VALUE_CHARS",
    "Problem",
    "SchemaError",
    "cell_text",
    "check_separator",
    "column_letter",
    "csv_records",
    "decode",
    "fatal",
    "format_number",
    "format_size",
    "formula_safe",
    "is_blank",
    "neutralise_formula",
    "read_bytes",
    "restore_formula",
    "short",
]

VALUE_CHARS = 40
"""Longest quoted value in a message, characters (longer ones end in "…")."""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make a spreadsheet read a cell as a formula (CSV injection)."""

_NOT_UTF8 = "the file is not UTF-8 text; save the file as CSV UTF-8"


# --------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input table."""

    row: int | None
    """1-based row as a spreadsheet shows it (header = row 1, first data row = row 2); None for
    file- and header-level problems."""
    column: str | None
    """Column name the problem is about, None when it concerns a whole row or the file."""
    value: str | None
    """The offending raw text, truncated to 40 characters; None when there is none."""
    message: str
    """One sentence naming the field, the value and what is accepted."""

    def __str__(self) -> str:
        return self.message


class SchemaError(ValueError):
    """The input was refused; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        if not self.problems:
            raise ValueError("SchemaError needs at least one problem")
        super().__init__(self._summary())

    def _summary(self) -> str:
        first = self.problems[0].message
        more = len(self.problems) - 1
        if more == 0:
            return first
        return f"{first} (and {more} more problem{'s' if more > 1 else ''})"

    def __str__(self) -> str:
        return self._summary()


def fatal(message: str, *, row: int | None = None, value: str | None = None) -> SchemaError:
    """A refusal with the one problem ``message`` (a file-level problem stops the reading)."""
    return SchemaError([Problem(row, None, value, message)])


# --------------------------------------------------------------------------------------------
# Formatting for messages


def short(text: str) -> str:
    """``text`` truncated to :data:`VALUE_CHARS` characters (the last one "…" when cut)."""
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def format_number(x: float) -> str:
    """A range bound as people write it: 0, 1.5, 20000, -4.5."""
    return format(float(x), ".12g")


def format_size(n_bytes: float) -> str:
    """A file size in bytes, kB or MB (binary units, 3 significant digits)."""
    if n_bytes >= 1024 * 1024:
        return f"{n_bytes / (1024 * 1024):.3g} MB"
    if n_bytes >= 1024:
        return f"{n_bytes / 1024:.3g} kB"
    return f"{int(n_bytes)} bytes"


def column_letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based column index (0 → A, 26 → AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


# --------------------------------------------------------------------------------------------
# Bytes → text → records (file-level checks)


def read_bytes(
    source: str | bytes | os.PathLike | IO, max_bytes: int, *, reader: str = "read_cases"
) -> bytes:
    """The raw bytes of ``source``, reading at most ``max_bytes`` + 1 of them.

    Args:
        source: ``bytes`` (an upload's raw content), a ``str`` of CSV *text* (never a file
            name), an ``os.PathLike`` read from disk, or a binary or text file object read from
            its current position.
        max_bytes: largest accepted size, bytes (> 0).
        reader: name of the public function reading the file, for the TypeError messages.

    Raises:
        SchemaError: the file is larger than ``max_bytes`` or not UTF-8 encodable text.
        TypeError: ``source`` is of an unsupported type, or a str that looks like a file name.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str):
        if "\n" not in source and "," not in source and source.lower().endswith((".csv", ".txt")):
            raise TypeError(
                f"{reader} reads a str as CSV text, and this one looks like a file name; "
                "pass pathlib.Path(...) to read a file"
            )
        try:
            data = source.encode("utf-8")
        except UnicodeEncodeError as err:
            raise fatal(_NOT_UTF8) from err
    elif isinstance(source, os.PathLike):
        path = Path(source)
        size = path.stat().st_size
        if size > max_bytes:
            raise fatal(_too_large(max_bytes))
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    elif hasattr(source, "read"):
        try:
            chunk = source.read(max_bytes + 1)
        except UnicodeDecodeError as err:
            raise fatal(_NOT_UTF8) from err
        if isinstance(chunk, str):
            try:
                data = chunk.encode("utf-8")
            except UnicodeEncodeError as err:
                raise fatal(_NOT_UTF8) from err
        else:
            data = bytes(chunk)
    else:
        raise TypeError(f"{reader} cannot read a {type(source).__name__}")
    if len(data) > max_bytes:
        raise fatal(_too_large(max_bytes))
    return data


def _too_large(max_bytes: int) -> str:
    return (
        f"the file is larger than the limit of {format_size(max_bytes)}; "
        "split it into smaller files"
    )


def _looks_utf16(data: bytes) -> bool:
    head = data[:200]
    if len(head) < 4:
        return False
    return head[1::2].count(0) > 0.4 * len(head[1::2]) or head[0::2].count(0) > 0.4 * len(
        head[0::2]
    )


def decode(data: bytes) -> str:
    """UTF-8 (optionally with BOM) text of ``data``, or a SchemaError naming the encoding."""
    if not data:
        raise fatal("the file is empty (0 bytes); expected CSV text with a header row")
    if data.startswith(b"PK\x03\x04"):
        raise fatal(
            "the file is binary (a zip archive such as an Excel .xlsx workbook), not CSV text; "
            "save the sheet as CSV UTF-8"
        )
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise fatal(
            "the file is binary (an old Excel .xls workbook), not CSV text; "
            "save the sheet as CSV UTF-8"
        )
    if data.startswith(b"%PDF"):
        raise fatal("the file is binary (a PDF document), not CSV text; upload a CSV file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(data):
        raise fatal(
            "the file is UTF-16 text, not UTF-8; save the file as CSV UTF-8 "
            "(in Excel: Save As, CSV UTF-8 (Comma delimited))"
        )
    if b"\x00" in data:
        raise fatal("the file is binary (it contains NUL bytes), not CSV text; upload a CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte = data[err.start : err.start + 1].hex().upper()
        raise fatal(
            f"the file is not UTF-8 text (byte 0x{byte} on line {line} is not valid UTF-8); "
            "save the file as CSV UTF-8"
        ) from err
    if not text.strip():
        raise fatal("the file is empty (it holds only blank lines); expected a header row")
    return text


def csv_records(text: str) -> list[tuple[int, list[str]]]:
    """CSV records of ``text`` with their spreadsheet row numbers (the first record is row 1)."""
    out: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row, record in enumerate(reader, start=1):
            out.append((row, record))
    except csv.Error as err:
        row = len(out) + 1
        raise fatal(
            f"row {row}: the CSV is malformed ({err}); check for a stray or unmatched "
            "double quote",
            row=row,
        ) from err
    return out


def is_blank(record: Sequence[str]) -> bool:
    """True when every field of ``record`` is empty or whitespace."""
    return all(not field.strip() for field in record)


def check_separator(header: Sequence[str]) -> None:
    """Refuse a header row that shows the file is semicolon- or tab-separated."""
    stripped = [h.strip() for h in header]
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if any(sep in h for h in stripped):
            raise fatal(
                f"the file is {name}-separated; use commas as the separator (save as CSV UTF-8 "
                "(Comma delimited), with a point as the decimal separator)",
                value=short(header[0]),
            )


def cell_text(value: object) -> str:
    """Raw text of an in-memory cell, as it would be written to CSV (missing → "")."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


# --------------------------------------------------------------------------------------------
# Writing: user-typed text a spreadsheet must not run


def neutralise_formula(text: str) -> str:
    """``text`` with an apostrophe in front when it starts like a formula (``=``, ``+``, ``-``,
    ``@``, tab, carriage return), the spreadsheet convention for "this is text"; other text is
    returned unchanged. :func:`restore_formula` undoes it when such a file is read again."""
    return "'" + text if text[:1] in FORMULA_START else text


def restore_formula(text: str) -> str:
    """Undo :func:`neutralise_formula`: drop the apostrophe before a formula-leading character,
    so that a file the app wrote uploads again unchanged."""
    return text[1:] if text[:1] == "'" and text[1:2] in FORMULA_START else text


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (object or string columns) are neutralised, for
    every CSV the app or the CLI writes; numbers are left as they are (a negative number is
    not a formula)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = pd.Series(
                [neutralise_formula(v) if isinstance(v, str) else v for v in out[column]],
                index=out.index, dtype=object)
    return out
