"""Checks for the fields of frozen config dataclasses: one wording for every refused value.

Every config (``engine.planner.config``, ``engine.planner.beamlet``, the ARCliDS RTOE, GAN, ODM
and Learning Mode configs, the SF2 configs) checks its fields in ``__post_init__`` with these
helpers, so a bad value is refused when the config is built, with a ``ValueError`` that names the
field, the value and what is accepted:

* :func:`check_range` — a finite number (optionally an integer) within bounds:
  ``"hidden = 0 is out of range; accepted an integer ≥ 1"``,
  ``"rho = 1.5 is out of range; accepted [0, 1]"``;
* :func:`check_interval` — a (low, high) pair of numbers within bounds, low ≤ high;
* :func:`check_choice` — one of a few values: ``"mode = 'x'; accepted terminal, cumulative"``;
* :func:`check_bool` — True or False;
* :func:`strict_from_dict` — build a config from its ``to_dict()`` form, refusing unknown keys;
  :class:`DictConfig` gives a config ``to_dict``/``from_dict`` built on it (configs saved as JSON
  beside model artifacts);
* :func:`json_ready` — a config's fields as JSON values, nested configs as dicts and tuples as
  lists (the ``to_dict`` of configs with tuple fields).

The field name is given by the caller as it should read in the message (``"alpha_per_gy low"``,
``"oar.sparing_gamma"``, ``"ODMConfig.hidden"``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeVar

__all__ = [
    "DictConfig",
    "check_bool",
    "check_choice",
    "check_interval",
    "check_range",
    "json_ready",
    "strict_from_dict",
]

C = TypeVar("C")


def _accepted(lo: float, hi: float, *, integer: bool, lo_open: bool, hi_open: bool) -> str:
    """What :func:`check_range` accepts, e.g. ``"[0.01, 1]"``, ``"an integer ≥ 1"``."""
    if math.isfinite(lo) and math.isfinite(hi):
        bounds = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        return f"an integer in {bounds}" if integer else bounds
    if math.isfinite(lo):
        bounds = f"{'>' if lo_open else '≥'} {lo:g}"
    elif math.isfinite(hi):
        bounds = f"{'<' if hi_open else '≤'} {hi:g}"
    else:
        return "an integer" if integer else "a finite number"
    return f"an integer {bounds}" if integer else bounds


def check_range(
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    integer: bool = False,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Refuse ``value`` unless it is a finite number with lo ≤ value ≤ hi.

    Args:
        name: the field as it should read in the message.
        value: the field's value.
        lo: lower bound (``-inf``: none); excluded with ``lo_open``.
        hi: upper bound (``inf``: none); excluded with ``hi_open``.
        integer: only whole numbers of an integer type (``int``, numpy integers; not bool).

    Raises:
        ValueError: ``"<name> = <value> is out of range; accepted <range>"``.
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = (
        number
        and (not integer or isinstance(value, numbers.Integral))
        and math.isfinite(value)
        and (value > lo if lo_open else value >= lo)
        and (value < hi if hi_open else value <= hi)
    )
    if not ok:
        accepted = _accepted(lo, hi, integer=integer, lo_open=lo_open, hi_open=hi_open)
        raise ValueError(f"{name} = {value!r} is out of range; accepted {accepted}")


def check_interval(name: str, pair: Any, lo: float, hi: float) -> None:
    """Refuse ``pair`` unless it is (low, high) with lo ≤ low ≤ high ≤ hi.

    Raises:
        ValueError: naming ``"<name> low"`` or ``"<name> high"`` (as :func:`check_range`), a
            pair of another length, or low > high.
    """
    if len(pair) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {pair!r}")
    a, b = (float(x) for x in pair)
    check_range(f"{name} low", a, lo, hi)
    check_range(f"{name} high", b, lo, hi)
    if a > b:
        raise ValueError(f"{name} = ({a:g}, {b:g}): low must not exceed high")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Refuse ``value`` unless it is one of ``choices``.

    Raises:
        ValueError: ``"<name> = <value>; accepted <choice>, <choice>, …"``.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} = {value!r}; accepted {', '.join(map(str, choices))}")


def check_bool(name: str, value: Any) -> None:
    """Refuse ``value`` unless it is True or False (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} = {value!r}; accepted True or False")


def strict_from_dict(cls: type[C], raw: Mapping[str, Any]) -> C:
    """``cls(**raw)`` for a config dataclass, refusing keys that are not fields of ``cls``.

    Raises:
        ValueError: ``"unknown <Class> field(s): a, b"``, or a field check of ``cls``.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**raw)


def json_ready(config: Any) -> dict[str, Any]:
    """The fields of a config dataclass as JSON values: nested configs as dicts (as
    :func:`dataclasses.asdict`), tuples as lists, at every depth."""

    def lists(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [lists(v) for v in value]
        if isinstance(value, dict):
            return {k: lists(v) for k, v in value.items()}
        return value

    return lists(dataclasses.asdict(config))


class DictConfig:
    """Base of a frozen config dataclass saved as JSON: :meth:`to_dict` and its inverse."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready field values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; unknown keys are an error (see :func:`strict_from_dict`)."""
        return strict_from_dict(cls, raw)
