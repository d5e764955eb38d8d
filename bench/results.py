"""What the Python API returns: `Results` (run files and their records), `Comparison` and
`Verdict`. Each renders itself as text, as a rich table, as HTML in a notebook and as a pandas
DataFrame; nothing here imports a framework, and matplotlib or pandas only when asked to draw or
convert.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.core import escape
from mnist_bench.core.config import check_value
from mnist_bench.core.errors import UserError as Error
from mnist_bench.runfile.machine import Environment

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure
    from mnist_bench.analyse import compare as compare_mod
    from mnist_bench.analyse.rows import Row
    from mnist_bench.data import Dataset
    from mnist_bench.execute.runner import Run
    from mnist_bench.runfile.collect import LoadedRun
    from mnist_bench.runfile.records import Record
    from rich.table import Table

# The rules of the methods' arguments (`mnist_bench.core.config.check_value`, as for `run`'s).
NAME = {"kind": "str"}
OPTIONAL_NAME = {"kind": "str", "optional": True}
MAX_PREDICTIONS = 200  # images in one `predictions` figure
COUNT = {"kind": "int", "min": 1, "max": MAX_PREDICTIONS}
FLAG = {"kind": "bool"}


@dataclass
class Results:
    """Run files and their records: what `run` and `load` return.

    Attributes:
        runs: each run file read (its path and typed `RunFile`).
        figures: the PNG files `run` drew beside its run file.
    """

    runs: list[LoadedRun]
    figures: list[Path] = field(default_factory=list)
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)

    @classmethod
    def of_run(cls, run: Run, figures: Iterable[Path] = ()) -> Results:
        """The results of a run in this process (its dataset kept for `predictions`)."""
        from mnist_bench.runfile.collect import LoadedRun

        return cls([LoadedRun(run.path, run.file)], list(figures), {run.file.run_id: run.dataset})

    @property
    def path(self) -> Path:
        """The run file (the first one, when several were loaded)."""
        return self.runs[0].path

    @property
    def environment(self) -> dict[str, Any]:
        """The provenance block of the (first) run: machine, versions, commit, dataset."""
        return self.runs[0].run.environment

    @property
    def status(self) -> str:
        """The (first) run's status: complete, interrupted or running."""
        return self.runs[0].run.status

    @property
    def records(self) -> list[Record]:
        """Every record, one per job (variant, backend, device, seed), in run order."""
        return [r for loaded in self.runs for r in loaded.run.records]

    @property
    def aggregates(self) -> list[dict[str, Any]]:
        """The run files' own summaries: per configuration, each headline metric over seeds."""
        return [a for loaded in self.runs for a in loaded.run.aggregates]

    @property
    def rows(self) -> list[Row]:
        """One row per configuration (its seeds' records together), as every table shows."""
        from mnist_bench.analyse.rows import rows

        return rows(self.records)

    def select(self, *, variant: str | None = None, backend: str | None = None) -> Results:
        """The records of one variant and/or backend, each still in its run.

        Example:
            >>> mnist_bench.compare(both.select(backend="tensorflow"), both.select(backend="jax"),
            ...                     match_on=["variant", "device"])

        Raises:
            Error: no record matches.
        """
        from mnist_bench.runfile.collect import LoadedRun

        check_value("variant", variant, OPTIONAL_NAME)
        check_value("backend", backend, OPTIONAL_NAME)

        def keep(item: Any) -> bool:
            get = item.get if isinstance(item, dict) else lambda name: getattr(item, name)
            return variant in (None, get("variant")) and backend in (None, get("backend"))

        runs = []
        for loaded in self.runs:
            records = [r for r in loaded.run.records if keep(r)]
            if records:
                aggregates = [a for a in loaded.run.aggregates if keep(a)]
                run = dataclasses.replace(loaded.run, records=records, aggregates=aggregates)
                runs.append(LoadedRun(loaded.path, run))
        if not runs:
            wanted = " · ".join(v for v in (variant, backend) if v) or "anything"
            raise Error(f"no record of {wanted} in these results")
        return Results(runs, [], self._datasets)

    def summary(self) -> list[dict[str, Any]]:
        """One plain dict per row: configuration, seeds, status, and for each headline metric
        its mean over seeds and `<metric>_ci95`, the half-width of its 95% confidence interval
        (None with one seed). `mnist-bench run --format json` prints these."""
        from mnist_bench.analyse.rows import summary_dicts

        return summary_dicts(self.rows)

    def to_pandas(self, raw: bool = False) -> pandas.DataFrame:
        """A DataFrame: one row per configuration (`summary`, settings as columns), or with
        `raw=True` one per record with every metric.

        Needs pandas: `pip install 'mnist-bench[pandas]'`.

        Example:
            >>> df = results.to_pandas()
            >>> df.pivot(index="variant", columns="backend", values="test_accuracy")
        """
        try:
            import pandas
        except ImportError:
            raise Error("to_pandas needs pandas: pip install 'mnist-bench[pandas]'") from None
        if raw:
            return pandas.DataFrame(
                [_record_dict(r, run.run.run_id) for run in self.runs for r in run.run.records]
            )
        rows = []
        for entry in self.summary():
            settings = entry.pop("settings")
            rows.append({**entry, **settings})
        return pandas.DataFrame(rows)

    def table(self, title: str | None = None, *, color: bool = True) -> Table:
        """The results table as a rich `Table` (print it with `rich.print`); `color=False`
        gives plain ASCII."""
        from mnist_bench.render.table import rows_table

        return rows_table(self.rows, title=title or self._title(), color=color)

    def __rich__(self) -> Table:
        return self.table()

    def __repr__(self) -> str:
        from rich.console import Console

        buffer = io.StringIO()  # not Jupyter's display: the text, even in a notebook
        console = Console(file=buffer, width=200, no_color=True, force_jupyter=False)
        console.print(self.table(color=False))
        return buffer.getvalue().rstrip("\n")

    def _repr_html_(self) -> str:
        """The table in a notebook (the HTML report's), with where the results came from."""
        from mnist_bench.analyse.report import Report
        from mnist_bench.analyse.rows import DEFAULT_BY
        from mnist_bench.render import html

        run_of = {id(r): loaded for loaded in self.runs for r in loaded.run.records}
        machines = {loaded.run.run_id: loaded.machine for loaded in self.runs}
        report = Report(self.runs, DEFAULT_BY, self.rows, run_of, machines)
        sources = ", ".join(f"<code>{html.escape(str(p.path))}</code>" for p in self.runs)
        title = html.escape(self._title())
        return f"<p><b>{title}</b> · {sources}</p>" + html.results_table(report)

    def _title(self) -> str:
        if len(self.runs) == 1:
            run = self.runs[0].run
            return f"mnist-bench run {run.run_id} ({run.status})"
        return f"mnist-bench: {len(self.runs)} runs"

    # -------------------------------------------------------------------------- figures
    def _row(self, variant: str, backend: str, device: str | None) -> Row:
        from mnist_bench.analyse.rows import variant_label

        check_value("variant", variant, NAME)
        check_value("backend", backend, NAME)
        check_value("device", device, OPTIONAL_NAME)
        all_rows = self.rows
        found = [
            row
            for row in all_rows
            if row.status == "ok"
            and variant in (row.variant, variant_label(row, all_rows))
            and row.backend == backend
            and device in (None, row.device)
        ]
        if len(found) == 1:
            return found[0]
        have = sorted(
            {f"{variant_label(r, all_rows)} · {r.backend} · {r.device}" for r in all_rows}
        )
        where = f"{variant} · {backend}" + (f" · {device}" if device else "")
        if not found:
            raise Error(f"no finished record of {where} in these results; have: {', '.join(have)}")
        raise Error(f"{where} matches {len(found)} rows: name one of {', '.join(have)}")

    def _class_names(self, record: Record) -> list[str] | None:
        for loaded in self.runs:
            if any(r is record for r in loaded.run.records):
                names = Environment.of(loaded.run.environment).class_names
                return None if names is None else list(names)
        return None

    def confusion_matrix(self, variant: str, backend: str, device: str | None = None) -> Figure:
        """The confusion matrix of one configuration (summed over its seeds) as a matplotlib
        `Figure`: a notebook shows it, `fig.savefig("cm.png")` writes it.

        Raises:
            Error: no finished record of that variant and backend, or several configurations
                of it (name the device, or the variant's label as the table shows it).
        """
        from mnist_bench.render import figures

        row = self._row(variant, backend, device)
        matrix = figures.summed_confusion(row)
        if matrix is None:
            raise Error(f"{variant} · {backend}: its records hold no confusion matrix")
        total = sum(map(sum, matrix))
        correct = sum(matrix[i][i] for i in range(len(matrix)))
        # No test sample (an all-zero matrix): the figure says so rather than an accuracy.
        measured = f"accuracy {correct / total:.4f}" if total else "no test samples"
        seeds = f"{row.seeds} seeds summed" if row.seeds > 1 else f"seed {row.records[0].seed}"
        title = f"{variant} · {backend} · {row.device}: {measured} ({seeds})"
        return figures.confusion_heatmap(matrix, self._class_names(row.records[0]), title)

    def predictions(
        self,
        variant: str,
        backend: str,
        device: str | None = None,
        *,
        count: int = 16,
        wrong: bool = False,
    ) -> Figure:
        """The first `count` test images with what the model predicted (mistakes in red); with
        `wrong=True`, the first misclassified ones.

        A record keeps its first 25 misclassified test images and its confusion matrix, so
        every prediction up to the last of those is known exactly: the true label, unless the
        image is among them. No model is kept or re-run. Shows the first seed's record.

        Raises:
            Error: as `confusion_matrix`; `count` not 1..200; the dataset is not the one the
                run used; the record lists none of its mistakes, so no prediction is known.
        """
        import numpy as np
        from matplotlib.figure import Figure

        check_value("count", count, COUNT)
        check_value("wrong", wrong, FLAG)
        record = self._row(variant, backend, device).records[0]
        dataset = self._dataset(record)
        images, truth = dataset.x_test, dataset.y_test
        where = f"{variant} · {backend}"
        tested = len(truth) if record.test_samples is None else record.test_samples
        mistakes = {index: predicted for index, _, predicted in record.misclassified}
        if tested > len(truth) or max(mistakes, default=0) >= len(truth):
            raise Error(
                f"{where}: measured on {tested} test images, the dataset has {len(truth)}: "
                "not the data the run used"
            )
        matrix = record.confusion_matrix
        errors = None  # unknown without a confusion matrix
        if matrix is not None:
            errors = sum(map(sum, matrix)) - sum(matrix[i][i] for i in range(len(matrix)))
        if errors != 0 and not mistakes:  # some mistakes (or an unknown number), none listed
            some = f"{errors} " if errors else ""
            raise Error(f"{where}: the record lists none of its {some}misclassified test images, "
                        "so no prediction is known")  # fmt: skip
        if wrong:
            shown = sorted(mistakes)[:count]
        else:
            complete = errors is not None and len(mistakes) >= errors  # all is known
            known = tested if complete else max(mistakes, default=-1) + 1
            shown = list(range(min(count, known)))
        names = self._class_names(record) or []
        columns = min(8, max(1, len(shown)))
        lines = max(1, -(-len(shown) // columns))
        fig = Figure(figsize=(1.3 * columns, 1.55 * lines + 0.4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
        for ax in axes:
            ax.axis("off")

        def name(label: int) -> str:  # a class the run file does not name shows as its number
            return str(names[label]) if 0 <= label < len(names) else str(label)

        for ax, index in zip(axes, shown, strict=False):
            predicted, true = mistakes.get(index, int(truth[index])), int(truth[index])
            ok = predicted == true
            ax.imshow(images[index], cmap="gray_r", interpolation="nearest")
            label = name(predicted) if ok else f"{name(predicted)} (true {name(true)})"
            ax.set_title(label, fontsize=8, color="black" if ok else "red")
        what = "misclassified test images" if wrong else "test images"
        what = f"first {what}" if shown else f"no {what}"  # no mistake, or no test sample
        fig.suptitle(f"{variant} · {backend} · seed {record.seed}: predictions, {what}",
                     fontsize=9)  # fmt: skip
        return fig

    def _dataset(self, record: Record) -> Dataset:
        """The test images the record was measured on (loaded once, checked by digest)."""
        from mnist_bench import data

        for loaded in self.runs:
            if not any(r is record for r in loaded.run.records):
                continue
            run_id = loaded.run.run_id
            if run_id not in self._datasets:
                spec = loaded.run.config.get("data") or "mnist"
                dataset = data.load(spec)
                pinned = Environment.of(loaded.run.environment).dataset_digests
                if pinned and pinned != dataset.digests:
                    raise Error(f"{spec}: not the dataset run {run_id} was measured on")
                self._datasets[run_id] = dataset
            return self._datasets[run_id]
        raise Error("the record is not in these results")


def _record_dict(record: Record, run_id: str) -> dict[str, Any]:
    from mnist_bench.runfile.frame import record_row

    return record_row(record, run_id)


@dataclass
class Comparison:
    """Rows matched across two sets of results, each with a verdict per metric.

    Attributes:
        rows: `mnist_bench.analyse.compare.Row`s: `verdict` (better, worse, no significant
            change), `changes` (per metric: base and new values per seed, delta, p-value),
            `side` (both, base, new) and the settings that differ.
    """

    rows: list[compare_mod.Row]

    def __iter__(self) -> Iterator[compare_mod.Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> list[dict[str, Any]]:
        """One plain dict per row: its configuration, seeds on each side, the row's verdict,
        and per headline metric the base and new means, the delta and its verdict."""
        from mnist_bench.analyse.compare import METRICS

        out = []
        for row in self.rows:
            entry: dict[str, Any] = {
                **row.label,
                **{name: _across(row, name) for name in ("variant", "backend")},
                "side": row.side,
                "base_seeds": len({r.seed for r in row.base}),
                "new_seeds": len({r.seed for r in row.new}),
                "verdict": row.verdict if row.side == "both" else f"only in {row.side}",
            }
            for metric in METRICS:
                change = row.change(metric)
                entry[f"{metric.name}_base"] = change.base_mean if change else None
                entry[f"{metric.name}_new"] = change.new_mean if change else None
                entry[f"{metric.name}_delta"] = change.delta if change else None
                entry[f"{metric.name}_verdict"] = (
                    (change.skipped or change.verdict) if change else None
                )
            entry["differences"] = ", ".join(row.differences or row.near)
            out.append(entry)
        return out

    def __repr__(self) -> str:
        lines = [f"Comparison: {len(self.rows)} row(s)"]
        for entry in self.summary():
            where = " · ".join(entry[k] for k in ("variant", "backend", "device"))
            differences = f" ({entry['differences']})" if entry["differences"] else ""
            lines.append(f"  {where}: {entry['verdict']}{differences}")
        return "\n".join(lines)

    def to_pandas(self) -> pandas.DataFrame:
        """`summary` as a DataFrame (needs pandas: `pip install 'mnist-bench[pandas]'`)."""
        try:
            import pandas
        except ImportError:
            raise Error("to_pandas needs pandas: pip install 'mnist-bench[pandas]'") from None
        return pandas.DataFrame(self.summary())

    def _repr_html_(self) -> str:
        from mnist_bench.analyse.compare import METRICS
        from mnist_bench.render import html

        header = ["variant", "backend", "device", *(m.label for m in METRICS), "verdict"]
        body = []
        for entry in self.summary():
            cells = [entry["variant"], entry["backend"], entry["device"]]
            for m in METRICS:
                base, new = entry[f"{m.name}_base"], entry[f"{m.name}_new"]
                cells.append(
                    "-"
                    if base is None or new is None
                    else f"{base:,.{m.digits}f} → "
                    f"{new:,.{m.digits}f} ({entry[f'{m.name}_verdict']})"
                )
            differences = f" ({entry['differences']})" if entry["differences"] else ""
            body.append([*cells, entry["verdict"] + differences])
        return html.table(header, body)


def _across(row: compare_mod.Row, name: str) -> str:
    """A row's variant or backend; `tensorflow → jax` where a `match_on` row pairs two."""
    sides = [dict.fromkeys(getattr(r, name) for r in side) for side in (row.base, row.new)]
    base, new = (", ".join(values) for values in sides)
    return f"{base} → {new}" if base and new and base != new else base or new


@dataclass
class Verdict:
    """What `check` found: `passed`, and the failing rows with their reasons.

    Attributes:
        passed: no baseline row regressed (truthy when passed).
        failures: `Failure(row, reason)` per failing row.
        rows: every matched and unmatched row (`Comparison.rows`).
        missing: baseline rows the results lack that did not fail (`allow_missing`).
        extra: rows of the results that the baseline lacks (they pass).
    """

    passed: bool
    failures: list[compare_mod.Failure]
    rows: list[compare_mod.Row]
    missing: list[compare_mod.Row]
    extra: list[compare_mod.Row]

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        if self.passed:
            matched = sum(1 for r in self.rows if r.side == "both")
            return f"check passed: {matched} row(s) within tolerance"
        lines = [f"check FAILED: {len(self.failures)} row(s) failed"]
        for failure in self.failures:
            label = failure.row.label
            lines.append(escape.terminal(f"  {label['variant']} · {label['backend']} · "
                                         f"{label['device']}: {failure.reason}"))  # fmt: skip
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from mnist_bench.render.html import escape

        head, *rest = str(self).splitlines()
        items = "".join(f"<li>{escape(line.strip())}</li>" for line in rest)
        color = "green" if self.passed else "#b00020"
        return f'<p style="color:{color}"><b>{escape(head)}</b></p>' + (
            f"<ul>{items}</ul>" if items else ""
        )
