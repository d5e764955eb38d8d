"""A run's journal: each record appended as it lands, folded into the run file when the run stops.

Rewriting the whole run file after every record cost time in proportion to the records already
in it (215 ms a record at 1,000). Appending costs the same at any size: one JSON line per record,
written with O_APPEND and fsynced (`storage.append_durable`). The run file itself is written
whole and atomically only when the run starts or resumes (status `running`) and when it stops
(`complete` or `interrupted`); each of those writes holds every record, so the journal goes.

`RUN.json.journal` sits beside `RUN.json`; `report`'s folder scan (`*.json`) never picks it up.
A process killed mid-run leaves both: `load_run` folds the journal into a `running` run file
(records deduplicated by key), and `--resume` folds it into the file. A crash mid-write can
leave a torn last line; it is ignored with a warning.

A line is `{"record": {...}}`, with `"environment": {...}` beside the record when the run's
environment block changed since the run file or the previous line (a backend reported its
version and devices), so a crash loses no provenance either.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import files, storage
from bench.errors import UserError
from bench.records import Record, RunFile, _explain

SUFFIX = ".journal"


def path_for(run_path: Path) -> Path:
    """The journal of the run file at `run_path`: `RUN.json.journal`."""
    return run_path.with_name(run_path.name + SUFFIX)


class Journal:
    """Appends records to the journal of one run file.

    Args:
        run_path: the run file.
        environment: the environment block as the run file holds it; a record line carries the
            block again only when it differs from the last one saved.
    """

    def __init__(self, run_path: Path, environment: dict[str, Any]) -> None:
        self.path = path_for(run_path)
        self._environment = copy.deepcopy(environment)

    def append(self, record: Record, environment: dict[str, Any]) -> None:
        """Save `record` (and `environment`, if it changed).

        Raises:
            UserError: the append failed (disk full, folder removed); the message names the path.
        """
        entry: dict[str, Any] = {"record": record.to_dict()}
        changed = environment != self._environment
        if changed:
            entry["environment"] = environment
        line = json.dumps(entry, allow_nan=False, separators=(",", ":")).encode() + b"\n"
        storage.append_durable(self.path, line, what="results")
        if changed:
            self._environment = copy.deepcopy(environment)


def fold(run_path: Path, data: dict[str, Any]) -> None:
    """Write the whole run file (`data`, which holds every record) atomically, then remove its
    journal, whose records it now holds.

    Raises:
        UserError: the write failed; the journal is left as it was.
    """
    storage.write_json(run_path, data)
    try:
        path_for(run_path).unlink(missing_ok=True)
    except OSError as exc:  # harmless: its records are in the file, so replaying it adds none
        _warn(
            f"{path_for(run_path)}: cannot remove ({exc.strerror}); its records are in {run_path}"
        )


def _warn(message: str) -> None:
    print(f"mnist-bench: warning: {message}", file=sys.stderr)


@dataclass
class _Entry:
    record: Record
    environment: dict[str, Any] | None = None


@functools.cache
def _decoder() -> Any:
    import msgspec

    return msgspec.json.Decoder(_Entry)


def replay(run: RunFile, run_path: Path, warn: Callable[[str], None] = _warn) -> RunFile:
    """Fold the journal beside `run_path`, if any, into `run` in memory: its records that `run`
    lacks (by key), and the last environment block it saved. Returns `run`.

    Raises:
        UserError: the journal is unreadable, or a line other than the last is not an entry.
    """
    path = path_for(run_path)
    try:
        raw = files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run journal")
    except FileNotFoundError:
        return run
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    lines = raw.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    seen = {r.key for r in run.records}
    decoder = _decoder()
    for number, line in enumerate(lines, 1):
        try:
            entry = decoder.decode(line)
        except (ValueError, RecursionError) as exc:  # msgspec's errors are ValueErrors
            if number == len(lines):  # the write a crash cut short
                warn(f"{path}: last line is incomplete (a crash mid-write?); ignored")
                break
            reason = _explain(exc) if isinstance(exc, ValueError) else "nested too deeply"
            raise UserError(f"{path}: line {number} is not a journal entry ({reason})") from None
        if entry.environment is not None:
            run.environment = entry.environment
        if entry.record.key not in seen:
            seen.add(entry.record.key)
            run.records.append(entry.record)
    return run
