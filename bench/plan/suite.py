"""TOML suites: a grid of variants x backends x devices x seeds x settings, validated up front.

    description = "optimizers on the seed's dense networks"
    variants = ["two-dense", "flatten-dense"]
    backends = ["jax", "torch"]
    seeds = [0, 1, 2]

    [settings]            # fixed for every job
    epochs = 3

    [grid]                # every combination of these lists
    optimizer = ["adam", "sgd"]
    learning_rate = [1e-3, 3e-3]

Every problem is a `UserError` naming the file, the line where it can be found, and the valid
choices.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

from mnist_bench.core.config import (
    GRID_FIELDS,
    ConfigError,
    RunConfig,
    TrainSettings,
    check_job_count,
    check_value,
    checks,
)
from mnist_bench.core.errors import UserError
from mnist_bench.plan import variants
from mnist_bench.runfile import files

# The schema is the configuration's own: top-level keys are RunConfig's fields, [settings] and
# [grid] keys the settings a grid may vary, each checked by its field's own check.
# (The training settings and Keras knobs go in [settings]; limits and threads may stand at the top
# too.)
TOP_LEVEL = {
    "description": {"kind": "str"},
    **{
        name: check
        for name, check in checks(RunConfig).items()
        if name != "suite"
        and name not in ("epochs", "batch_size", "optimizer", "learning_rate", "schedule")
        and name not in ("jit_compile", "dtype_policy", "steps_per_execution")
    },
    "settings": None,  # tables, checked key by key
    "grid": None,
}
SETTINGS = {name: check for name, check in checks(TrainSettings).items() if name in GRID_FIELDS}


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a suite; `overrides` (from the command line) win over the file."""
    path = Path(path)
    try:
        text = files.read_bytes(path, limit=files.SUITE_LIMIT, what="suite").decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    return _Validator(path, text).config(raw, overrides or {})


class _Validator:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def where(self, key: str, value: Any = None) -> str:
        """`file:line` of the first line assigning `key` (or mentioning `value`)."""
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for number, line in enumerate(self.lines, 1):
            if pattern.match(line) or (value is not None and f'"{value}"' in line):
                return f"{self.path}:{number}"
        return str(self.path)

    def fail(self, key: str, message: str, value: Any = None) -> None:
        raise UserError(f"{self.where(key, value)}: {message}")

    def check_keys(self, table: dict[str, Any], known: dict[str, Any], section: str) -> None:
        for key in table:
            if key not in known:
                self.fail(key, f"unknown key {key!r}{section}; valid: {', '.join(known)}")

    def check_values(self, table: dict[str, Any], known: dict[str, Any], *, grid: bool = False):
        """Each value by its field's check (in [grid], a list of such values)."""
        for key, value in table.items():
            check = known.get(key)
            if check is None:
                if not isinstance(value, dict):
                    self.fail(key, f"{key!r} must be a table (got {value!r})")
                continue
            try:
                check_value(key, value, {**check, "list": True} if grid else check)
            except ConfigError as exc:
                self.fail(key, str(exc), _culprit(value))

    def check_choice(self, key: str, values: list[str], valid: tuple[str, ...] | list[str]):
        for value in values:
            if value not in valid:
                self.fail(
                    key, f"unknown {key.rstrip('s')} {value!r}; valid: {', '.join(valid)}", value
                )

    def config(self, raw: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
        self.check_keys(raw, TOP_LEVEL, "")
        self.check_values(raw, TOP_LEVEL)
        settings, grid = raw.get("settings", {}), raw.get("grid", {})
        self.check_keys(settings, SETTINGS, " in [settings]")
        self.check_keys(grid, SETTINGS, " in [grid]")
        self.check_values(settings, SETTINGS)
        self.check_values(grid, SETTINGS, grid=True)
        for key in set(settings) & set(grid):
            self.fail(key, f"{key!r} is in both [settings] and [grid]")
        for name in raw.get("variants", []):
            if name != "all":
                try:
                    variants.parse(name)  # loaded (in a child process) when the run plans
                except UserError as exc:
                    self.fail("variants", str(exc), name)
        values = {k: v for k, v in raw.items() if k not in ("description", "settings", "grid")}
        values.update(settings)
        keys = list(grid)
        try:  # counted before the grid is built
            check_job_count({key: len(grid[key]) for key in keys})
        except ConfigError as exc:
            raise UserError(f"{self.path}: {exc}") from None
        points = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))
        ]
        values["grid"] = tuple(points) or ({},)
        values.update(overrides)
        values["suite"] = str(self.path)
        try:
            return RunConfig(**values)
        except ConfigError as exc:  # a value the file and the command line give together
            where = self.where(exc.name) if exc.name not in overrides else str(self.path)
            raise UserError(f"{where}: {exc}") from None


def _culprit(value: Any) -> Any:
    """The value to look for on the line, when the key alone does not find it."""
    return value if isinstance(value, str) else None
