"""Where plan files come from, their size limits, and the one exception every refusal raises.

A plan file is given as a path (the command line) or as ``(display name, bytes or path)`` (an
upload: the name the user's browser gave, and the content or the temporary file holding it), so
every message can name the file as the user knows it. Nothing here logs: file names can hold a
patient's name, so they appear only in the messages returned to the user who gave them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.core.config import check_range
from engine.core.tabular import format_size

__all__ = [
    "FileInput",
    "ImportLimits",
    "PlanError",
    "display_name",
    "read_limited",
]

FileInput = str | os.PathLike | tuple[str, bytes | os.PathLike]
"""A path, or ``(display name, content)`` where content is the bytes or a path to them."""

_MB = 1024 * 1024


class PlanError(ValueError):
    """A plan file or a choice that cannot be used: one sentence naming the file, the tag or the
    structure, what it holds and what was expected.

    ``problems`` lists every problem found when there are several (a DVH table's rows), each one
    sentence; the message is the first with "(and N more problems)".
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = problems or (message,)


@dataclass(frozen=True)
class ImportLimits:
    """Largest files accepted, bytes (a file over its limit is refused before it is parsed)."""

    rtdose_bytes: int = 512 * _MB
    """RTDOSE: a 1-mm dose grid over a whole thorax is ≈ 250 MB. Accepted ≥ 1."""
    rtstruct_bytes: int = 128 * _MB
    """RTSTRUCT (many finely contoured structures reach tens of MB). Accepted ≥ 1."""
    rtplan_bytes: int = 32 * _MB
    """RTPLAN. Accepted ≥ 1."""
    dvh_bytes: int = 20 * _MB
    """DVH table (CSV or the planning system's text export). Accepted ≥ 1."""

    def __post_init__(self) -> None:
        for name in ("rtdose_bytes", "rtstruct_bytes", "rtplan_bytes", "dvh_bytes"):
            check_range(name, getattr(self, name), 1, integer=True)

    def for_kind(self, kind: str) -> int:
        """The limit of a file kind: ``RTDOSE``, ``RTSTRUCT``, ``RTPLAN`` or ``DVH``."""
        return {"RTDOSE": self.rtdose_bytes, "RTSTRUCT": self.rtstruct_bytes,
                "RTPLAN": self.rtplan_bytes, "DVH": self.dvh_bytes}[kind]


def display_name(source: FileInput) -> str:
    """The name a message uses for ``source``: the given display name, or the path's file name."""
    if isinstance(source, tuple):
        return str(source[0])
    return Path(source).name


def read_limited(source: FileInput, max_bytes: int, what: str) -> bytes:
    """The bytes of ``source``, refusing more than ``max_bytes``.

    Args:
        source: a path, or (display name, bytes or path).
        max_bytes: the largest accepted size, bytes.
        what: what the file should be, for messages (e.g. ``"RTDOSE"``).

    Raises:
        PlanError: the file does not exist, cannot be read, or is larger than the limit.
    """
    name = display_name(source)
    content = source[1] if isinstance(source, tuple) else source
    if isinstance(content, bytes | bytearray | memoryview):
        data = bytes(content)
    else:
        path = Path(content)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise PlanError(_too_large(name, what, size, max_bytes))
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError as err:
            raise PlanError(f"{name}: no such file (expected the {what} file)") from err
        except IsADirectoryError as err:
            raise PlanError(f"{name} is a folder, not a file (expected the {what} file)") from err
        except OSError as err:
            raise PlanError(f"{name}: the file could not be read ({err.strerror})") from err
    if len(data) > max_bytes:
        raise PlanError(_too_large(name, what, len(data), max_bytes))
    if not data:
        raise PlanError(f"{name} is empty (0 bytes); expected the {what} file")
    return data


def _too_large(name: str, what: str, size: int, max_bytes: int) -> str:
    return (f"{name} is {format_size(size)}, larger than the limit of {format_size(max_bytes)} "
            f"for a {what} file")
