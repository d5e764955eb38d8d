"""Standard JSON (no NaN, no infinity): every command's `--format json`, and the worker's
messages to its launcher. No framework."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity, however deep, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def utc(when: datetime) -> str:
    """ISO 8601 in UTC with a Z, as run files write `started_utc`."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dumps(data: dict[str, Any]) -> str:
    """One JSON object, indented, ending in a newline."""
    return json.dumps(finite(data), indent=2, allow_nan=False) + "\n"
