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
import json
import sys
from pathlib import Path
from typing import Any

from mnist_bench.runfile import storage
from mnist_bench.runfile.records import JOURNAL_SUFFIX, Record, journal_path, replay_journal

path_for = journal_path  # RUN.json -> RUN.json.journal
replay = replay_journal  # reading lives with the other readers, in mnist_bench.runfile.records

SUFFIX = JOURNAL_SUFFIX


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
