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

import models
from bench.config import BACKENDS, DEVICES, OPTIMIZERS, SCHEDULES, RunConfig
from bench.errors import UserError

# key -> (description of the expected type, check)
_INT = ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
_NUM = ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool))
_STR = ("a string", lambda v: isinstance(v, str))
_BOOL = ("true or false", lambda v: isinstance(v, bool))


def _list_of(kind: tuple[str, Any]) -> tuple[str, Any]:
    name, check = kind
    return (
        f"a list of {name.removeprefix('an ').removeprefix('a ')}s",
        lambda v: isinstance(v, list) and bool(v) and all(check(x) for x in v),
    )


TOP_LEVEL = {
    "description": _STR,
    "variants": _list_of(_STR),
    "backends": _list_of(_STR),
    "devices": _list_of(_STR),
    "seeds": _list_of(_INT),
    "data": _STR,
    "train_limit": _INT,
    "test_limit": _INT,
    "results_dir": _STR,
    "targets": _list_of(_NUM),
    "infer_batch_sizes": _list_of(_INT),
    "check_determinism": _BOOL,
    "record_timeout": _NUM,
    "threads": _INT,
    "settings": ("a table", lambda v: isinstance(v, dict)),
    "grid": ("a table", lambda v: isinstance(v, dict)),
}
SETTINGS = {
    "epochs": _INT,
    "batch_size": _INT,
    "optimizer": _STR,
    "learning_rate": _NUM,
    "schedule": _STR,
}
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES}


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a suite; `overrides` (from the command line) win over the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
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
        for key, value in table.items():
            if key not in known:
                self.fail(key, f"unknown key {key!r}{section}; valid: {', '.join(known)}")
            kind, check = known[key]
            if not check(value):
                self.fail(key, f"{key!r} must be {kind} (got {value!r})")

    def check_choice(self, key: str, values: list[str], valid: tuple[str, ...] | list[str]):
        for value in values:
            if value not in valid:
                self.fail(
                    key, f"unknown {key.rstrip('s')} {value!r}; valid: {', '.join(valid)}", value
                )

    def config(self, raw: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
        self.check_keys(raw, TOP_LEVEL, "")
        settings, grid = raw.get("settings", {}), raw.get("grid", {})
        self.check_keys(settings, SETTINGS, " in [settings]")
        self.check_keys(grid, {k: _list_of(v) for k, v in SETTINGS.items()}, " in [grid]")
        for key in set(settings) & set(grid):
            self.fail(key, f"{key!r} is in both [settings] and [grid]")
        self.check_choice("variants", raw.get("variants", []), [*models.names(), "all"])
        self.check_choice("backends", raw.get("backends", []), BACKENDS)
        self.check_choice("devices", raw.get("devices", []), DEVICES)
        for key, valid in CHOICES.items():
            self.check_choice(key, [settings[key]] if key in settings else [], valid)
            self.check_choice(key, grid.get(key, []), valid)
        values = {k: v for k, v in raw.items() if k not in ("description", "settings", "grid")}
        values.update(settings)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        keys = list(grid)
        points = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))
        ]
        values["grid"] = tuple(points) or ({},)
        values.update(overrides)
        values["suite"] = str(self.path)
        return RunConfig(**values)
