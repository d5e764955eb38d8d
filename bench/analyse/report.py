"""Run files loaded, de-duplicated and grouped into rows: the `Report` that every
format of `mnist-bench report` (and `export`, and `Results.table`) renders.

Reads run files and nothing else; imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnist_bench.analyse.defaults import GROUP_KEYS
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import collect, machine
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    import pandas
    from mnist_bench.analyse.rows import Row
    from mnist_bench.runfile.index import View


@dataclass
class Report:
    """What every format renders: the runs, their grouped rows, and where each record came from."""

    runs: list[collect.LoadedRun]
    by: tuple[str, ...]
    rows: list[Row]
    run_of: dict[int, collect.LoadedRun]  # id(record) -> its run
    machines: dict[str, str]  # run_id -> machine label
    _record_machine: dict[int, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # id(record) -> its run's machine label, for records read often

    def machine_of(self, record: Record) -> str:
        if record.machine is not None:  # a node of a cluster run
            return machine.node_label(record.machine)
        label = self._record_machine.get(id(record))
        return label if label is not None else self.machines[self.run_id(record)]

    def run_id(self, record: Record) -> str:
        return self.run_of[id(record)].run.run_id

    def class_names(self, record: Record) -> list[str] | None:
        names = machine.Environment.of(self.run_of[id(record)].run.environment).class_names
        return None if names is None else list(names)

    def to_pandas(self, raw: bool = False) -> pandas.DataFrame:
        """A DataFrame: one row per report row (the `by` keys, seeds, status, each headline
        metric's mean and `<metric>_ci95`, settings as columns), or with `raw=True` one per
        record with every metric, its run id and machine.

        Raises:
            UserError: pandas is not installed.
        """
        from mnist_bench.analyse.rows import summary_dicts
        from mnist_bench.runfile.frame import data_frame, record_row

        if raw:
            return data_frame(
                {**record_row(r, loaded.run.run_id), "machine": self.machine_of(r)}
                for loaded in self.runs
                for r in loaded.run.records
            )
        out = []
        for entry in summary_dicts(self.rows, self.by):
            settings = entry.pop("settings")
            out.append({**entry, **settings})
        return data_frame(out)


def parse_group_by(text: str, flag: str = "--group-by") -> tuple[str, ...]:
    """`variant,machine` -> ("variant", "machine"); raises UserError naming the valid keys
    (and `flag`, the option or keyword that gave them)."""
    keys = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    bad = [k for k in keys if k not in GROUP_KEYS] or ([] if keys else [text])
    if bad:
        raise UserError(
            f"unknown {flag} key {bad[0]!r}; valid: {', '.join(GROUP_KEYS)} (comma-separated)"
        )
    return keys


def build(
    paths: list[str],
    *,
    by: tuple[str, ...],
    skip_bad: bool = False,
    warn: Callable[[str], None] | None = None,
    skip_option: str = "--skip-bad",
    view: View = "summary",
) -> Report:
    """Load (`collect.load_runs`: duplicates dropped) and group the runs under `paths`.

    `view`: what of each run is read (`collect.load_runs`).

    Raises:
        UserError: a bad file (unless `skip_bad`), or no record to report.
    """
    from mnist_bench.analyse.rows import rows

    runs = collect.load_runs(
        paths, skip_bad=skip_bad, warn=warn, skip_option=skip_option, view=view
    )
    run_of = {id(r): loaded for loaded in runs for r in loaded.run.records}
    machines = {loaded.run.run_id: loaded.machine for loaded in runs}
    report = Report(runs, by, [], run_of, machines)
    report._record_machine = {
        id(r): machines[loaded.run.run_id] for loaded in runs for r in loaded.run.records
    }
    report.rows = _ordered(rows(collect.records(runs), by=by, machine_of=report.machine_of), by)
    if not report.rows:
        raise UserError("no records to report in: " + ", ".join(paths))
    return report


def _ordered(all_rows: list[Row], by: tuple[str, ...]) -> list[Row]:
    """Rows sorted by each key in `by`, each key's values in order of first appearance."""
    first: dict[str, dict[str, int]] = {k: {} for k in by}
    for row in all_rows:
        for k in by:
            first[k].setdefault(getattr(row, k), len(first[k]))
    return sorted(all_rows, key=lambda row: [first[k][getattr(row, k)] for k in by])
