"""Values as the store's columns want them: the current time and JSON-safe data.

Time columns take timezone-aware UTC datetimes (:class:`engine.platform.store.tables.UTCDateTime`
refuses naive ones) and JSON columns plain JSON, which caller data (numpy scalars, NaN, pandas NA)
is not until :func:`json_safe` has converted it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["json_safe", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf and pandas NA become None, numpy scalars plain numbers."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int | str):
        return value
    try:  # pandas NA and friends
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
