"""What running any ``artds`` command shares: the one-line error policy (exit code 2), progress
logging to stderr, the executor behind ``--executor``/``--address``/``--workers``, the checks of
an input file and of a comma-separated flag, where ``--models-dir`` points, and numbers made
ready for JSON."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from engine.platform.executor import Executor

__all__ = [
    "InputError",
    "comma_list",
    "executor",
    "finite",
    "input_errors",
    "log",
    "models_root",
    "read_input",
    "rounded",
    "run",
    "single_torch_thread",
    "terminal_safe",
]

T = TypeVar("T")


class InputError(Exception):
    """A user-facing input problem: printed as one line, exit code 2."""


def run(args: argparse.Namespace) -> int:
    """Run the parsed command: its exit code, or 2 with one line on stderr for an InputError."""
    try:
        return int(args.func(args))
    except InputError as err:
        print(f"artds {args.command}: error: {terminal_safe(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`artds recommend … | head`): stop quietly, as Unix tools do;
        # stdout is pointed at devnull so the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def terminal_safe(text: str) -> str:
    """``text`` on one line and safe for a terminal: line breaks, tabs and other control
    characters (e.g. inside a quoted id of a refused file) are shown escaped, never raw."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


@contextmanager
def input_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Inside the block an exception of ``kinds`` (a refused config value, a broken artifact, ...)
    is the user's input problem: it becomes an :class:`InputError` with the same one line."""
    try:
        yield
    except kinds as err:
        raise InputError(str(err)) from err


def read_input(path: str, read: Callable[[Path], T]) -> T:
    """The file ``path`` given by a flag, read with ``read``: a missing file, or one ``read``
    refuses (:class:`~engine.core.tabular.SchemaError`, every problem on one line), is an
    :class:`InputError` naming the file."""
    from engine.core.tabular import SchemaError

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return read(file)
    except SchemaError as err:
        raise InputError(f"{file.name}: {err}") from err


def comma_list(text: str | None, accepted: Sequence[str], flag: str) -> tuple[str, ...]:
    """A comma-separated flag value (blanks around items ignored; empty: ``()``), every item
    one of ``accepted``, else an :class:`InputError` naming the flag, the bad items and the
    accepted ones."""
    if not text:
        return ()
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in accepted]
    if bad:
        raise InputError(f"{flag} {','.join(bad)}: accepted are {', '.join(accepted)}")
    return items


def models_root(models_dir: str | None) -> Path:
    """The folder ``--models-dir`` names, else the configured one (``$ARTDS_MODELS_DIR`` or
    models/): where a command says it wrote or saved an artifact."""
    from engine.settings import models_dir as configured

    return configured(models_dir)


def log(message: str) -> None:
    """Progress messages of long runs go to stderr, so stdout stays the result."""
    print(message, file=sys.stderr)


def single_torch_thread() -> None:
    """One torch thread per process: training parallelises over processes (the executor)."""
    import torch

    torch.set_num_threads(1)


@contextmanager
def executor(args: argparse.Namespace) -> Iterator[Executor]:
    """The executor asked for by ``--executor``, ``--address`` and ``--workers``, entered (it
    shuts down on leaving); this process keeps to one torch thread. A bad combination of the
    flags is an :class:`InputError`."""
    from engine.platform.executor import make_executor

    single_torch_thread()
    with input_errors(ValueError):
        chosen = make_executor(args.executor, address=args.address, n_workers=args.workers)
    with chosen:
        yield chosen


def _map_floats(value: object, f: Callable[[float], object]) -> object:
    """``value`` with ``f`` applied to every float inside its lists and dicts (recursively)."""
    if isinstance(value, float):
        return f(value)
    if isinstance(value, list):
        return [_map_floats(v, f) for v in value]
    if isinstance(value, dict):
        return {k: _map_floats(v, f) for k, v in value.items()}
    return value


def rounded(value: object) -> object:
    """Every float rounded to 6 decimals, recursively (JSON output)."""
    return _map_floats(value, lambda v: round(v, 6))


def finite(value: object) -> object:
    """NaN/inf → None (strict JSON), recursively."""
    return _map_floats(value, lambda v: v if math.isfinite(v) else None)
