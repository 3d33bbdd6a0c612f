"""Flags shared by several ``artds`` commands, each declared once as an argparse parent parser.

A command module adds its sub-command with ``sub.add_parser(name, parents=[...])``, so
``--protocol``, ``--models-dir``, ``--json``, ``--seed`` and the executor flags (``--executor``,
``--address``, ``--workers``) read the same in every command. Parents are built per call (argparse
shares a parent's action objects with each child); ``--seed`` and the executor flags take the
command's own help text.
"""

from __future__ import annotations

import argparse

from engine.core.protocols import PROTOCOL_NAMES

__all__ = [
    "EXECUTORS",
    "Commands",
    "executor_flags",
    "json_flag",
    "models_dir_flag",
    "protocol_flag",
    "seed_flag",
]

Commands = argparse._SubParsersAction  # what ``add_subparsers`` returns
"""The sub-command table a command module adds its parsers to."""

EXECUTORS = ("serial", "local", "ray")
"""``--executor`` choices: in-process, a local process pool, a Ray cluster."""


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def protocol_flag() -> argparse.ArgumentParser:
    """``--protocol`` (required): one of the shipped protocols."""
    parent = _parent()
    parent.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    return parent


def models_dir_flag() -> argparse.ArgumentParser:
    """``--models-dir``: the artifact folder, ``models/`` by default."""
    parent = _parent()
    parent.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    return parent


def json_flag() -> argparse.ArgumentParser:
    """``--json``: print one JSON object instead of text."""
    parent = _parent()
    parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def seed_flag(help_text: str = "training seed (default 0)",
              default: int | None = 0) -> argparse.ArgumentParser:
    """``--seed`` (an int), with the command's own help and default."""
    parent = _parent()
    parent.add_argument("--seed", type=int, default=default, help=help_text)
    return parent


def executor_flags(where: str, *,
                   address_help: str = "Ray cluster address (with --executor ray)",
                   workers_help: str = "local pool size (default: cores)",
                   ) -> argparse.ArgumentParser:
    """``--executor`` (help ``where``: what runs where), ``--address`` and ``--workers``; read
    by :func:`engine.cli.common.executor`."""
    parent = _parent()
    parent.add_argument("--executor", default="local", choices=EXECUTORS, help=where)
    parent.add_argument("--address", default=None, help=address_help)
    parent.add_argument("--workers", type=int, default=None, help=workers_help)
    return parent
