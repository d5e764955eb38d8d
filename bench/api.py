"""The Python API: run, load, compare and check from a script or a notebook.

    >>> import mnist_bench
    >>> results = mnist_bench.run(
    ...     variants=["two-dense"], backends=["jax"], epochs=1, train_limit=2000
    ... )
    >>> results.to_pandas()[["variant", "backend", "test_accuracy"]]
         variant backend  test_accuracy
    0  two-dense     jax         0.8937
    >>> results.confusion_matrix("two-dense", "jax")  # a matplotlib Figure

`run` takes the keywords of `mnist-bench run`'s options (`variants`, `backends`, `seeds`,
`epochs`, ..., `suite`, `repeats`, `resume`) and goes through the same code as the command: the
same checks, the same run file and figures, the same one-line errors. Every mistake in the input
raises `Error` (the CLI's `UserError`: one line, no traceback worth reading), the one exception
type to catch. `compare` and `check` return typed rows and verdicts instead of tables and exit
codes.

Importing this module imports no framework; training happens in worker processes, one per
backend, as it does for the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.config import RunConfig
from mnist_bench.errors import UserError

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure
    from mnist_bench.data import Dataset
    from mnist_bench.records import Record
    from mnist_bench.report import compare as compare_mod
    from mnist_bench.report.collect import LoadedRun
    from mnist_bench.report.rows import Row
    from mnist_bench.runner import Run
    from rich.console import Console
    from rich.table import Table

Error = UserError
"""The one exception type the API raises for bad input: its message is one line, the same as
the command line's (`mnist-bench run: error: <message>`)."""

PathLike = str | Path
Paths = PathLike | Sequence[PathLike]

# `run`'s options: RunConfig's fields that are `mnist-bench run` flags, plus two that are not
# configuration (`repeats` makes seeds, `resume` names a run file to finish).
CONFIG_OPTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if "cli" in f.metadata)
RUN_OPTIONS = (*CONFIG_OPTIONS, "repeats", "resume")


# ---------------------------------------------------------------------------------- options
def _field(name: str) -> dataclasses.Field:
    return RunConfig.__dataclass_fields__[name]


def cli_flag(name: str) -> str:
    """The command-line flag of option `name`: `--epochs`, `--variant`, `--repeats`."""
    if name in CONFIG_OPTIONS:
        return _field(name).metadata["cli"].get("flags", (f"--{name.replace('_', '-')}",))[0]
    return f"--{name.replace('_', '-')}"


def _normalize(name: str, value: Any) -> Any:
    """A Python value as the command line would have parsed it: a list option also takes a
    comma-separated string or a single value; paths become strings."""
    if isinstance(value, Path):
        value = str(value)
    meta = _field(name).metadata
    if not meta["check"].get("list"):
        return value
    cli = meta["cli"]
    if isinstance(value, str):
        convert = cli.get("type")
        try:
            value = convert(value) if convert else [p.strip() for p in value.split(",")]
        except ValueError:
            raise Error(f"{name}: not a comma-separated list of numbers: {value!r}") from None
    elif isinstance(value, int | float):
        value = [value]
    elif isinstance(value, Iterable) and not isinstance(value, dict | bytes):
        value = list(value)
    else:
        return value  # RunConfig names what is wrong with it
    if cli.get("action") == "append":  # repeatable flags: a name given twice counts once
        value = list(dict.fromkeys(v for v in value if v != ""))
    return tuple(value)


def config_from_options(
    options: dict[str, Any],
    repeats: int | None = None,
    flag: Callable[[str], str] = cli_flag,
) -> RunConfig:
    """The configuration of `options` (RunConfig field -> value, only those given), as
    `mnist-bench run` builds it: `repeats` makes the seeds, a suite is read with `options`
    overriding it. `flag` names an option in messages.

    Raises:
        Error: a value out of range or of the wrong type, an unknown name, a bad suite.
    """
    values = dict(options)
    if repeats is not None:
        if isinstance(repeats, bool) or not isinstance(repeats, int):
            raise Error(f"{flag('repeats')} must be an integer >= 1 (got {repeats!r})")
        if repeats < 1:
            raise Error(f"{flag('repeats')} must be at least 1")
        values["seeds"] = tuple(range(repeats))
    if values.get("suite"):
        from mnist_bench import suite

        return suite.load(values["suite"], overrides=values)
    return RunConfig(**values)


def open_run(
    options: dict[str, Any],
    *,
    repeats: int | None = None,
    resume: PathLike | None = None,
    argv: list[str] | None = None,
    flag: Callable[[str], str] = cli_flag,
) -> Run:
    """Start the run `options` describe (see `config_from_options`), or reopen `resume`: the
    run file is created, nothing is trained yet. `flag` names an option in messages.

    Raises:
        Error: bad options, options given with `resume`, a bad run file to resume.
    """
    from mnist_bench.runner import Run

    if resume is not None:  # the run's own configuration is the one it finishes with
        given = [flag(name) for name in options] + (
            [flag("repeats")] if repeats is not None else []
        )
        if given:
            raise Error(
                f"{flag('resume')} finishes a run with its own configuration; "
                f"drop {', '.join(given)}"
            )
        return Run.resume(resume)
    return Run.start(config_from_options(options, repeats, flag), argv)


def execute_run(
    run: Run,
    console: Console,
    *,
    figures: bool = True,
    show_progress: bool = True,
    when_final: Callable[[], None] = lambda: None,
) -> tuple[Results, int | None]:
    """Train and measure the run's pending jobs with live progress on `console`, then draw its
    figures. The code path of `mnist-bench run` and of `run()`.

    Returns the results and the signal that stopped the run (None when it ran to its end).
    `when_final` is called once the run file is final, before the figures are drawn.
    """
    from mnist_bench import progress
    from mnist_bench.report import run_figures
    from mnist_bench.runner import Interrupted

    console.print(
        f"run {run.file.run_id}: {len(run.pending)} record(s) to go -> {run.path}",
        highlight=False,
    )
    signum = None
    try:
        observer = progress.make(console, len(run.pending)) if show_progress else progress.Quiet()
        with observer:
            run.execute(observer)
    except Interrupted as exc:
        signum = exc.signum
    when_final()
    folder = run.path.with_suffix("")
    drawn = (
        run_figures.draw_run_figures(
            run.file.records, run.dataset.x_test, run.dataset.class_names, folder
        )
        if figures
        else []
    )
    return Results.of_run(run, drawn), signum


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """The runner's signal handling for the length of one call, then the process's own back:
    in a notebook kernel, a later Ctrl-C must interrupt a cell as usual, not kill the kernel.
    Off the main thread no signal arrives, and none can be caught."""
    from mnist_bench import runner

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in runner.SIGNALS}
    try:
        with runner.interruptible():
            yield
    finally:
        runner.forget_signals()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _api_console() -> Console:
    """A notebook's own rich console; elsewhere standard error, which leaves standard output to
    the caller's script."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_jupyter or console.is_terminal:
        return Console() if console.is_jupyter else console
    return Console(stderr=True, width=240, no_color=True)


def run(
    *,
    variants: str | Sequence[str] | None = None,
    backends: str | Sequence[str] | None = None,
    devices: str | Sequence[str] | None = None,
    seeds: int | str | Sequence[int] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: str | None = None,
    learning_rate: float | None = None,
    schedule: str | None = None,
    data: PathLike | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    results_dir: PathLike | None = None,
    targets: float | str | Sequence[float] | None = None,
    infer_batch_sizes: int | str | Sequence[int] | None = None,
    check_determinism: bool | None = None,
    record_timeout: float | None = None,
    threads: int | None = None,
    suite: PathLike | None = None,
    repeats: int | None = None,
    resume: PathLike | None = None,
    progress: bool = True,
    figures: bool = True,
    **unknown: Any,
) -> Results:
    """Train and measure, as `mnist-bench run` does, and return the results.

    The keywords are the command's options (`--variant` is `variants`, `--backend` is
    `backends`, `--device` is `devices`); each left out (None) takes the command's default or
    the suite's value. A list option also takes one value or a comma-separated string. The run
    file and its figures are written under `results_dir` (default `results/runs`), as the
    command writes them.

    Args:
        variants: variant names, or `all` (default: the seed notebook's three).
        backends: tensorflow, jax, torch (default: every installed one).
        seeds: one record per seed (default 0); `repeats=N` is seeds 0..N-1.
        epochs, batch_size, optimizer, learning_rate, schedule: override every variant's.
        train_limit, test_limit: only the first N training / test samples.
        suite: a TOML suite; the other keywords override it.
        resume: a run file to finish (no other option with it).
        progress: show live progress (a notebook's rich display, or standard error).
        figures: draw each record's confusion matrix and misclassified digits beside the file.
        devices, data, results_dir, targets, infer_batch_sizes, check_determinism,
            record_timeout, threads: see `mnist-bench run --help`.

    Returns:
        The run's `Results`, whatever became of its records (see `Results.records`).

    Raises:
        Error: an unknown keyword, a bad value, variant, backend, data or suite file; the
            message is the command line's.
        KeyboardInterrupt: Ctrl-C (or a notebook's interrupt) stopped it; the run file says
            `interrupted`, keeps every finished record, and `run(resume=path)` finishes it.

    Example:
        >>> results = mnist_bench.run(variants="two-dense", backends="jax", seeds=[0, 1])
        >>> results.table()  # mean ± 95% CI over the two seeds
    """
    if unknown:
        raise Error(_unknown_keyword(next(iter(unknown))))
    given = locals()
    options = {
        name: _normalize(name, given[name]) for name in CONFIG_OPTIONS if given[name] is not None
    }
    if resume is not None:
        resume = str(resume)
    console = _api_console()
    with _interruptible():
        opened = open_run(options, repeats=repeats, resume=resume, flag=lambda name: name)
        results, signum = execute_run(opened, console, figures=figures, show_progress=progress)
    if signum is not None:
        left = len(results.runs[0].run.pending)
        note = (
            f"interrupted: {len(results.records)} record(s) saved, {left} left; finish with "
            f"mnist_bench.run(resume={str(opened.path)!r})"
        )
        if signum == signal.SIGINT:
            raise KeyboardInterrupt(note)
        raise SystemExit(128 + signum)
    return results


def _unknown_keyword(name: str) -> str:
    close = difflib.get_close_matches(name, RUN_OPTIONS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown option {name!r}{hint}; valid: {', '.join(RUN_OPTIONS)}"


# ---------------------------------------------------------------------------------- results
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
        from mnist_bench.report.collect import LoadedRun

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
        from mnist_bench.report.rows import rows

        return rows(self.records)

    def select(self, *, variant: str | None = None, backend: str | None = None) -> Results:
        """The records of one variant and/or backend, each still in its run.

        Example:
            >>> mnist_bench.compare(both.select(backend="tensorflow"), both.select(backend="jax"),
            ...                     match_on=["variant", "device"])

        Raises:
            Error: no record matches.
        """
        from mnist_bench.report.collect import LoadedRun

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
        from mnist_bench.report.rows import HEADLINE, variant_label

        all_rows = self.rows
        out = []
        for row in all_rows:
            job = row.records[0].job
            entry: dict[str, Any] = {
                "variant": row.variant,
                "label": variant_label(row, all_rows),
                "backend": row.backend,
                "device": row.device,
                "dataset": job.dataset,
                "seeds": row.seeds,
                "status": row.status,
            }
            for metric in HEADLINE:
                summary = row.summary(metric.name)
                entry[metric.name] = summary.mean if summary else None
                entry[f"{metric.name}_ci95"] = summary.half_width if summary else None
            entry["error"] = None if row.status == "ok" else row.records[0].error
            entry["contended"] = row.contended
            entry["settings"] = job.settings.to_dict()
            out.append(entry)
        return out

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
        from mnist_bench.report.table import rows_table

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
        from html import escape

        from mnist_bench.report import html
        from mnist_bench.report.report_cmd import Report
        from mnist_bench.report.rows import DEFAULT_BY

        run_of = {id(r): loaded for loaded in self.runs for r in loaded.run.records}
        machines = {loaded.run.run_id: loaded.machine for loaded in self.runs}
        report = Report(self.runs, DEFAULT_BY, self.rows, run_of, machines)
        sources = ", ".join(f"<code>{escape(str(loaded.path))}</code>" for loaded in self.runs)
        return f"<p><b>{escape(self._title())}</b> · {sources}</p>" + html.results_table(report)

    def _title(self) -> str:
        if len(self.runs) == 1:
            run = self.runs[0].run
            return f"mnist-bench run {run.run_id} ({run.status})"
        return f"mnist-bench: {len(self.runs)} runs"

    # -------------------------------------------------------------------------- figures
    def _row(self, variant: str, backend: str, device: str | None) -> Row:
        from mnist_bench.report.rows import variant_label

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
                names = (loaded.run.environment.get("dataset") or {}).get("class_names")
                return [str(n) for n in names] if isinstance(names, list) else None
        return None

    def confusion_matrix(self, variant: str, backend: str, device: str | None = None) -> Figure:
        """The confusion matrix of one configuration (summed over its seeds) as a matplotlib
        `Figure`: a notebook shows it, `fig.savefig("cm.png")` writes it.

        Raises:
            Error: no finished record of that variant and backend, or several configurations
                of it (name the device, or the variant's label as the table shows it).
        """
        from mnist_bench.report import figures

        row = self._row(variant, backend, device)
        matrix = figures.summed_confusion(row)
        if matrix is None:
            raise Error(f"{variant} · {backend}: its records hold no confusion matrix")
        total = sum(map(sum, matrix))
        accuracy = sum(matrix[i][i] for i in range(len(matrix))) / total
        seeds = f"{row.seeds} seeds summed" if row.seeds > 1 else f"seed {row.records[0].seed}"
        title = f"{variant} · {backend} · {row.device}: accuracy {accuracy:.4f} ({seeds})"
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
            Error: as `confusion_matrix`; or the dataset is not the one the run used.
        """
        import numpy as np
        from matplotlib.figure import Figure

        record = self._row(variant, backend, device).records[0]
        dataset = self._dataset(record)
        images, truth = dataset.x_test, dataset.y_test
        mistakes = {index: predicted for index, _, predicted in record.misclassified}
        if wrong:
            shown = sorted(mistakes)[:count]
        else:
            matrix = record.confusion_matrix or []
            errors = sum(map(sum, matrix)) - sum(matrix[i][i] for i in range(len(matrix)))
            complete = len(mistakes) >= errors  # every mistake is listed: all is known
            known = (record.test_samples or len(truth)) if complete else max(mistakes) + 1
            shown = list(range(min(count, known)))
        names = self._class_names(record) or [str(i) for i in range(10)]
        columns = min(8, max(1, len(shown)))
        lines = max(1, -(-len(shown) // columns))
        fig = Figure(figsize=(1.3 * columns, 1.55 * lines + 0.4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, index in zip(axes, shown, strict=False):
            predicted = mistakes.get(index, int(truth[index]))
            ok = predicted == int(truth[index])
            ax.imshow(images[index], cmap="gray_r", interpolation="nearest")
            label = names[predicted] if ok else f"{names[predicted]} (true {names[truth[index]]})"
            ax.set_title(label, fontsize=8, color="black" if ok else "red")
        what = "misclassified test images" if wrong else "test images"
        fig.suptitle(f"{variant} · {backend} · seed {record.seed}: predictions, first {what}",
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
                pinned = loaded.run.environment.get("dataset_digests")
                if pinned and pinned != dataset.digests:
                    raise Error(f"{spec}: not the dataset run {run_id} was measured on")
                self._datasets[run_id] = dataset
            return self._datasets[run_id]
        raise Error("the record is not in these results")


def _record_dict(record: Record, run_id: str) -> dict[str, Any]:
    from mnist_bench.report.rows import METRICS

    out: dict[str, Any] = {
        "run_id": run_id,
        "variant": record.variant,
        "backend": record.backend,
        "device": record.where,
        "requested_device": record.requested_device,
        "dataset": record.dataset,
        "seed": record.seed,
        "repeat": record.repeat,
        "status": record.status,
        "params": record.params,
        "train_samples": record.train_samples,
        "test_samples": record.test_samples,
    }
    out.update({m.name: getattr(record, m.name) for m in METRICS})
    out.update(error=record.error, contended=record.contended, **record.settings.to_dict())
    return out


def _as_paths(paths: Paths) -> list[str]:
    if isinstance(paths, str | Path):
        return [str(paths)]
    return [str(p) for p in paths]


def _warn(message: str) -> None:
    print(f"mnist-bench: warning: {message}", file=sys.stderr)


def load(paths: Paths, *, skip_bad: bool = False) -> Results:
    """Read run files: a path, a folder (searched for *.json), or a list of them.

    Args:
        skip_bad: warn about unreadable or newer-schema files and go on with the rest.

    Raises:
        Error: a missing path, a bad file (unless `skip_bad`), nothing usable.

    Example:
        >>> mnist_bench.load("results/published").to_pandas()
    """
    from mnist_bench.report import collect

    return Results(collect.load_runs(_as_paths(paths), skip_bad=skip_bad, warn=_warn))


def _results(value: Results | Paths) -> Results:
    return value if isinstance(value, Results) else load(value)


# ----------------------------------------------------------------------------- comparisons
@dataclass
class Comparison:
    """Rows matched across two sets of results, each with a verdict per metric.

    Attributes:
        rows: `mnist_bench.report.compare.Row`s: `verdict` (better, worse, no significant
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
        from mnist_bench.report.compare import METRICS

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
        from mnist_bench.report import html
        from mnist_bench.report.compare import METRICS

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


def _match_on(fields: str | Sequence[str] | None) -> tuple[str, ...] | None:
    from mnist_bench import identity

    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    try:
        return identity.check_match_fields(fields)
    except ValueError as exc:
        raise Error(f"match_on: {exc}") from None


def _across(row: compare_mod.Row, name: str) -> str:
    """A row's variant or backend; `tensorflow → jax` where a `match_on` row pairs two."""
    sides = [dict.fromkeys(getattr(r, name) for r in side) for side in (row.base, row.new)]
    base, new = (", ".join(values) for values in sides)
    return f"{base} → {new}" if base and new and base != new else base or new


def compare(
    base: Results | Paths,
    new: Results | Paths,
    *,
    accuracy_tolerance: float = 0.005,
    time_tolerance: float = 0.10,
    match_on: Sequence[str] | None = None,
) -> Comparison:
    """Match the configurations of `base` and `new` and judge each change, as
    `mnist-bench compare` does: Welch's t-test where both sides have two or more seeds, else
    the tolerances (accuracy absolute, time relative).

    Args:
        base, new: `Results`, or run files and folders to load.
        match_on: match on these configuration fields only (e.g. variant, backend, device),
            to compare across settings on purpose.

    Example:
        >>> jax, torch = (mnist_bench.run(backends=b, epochs=1) for b in ("jax", "torch"))
        >>> mnist_bench.compare(jax, torch, match_on=["variant", "device"]).to_pandas()
    """
    from mnist_bench.report.compare import Tolerances
    from mnist_bench.report.compare import compare as compare_records

    on = _match_on(match_on)
    tolerances = Tolerances(accuracy=accuracy_tolerance, time=time_tolerance)
    return Comparison(
        compare_records(_results(base).records, _results(new).records, tolerances, on=on)
    )


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
            lines.append(f"  {label['variant']} · {label['backend']} · {label['device']}: "
                         f"{failure.reason}")  # fmt: skip
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        head, *rest = str(self).splitlines()
        items = "".join(f"<li>{escape(line.strip())}</li>" for line in rest)
        color = "green" if self.passed else "#b00020"
        return f'<p style="color:{color}"><b>{escape(head)}</b></p>' + (
            f"<ul>{items}</ul>" if items else ""
        )


def check(
    results: Results | Paths,
    baseline: Results | Paths,
    *,
    accuracy_tolerance: float = 0.005,
    time_tolerance: float = 0.10,
    max_slowdown: float | None = None,
    allow_missing: bool = False,
    match_on: Sequence[str] | None = None,
) -> Verdict:
    """The CI gate of `mnist-bench check`, as a value: it does not exit or print.

    A baseline row fails when the results lack it (unless `allow_missing`), when a new record
    failed where the baseline has a result, or when its accuracy fell by more than
    `accuracy_tolerance` (and, with two or more seeds on both sides, Welch's test calls the
    drop significant); with `max_slowdown` (e.g. 0.25), also when throughput fell by more.

    Raises:
        Error: the two hold the same run, or no configuration matches at all.

    Example:
        >>> verdict = mnist_bench.check(results, "results/baseline")
        >>> assert verdict.passed, verdict
    """
    from mnist_bench.report.compare import Tolerances, gate
    from mnist_bench.report.compare import compare as compare_records

    new, base = _results(results), _results(baseline)
    shared = {b.run.run_id for b in base.runs} & {r.run.run_id for r in new.runs}
    if shared:
        raise Error(
            f"the results and the baseline hold the same run ({sorted(shared)[0]}): "
            "check new results against an older baseline"
        )
    on = _match_on(match_on)
    tolerances = Tolerances(accuracy=accuracy_tolerance, time=time_tolerance)
    rows = compare_records(base.records, new.records, tolerances, on=on)
    if not any(r.side == "both" for r in rows):
        near = sorted({d for r in rows for d in r.near})
        why = f" (the configurations differ: {', '.join(near)})" if near else ""
        raise Error(f"nothing to match: no configuration of the results is in the baseline{why}")
    failures = gate(rows, tolerances, max_slowdown, allow_missing=allow_missing)
    failing = {id(f.row) for f in failures}
    return Verdict(
        passed=not failures,
        failures=failures,
        rows=rows,
        missing=[r for r in rows if r.side == "base" and id(r) not in failing],
        extra=[r for r in rows if r.side == "new"],
    )
