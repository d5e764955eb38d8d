"""The Python API: run, load, compare, check, report, history, parity, export and merge from a
script or a notebook; every command of `mnist-bench` but `run`'s own loop goes through it.

    >>> import mnist_bench
    >>> results = mnist_bench.run(
    ...     variants=["two-dense"], backends=["jax"], epochs=1, train_limit=2000
    ... )
    >>> results.to_pandas()[["variant", "backend", "test_accuracy"]]
         variant backend  test_accuracy
    0  two-dense     jax         0.8373
    >>> results.confusion_matrix("two-dense", "jax")  # a matplotlib Figure

`run` takes the keywords of `mnist-bench run`'s options (`variants`, `backends`, `seeds`,
`epochs`, ..., `suite`, `repeats`, `resume`) and goes through the same code as the command: the
same checks, the same run file and figures, the same one-line errors. Every mistake in the input
raises `Error` (the CLI's `UserError`: one line, no traceback worth reading), the one exception
type to catch. `compare` and `check` return typed rows and verdicts instead of tables and exit
codes (`mnist_bench.results`).

Importing this module imports no framework; training happens in worker processes, one per
backend, as it does for the command.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import itertools
import reprlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mnist_bench.core import escape
from mnist_bench.core.config import MAX_JOBS, RunConfig, check_value
from mnist_bench.core.errors import UserError
from mnist_bench.results import Comparison, Results, Verdict

if TYPE_CHECKING:
    from mnist_bench.analyse.history import History
    from mnist_bench.analyse.parity import Parity
    from mnist_bench.analyse.report import Report
    from mnist_bench.execute.merge import Merged
    from mnist_bench.execute.runner import Run
    from mnist_bench.publish.export import Export
    from mnist_bench.runfile.index import View
    from rich.console import Console

Error = UserError
"""The one exception type the API raises for bad input: its message is one line, the same as
the command line's (`mnist-bench run: error: <message>`)."""

PathLike = str | Path
Paths = PathLike | Sequence[PathLike]
Warn = Callable[[str], None]

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
        if isinstance(value, Sequence) and len(value) > MAX_JOBS:  # `range(10**9)`: never listed
            raise Error(f"{name}: {len(value):,} values; a run plans at most {MAX_JOBS:,} jobs")
        value = list(itertools.islice(value, MAX_JOBS + 1))  # an endless iterator: a bounded part
        if len(value) > MAX_JOBS:
            raise Error(f"{name}: over {MAX_JOBS:,} values; a run plans at most {MAX_JOBS:,} jobs")
    else:
        return value  # RunConfig names what is wrong with it
    if cli.get("action") == "append":  # repeatable flags: a name given twice counts once
        value = list(dict.fromkeys(value))
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
        Error: a value out of range or of the wrong type, an unknown name, a bad suite,
            `repeats` with seeds.
    """
    values = dict(options)
    for name, value in values.items():  # before a suite is read (a suite's own as it is read)
        check_value(name, value, _field(name).metadata["check"])
    if repeats is not None:
        if isinstance(repeats, bool) or not isinstance(repeats, int):
            raise Error(f"{flag('repeats')} must be an integer >= 1 (got {repeats!r})")
        if repeats < 1:
            raise Error(f"{flag('repeats')} must be at least 1")
        if repeats > MAX_JOBS:  # before a seed is made
            raise Error(f"{flag('repeats')} {repeats:,}: a run plans at most {MAX_JOBS:,} jobs")
        if "seeds" in values:
            raise Error(
                f"{flag('repeats')} N means {flag('seeds')} 0,1,...,N-1: give one of the two"
            )
        values["seeds"] = tuple(range(repeats))
    if values.get("suite"):
        from mnist_bench.plan import suite

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
    from mnist_bench.execute.runner import Run

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
    when_final: Callable[[], None] = lambda: None,
) -> tuple[Results, int | None]:
    """Train and measure the run's pending jobs with live progress on `console`, then draw its
    figures. The code path of `mnist-bench run` and of `run()`.

    Returns the results and the signal that stopped the run (None when it ran to its end).
    `when_final` is called once the run file is final, before the figures are drawn.
    """
    from mnist_bench.execute import progress
    from mnist_bench.execute.runner import Interrupted
    from mnist_bench.plan import estimate
    from mnist_bench.render import run_figures

    console.print(
        escape.text(f"run {run.file.run_id}: {len(run.pending)} record(s) to go -> {run.path}")
    )
    signum = None
    try:
        estimates = estimate.run_estimates(run.pending, len(run.dataset.x_train))
        countdown = estimate.Countdown(estimates)
        with progress.make(console, len(run.pending), countdown) as observer:
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
    from mnist_bench.execute import runner

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


def _api_console(quiet: bool = False) -> Console:
    """A notebook's own rich console; elsewhere standard error, which leaves standard output to
    the caller's script. `quiet` prints nothing at all."""
    from rich.console import Console

    if quiet:
        return Console(quiet=True)
    console = Console(stderr=True)
    if console.is_jupyter or console.is_terminal:
        return Console() if console.is_jupyter else console
    return Console(stderr=True, width=240, no_color=True)


def run(
    *,
    variants: str | Callable[[], Any] | Sequence[str | Callable[[], Any]] | None = None,
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
    **more: Any,
) -> Results:
    """Train and measure, as `mnist-bench run` does, and return the results.

    The keywords are the command's options (`--variant` is `variants`, `--backend` is
    `backends`, `--device` is `devices`); each left out (None) takes the command's default or
    the suite's value. A list option also takes one value or a comma-separated string. The run
    file and its figures are written under `results_dir` (default `results/runs`), as the
    command writes them.

    Args:
        variants: variants by name (`all`: every built-in one; default: the seed notebook's
            three), as `MODULE:FUNCTION` or `path/to/file.py:FUNCTION`, or module-level
            functions that return an uncompiled `keras.Model`.
        backends: tensorflow, jax, torch (default: every installed one).
        seeds: one record per seed (default 0); `repeats=N` is seeds 0..N-1 (one or the
            other, not both).
        epochs: overrides every variant's.
        batch_size: overrides every variant's.
        optimizer: overrides every variant's.
        learning_rate: overrides every variant's.
        schedule: overrides every variant's.
        train_limit: only the first N training samples.
        test_limit: only the first N test samples.
        suite: a TOML suite; the other keywords override it.
        resume: a run file to finish (no other option with it).
        progress: show live progress (a notebook's rich display, or standard error); False
            prints nothing.
        figures: draw each record's confusion matrix and misclassified digits beside the file.
        devices: see `mnist-bench run --help`.
        data: see `mnist-bench run --help`.
        results_dir: see `mnist-bench run --help`.
        targets: see `mnist-bench run --help`.
        infer_batch_sizes: see `mnist-bench run --help`.
        check_determinism: see `mnist-bench run --help`.
        record_timeout: see `mnist-bench run --help`.
        threads: see `mnist-bench run --help`.
        **more: any other `mnist-bench run` option, by its name in a suite.

    Returns:
        The run's `Results`, whatever became of its records (see `Results.records`).

    Raises:
        Error: an unknown keyword, a bad value (each keyword held to its option's rule: a
            blank name or path, a wrong type), variant, backend, data or suite file; the
            message is the command line's, naming the keyword.
        KeyboardInterrupt: Ctrl-C (or a notebook's interrupt) stopped it; the run file says
            `interrupted`, keeps every finished record, and `run(resume=path)` finishes it.

    Example:
        >>> results = mnist_bench.run(variants="two-dense", backends="jax", seeds=[0, 1])
        >>> results.table()  # mean ± 95% CI over the two seeds
    """
    for name in more:
        if name not in CONFIG_OPTIONS:
            raise Error(_unknown_keyword(name))
    for name, value in (("progress", progress), ("figures", figures)):
        check_value(name, value, {"kind": "bool"})
    if isinstance(resume, Path):
        resume = str(resume)
    check_value("resume", resume, {"kind": "str", "optional": True})
    if variants is not None:  # a function object as the `MODULE:FUNCTION` the worker imports
        from mnist_bench.plan.variants import spec_of

        if isinstance(variants, Iterable) and not isinstance(variants, str):
            variants = [spec_of(v) for v in variants]
        else:
            variants = spec_of(variants)
    given = {**locals(), **more}
    options = {
        name: _normalize(name, given[name])
        for name in CONFIG_OPTIONS
        if given.get(name) is not None
    }
    from mnist_bench.execute.runner import Interrupted

    console = _api_console(quiet=not progress)
    with _interruptible():
        try:
            opened = open_run(
                options,
                repeats=repeats,
                resume=resume,
                argv=[_call(options, repeats)],  # the run file's `command`: this call
                flag=lambda name: name,
            )
        except Interrupted as exc:
            _stop(exc.signum, "interrupted before the run started")
        results, signum = execute_run(opened, console, figures=figures)
    if signum is not None:
        left = len(results.runs[0].run.pending)
        _stop(
            signum,
            f"interrupted: {len(results.records)} record(s) saved, {left} left; finish with "
            f"mnist_bench.run(resume={str(opened.path)!r})",
        )
    return results


def _call(options: dict[str, Any], repeats: int | None) -> str:
    """`mnist_bench.run(variants=('two-dense',), epochs=1)`: what was asked, as provenance."""
    given = {**options, **({"repeats": repeats} if repeats is not None else {})}
    return f"mnist_bench.run({', '.join(f'{k}={v!r}' for k, v in given.items())})"


def _stop(signum: int, note: str) -> NoReturn:
    """Ctrl-C as Python's own `KeyboardInterrupt`; SIGTERM ends the process, as it would have."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt(note)
    raise SystemExit(128 + signum)


def _unknown_keyword(name: str) -> str:
    close = difflib.get_close_matches(name, RUN_OPTIONS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown option {name!r}{hint}; valid: {', '.join(RUN_OPTIONS)}"


def _as_paths(
    paths: Any, name: str = "paths", what: str = "a path or a list of paths"
) -> list[str]:
    """One path or a sequence of them, as strings; anything else, or an empty path, is an
    `Error` naming the keyword `name` and `what` it takes."""
    items = [paths] if isinstance(paths, str | Path) else paths
    if not isinstance(items, Iterable) or isinstance(items, bytes | dict):
        raise Error(f"{name} must be {what} (got {reprlib.repr(paths)})")
    items = list(items)
    if not items:
        raise Error(f"{name}: no path given")
    for item in items:
        if not isinstance(item, str | Path):
            raise Error(f"{name} must be paths, each a str or Path (got {reprlib.repr(item)})")
        if not str(item).strip():
            raise Error(f"{name}: an empty path")
    return [str(p) for p in items]


# Who is speaking: the API itself (messages name its keywords: `skip_bad=True`), or a command
# that goes through it (`as_command`: messages name the command's flags: `--skip-bad`).
_SPEAKER: contextvars.ContextVar[tuple[str, dict[str, str]]] = contextvars.ContextVar(
    "speaker", default=("mnist-bench", {})
)


@contextlib.contextmanager
def as_command(name: str, flags: dict[str, str], *, view: View = "summary") -> Iterator[None]:
    """Within it, the API speaks as `mnist-bench NAME`: a message names the command's flag of
    a keyword (`flags`: keyword -> flag, e.g. `{"by": "--group-by"}`) and a warning starts
    `mnist-bench NAME: warning:`. What each command's handler calls the API in.

    `view`: what of each run `report`, `history`, `compare` and `check` read (`index.View`):
    a command whose output reads less than the API hands its caller asks for `table`."""
    token = _SPEAKER.set((f"mnist-bench {name}", flags))
    reading = _VIEW.set(view)
    try:
        yield
    finally:
        _VIEW.reset(reading)
        _SPEAKER.reset(token)


# What of each run the readers read: `summary`, unless a command asks for less (`as_command`).
_VIEW: contextvars.ContextVar[View] = contextvars.ContextVar("view", default="summary")


def _option(keyword: str, api: str | None = None) -> str:
    """How messages name option `keyword`: its flag under `as_command`, else `api` (the
    keyword with a value, `skip_bad=True`) or the keyword itself."""
    return _SPEAKER.get()[1].get(keyword) or api or keyword


def _warn(message: str) -> None:
    prefix = _SPEAKER.get()[0]
    print(f"{prefix}: warning: {escape.terminal(message)}", file=sys.stderr)


def load(paths: Paths, *, skip_bad: bool = False, warn: Warn | None = None) -> Results:
    """Read run files: a path, a folder (searched for *.json), or a list of them.

    Args:
        skip_bad: warn about unreadable or newer-schema files and go on with the rest.
        warn: where warnings go (default: standard error).

    Raises:
        Error: a missing path, a bad file (unless `skip_bad`), nothing usable.

    Example:
        >>> mnist_bench.load("results/published").to_pandas()
    """
    from mnist_bench.analyse.compare import check_gate_options

    check_gate_options({"skip_bad": skip_bad}, name=_option)
    return _load(_as_paths(paths), skip_bad, _reader_options(skip_bad, warn), full=True)


def _load(paths: list[str], skip_bad: bool, warn: Warn, *, full: bool) -> Results:
    """The run files `paths` as `Results`; without `full`, their records without predicted
    labels (read through the run index: what comparing needs)."""
    from mnist_bench.runfile import collect

    return Results(
        collect.load_runs(
            paths,
            skip_bad=skip_bad,
            warn=warn,
            skip_option=_option("skip_bad", "skip_bad=True"),
            full=full,
            view=_VIEW.get(),
        )
    )


def _results(value: Results | Paths, name: str, skip_bad: bool, warn: Warn) -> Results:
    """`value` itself, or the run files it names loaded for comparing (without predicted
    labels); `name` is its keyword in messages."""
    if isinstance(value, Results):
        return value
    paths = _as_paths(value, name, "Results, a path or a list of paths")
    return _load(paths, skip_bad, warn, full=False)


def _name(value: Results | Paths, default: str) -> str:
    """What `check`'s errors call `value`: the path (or paths) it names, else `default`."""
    if isinstance(value, str | Path):
        return str(value)
    if isinstance(value, Sequence) and value and all(isinstance(v, str | Path) for v in value):
        return ", ".join(str(v) for v in value)
    return default


# ----------------------------------------------------------------------------- comparisons
def _match_on(fields: str | Sequence[str] | None) -> tuple[str, ...] | None:
    from mnist_bench.core import identity

    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    elif isinstance(fields, Iterable) and not isinstance(fields, bytes | dict):
        fields = list(fields)
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise Error(
            "match_on must be field names: a list or a comma-separated string "
            f"(got {reprlib.repr(fields)})"
        )
    try:
        return identity.check_match_fields(fields)
    except ValueError as exc:
        raise Error(f"match_on: {exc}") from None


def compare(
    base: Results | Paths,
    new: Results | Paths,
    *,
    accuracy_tolerance: float = 0.005,
    time_tolerance: float = 0.10,
    match_on: Sequence[str] | None = None,
    skip_bad: bool = False,
    warn: Warn | None = None,
) -> Comparison:
    """Match the configurations of `base` and `new` and judge each change, as
    `mnist-bench compare` does: Welch's t-test where both sides have two or more seeds, else
    the tolerances (accuracy absolute, time relative).

    Args:
        base: `Results`, or run files and folders to load (read through the run index, their
            records without predicted labels: `load` them first to keep those).
        new: the same, compared with `base`.
        accuracy_tolerance: the change in accuracy that counts with one seed (absolute).
        time_tolerance: the change in time that counts with one seed (relative).
        match_on: match on these configuration fields only (e.g. variant, backend, device),
            to compare across settings on purpose.
        skip_bad: as `load`'s.
        warn: where warnings go (default: standard error).

    Raises:
        Error: a tolerance out of range (accuracy 0..1, time 0..10) or not a number, an
            unknown field, a bad file.

    Example:
        >>> jax, torch = (mnist_bench.run(backends=b, epochs=1) for b in ("jax", "torch"))
        >>> mnist_bench.compare(jax, torch, match_on=["variant", "device"]).to_pandas()
    """
    from mnist_bench.analyse.compare import Tolerances, check_gate_options
    from mnist_bench.analyse.compare import compare as compare_records

    check_gate_options(
        {
            "accuracy_tolerance": accuracy_tolerance,
            "time_tolerance": time_tolerance,
            "skip_bad": skip_bad,
        },
        name=_option,
    )
    warn = _reader_options(skip_bad, warn)
    on = _match_on(match_on)
    tolerances = Tolerances(accuracy=accuracy_tolerance, time=time_tolerance)
    base_records = _results(base, "base", skip_bad, warn).records
    new_records = _results(new, "new", skip_bad, warn).records
    return Comparison(compare_records(base_records, new_records, tolerances, on=on))


def check(
    results: Results | Paths,
    baseline: Results | Paths,
    *,
    accuracy_tolerance: float = 0.005,
    time_tolerance: float = 0.10,
    max_slowdown: float | None = None,
    allow_missing: bool = False,
    match_on: Sequence[str] | None = None,
    skip_bad: bool = False,
    warn: Warn | None = None,
    pooled_alpha: float | None = None,
) -> Verdict:
    """The CI gate of `mnist-bench check`, as a value: it does not exit or print.

    A baseline row fails when the results lack it (unless `allow_missing`), when a new record
    failed where the baseline has a result, or when its accuracy fell by more than
    `accuracy_tolerance` (and, with two or more seeds on both sides, Welch's test calls the
    drop significant); with `max_slowdown` (e.g. 0.25), also when throughput fell by more.
    With `pooled_alpha` (suites/gate.toml's rule, docs/ci.md), accuracy is instead judged by
    one one-sided t-test of the mean drop over all rows, and a row also fails when its
    accuracy spread across seeds is significantly wider than the baseline's or its seeds rank
    significantly lower (Mann-Whitney). The keywords
    keep `mnist-bench check`'s rules: each tolerance a finite number, accuracy and
    `max_slowdown` in 0..1, time in 0..10. The baseline is read first; `warn` is where
    warnings go (default: standard error).

    Raises:
        Error: a keyword breaks its rule, a bad file (see `skip_bad`), the two hold the same
            run, or no configuration matches at all.

    Example:
        >>> verdict = mnist_bench.check(results, "results/baseline")
        >>> assert verdict.passed, verdict
    """
    from mnist_bench.analyse.compare import check_gate_options

    check_gate_options(
        {
            "accuracy_tolerance": accuracy_tolerance,
            "time_tolerance": time_tolerance,
            "max_slowdown": max_slowdown,
            "allow_missing": allow_missing,
            "skip_bad": skip_bad,
            "pooled_alpha": pooled_alpha,
        },
        name=_option,
    )
    warn = _reader_options(skip_bad, warn)
    _match_on(match_on)
    base = _results(baseline, "baseline", skip_bad, warn)
    return judge(
        _results(results, "results", skip_bad, warn),
        base,
        accuracy_tolerance=accuracy_tolerance,
        time_tolerance=time_tolerance,
        max_slowdown=max_slowdown,
        allow_missing=allow_missing,
        match_on=match_on,
        names=(_name(results, "the results"), _name(baseline, "the baseline")),
        pooled_alpha=pooled_alpha,
    )


# What `check` says when nothing matches: how to get results that do.
WAY_OUT = (
    "to gate on it, train what the baseline holds (mnist-bench run --suite suites/ci.toml for "
    "results/baseline), build your own baseline from your suite (mnist-bench baseline update "
    "--suite YOURS.toml --baseline-dir DIR), or match on fewer fields (--match-on "
    "variant,backend,device; match_on= in Python)"
)


def judge(
    results: Results,
    baseline: Results,
    *,
    accuracy_tolerance: float,
    time_tolerance: float,
    max_slowdown: float | None,
    allow_missing: bool,
    match_on: Sequence[str] | None,
    names: tuple[str, str] = ("the results", "the baseline"),
    pooled_alpha: float | None = None,
) -> Verdict:
    """`check` on loaded results; `names` (results, baseline) are what its errors call them
    (`mnist-bench check` gives the paths). The keywords keep `check`'s rules."""
    from mnist_bench.analyse.compare import Tolerances, check_gate_options, gate
    from mnist_bench.analyse.compare import compare as compare_records

    check_gate_options(
        {
            "accuracy_tolerance": accuracy_tolerance,
            "time_tolerance": time_tolerance,
            "max_slowdown": max_slowdown,
            "allow_missing": allow_missing,
            "pooled_alpha": pooled_alpha,
        }
    )
    for name, value in (("results", results), ("baseline", baseline)):
        if not isinstance(value, Results):
            raise Error(f"{name} must be Results (load paths with mnist_bench.load)")
    new_name, base_name = names
    shared = {b.run.run_id for b in baseline.runs} & {r.run.run_id for r in results.runs}
    if shared:
        raise Error(
            f"{new_name} and {base_name} hold the same run ({sorted(shared)[0]}): "
            "check new results against an older baseline"
        )
    for name, value in ((new_name, results), (base_name, baseline)):
        bug = next((r.injected for r in value.records if r.injected), None)
        if bug:
            raise Error(
                f"{name} holds records trained with an injected bug ({bug}, "
                "MNIST_BENCH_INJECT_BUG): a test of the gate, never results to check"
            )
    on = _match_on(match_on)
    tolerances = Tolerances(accuracy=accuracy_tolerance, time=time_tolerance)
    rows = compare_records(baseline.records, results.records, tolerances, on=on)
    if not any(r.side == "both" for r in rows):
        near = sorted({d for r in rows for d in r.near})
        why = f" (the configurations differ: {', '.join(near)})" if near else ""
        raise Error(
            f"nothing to match: no configuration of {new_name} is in {base_name}{why}; {WAY_OUT}"
        )
    failures = gate(
        rows, tolerances, max_slowdown, allow_missing=allow_missing, pooled_alpha=pooled_alpha
    )
    failing = {id(f.row) for f in failures}
    return Verdict(
        passed=not failures,
        failures=failures,
        rows=rows,
        missing=[r for r in rows if r.side == "base" and id(r) not in failing],
        extra=[r for r in rows if r.side == "new"],
    )


# ------------------------------------------------------------------------------- readers
def _reader_options(skip_bad: Any, warn: Any) -> Warn:
    """Check the keywords every reader takes; the function warnings go to."""
    check_value("skip_bad", skip_bad, {"kind": "bool"})
    if warn is not None and not callable(warn):
        raise Error(f"warn must be a function of one message (got {reprlib.repr(warn)})")
    return warn or _warn


def _group_by(by: Any) -> tuple[str, ...]:
    from mnist_bench.analyse.report import parse_group_by

    if isinstance(by, str):
        text = by
    elif isinstance(by, Iterable) and not isinstance(by, bytes | dict):
        by = list(by)
        if not by or not all(isinstance(k, str) for k in by):
            raise Error(f"{_option('by')} must be group keys (got {reprlib.repr(by)})")
        text = ",".join(by)
    else:
        raise Error(f"{_option('by')} must be group keys (got {reprlib.repr(by)})")
    return parse_group_by(text, flag=_option("by"))


def report(
    paths: Paths,
    *,
    by: str | Sequence[str] = ("variant", "backend", "device"),
    skip_bad: bool = False,
    warn: Warn | None = None,
) -> Report:
    """Read run files and group their records into rows, as `mnist-bench report` does.

    Args:
        paths: a run file, a folder (searched for *.json), or a list of them. A second copy of
            a run (same run id) is left out with a warning.
        by: the keys that make a row, from variant, backend, device and machine (a list or a
            comma-separated string); the seeds of a row are summarized together.
        skip_bad: warn about unreadable or newer-schema files and go on with the rest.
        warn: where warnings go (default: standard error).

    Returns:
        The `Report`: `rows`, `runs`; `to_pandas()` (one row per report row, or `raw=True`
        one per record); `mnist_bench.render.formats.render(report, "markdown")` for text.

    Raises:
        Error: a bad keyword, a missing path, a bad file (unless `skip_bad`), no record.

    Example:
        >>> mnist_bench.report("results/runs", by="variant,machine").to_pandas()
    """
    from mnist_bench.analyse.report import build

    warn = _reader_options(skip_bad, warn)
    keys = _group_by(by)
    skip = _option("skip_bad", "skip_bad=True")
    return build(
        _as_paths(paths),
        by=keys,
        skip_bad=skip_bad,
        warn=warn,
        skip_option=skip,
        view=_VIEW.get(),
    )


def history(
    paths: Paths,
    *,
    alpha: float | None = None,
    skip_bad: bool = False,
    warn: Warn | None = None,
) -> History:
    """Results over commits, per configuration and machine, with the commits where accuracy
    or the steady epoch time stepped, as `mnist-bench history` shows them.

    Args:
        paths: as `report`'s.
        alpha: a step is significant below this p-value (default 0.01), between 0 and 1.
        skip_bad: as `report`'s; a run whose start time cannot be read is a bad file.
        warn: where warnings go (default: standard error).

    Returns:
        The `History`: `commits` (oldest first), `series` (each with its `trends` and their
        `steps`), `failing(recent)`; `to_pandas()`: one row per series, metric and commit.

    Raises:
        Error: a bad keyword, a missing path, a bad file (unless `skip_bad`), no ok record.

    Example:
        >>> h = mnist_bench.history("ci-runs/")
        >>> h.to_pandas().query("step.notna()")
    """
    from mnist_bench.analyse.history import DEFAULT_ALPHA, build

    warn = _reader_options(skip_bad, warn)
    if alpha is None:
        alpha = DEFAULT_ALPHA
    check_value(_option("alpha"), alpha, {"kind": "number"})
    if not 0 < alpha < 1:
        raise Error(f"{_option('alpha')} {alpha:g} is not between 0 and 1")
    skip = _option("skip_bad", "skip_bad=True")
    return build(
        _as_paths(paths),
        alpha=alpha,
        skip_bad=skip_bad,
        warn=warn,
        skip_option=skip,
        view=_VIEW.get(),
    )


def parity(
    paths: Paths,
    *,
    skip_bad: bool = False,
    warn: Warn | None = None,
) -> Parity:
    """Do the backends agree, test sample by test sample? As `mnist-bench parity` shows.

    Args:
        paths: as `report`'s; read whole, with the records' predicted labels.
        skip_bad: as `report`'s.
        warn: where warnings go (default: standard error).

    Returns:
        The `Parity`: `groups` (one per job run on two or more backends, each with its
        `pairs`), `notes`; `to_pandas()`: one row per pair of backends.

    Raises:
        Error: a bad keyword, a missing path, a bad file (unless `skip_bad`), no record with
            predicted labels, or no job run on two backends.

    Example:
        >>> mnist_bench.parity("results/runs/RUN.json").to_pandas()
    """
    from mnist_bench.analyse.parity import build

    warn = _reader_options(skip_bad, warn)
    skip = _option("skip_bad", "skip_bad=True")
    return build(_as_paths(paths), skip_bad=skip_bad, warn=warn, skip_option=skip)


EXPORT_FORMATS = ("github-action-benchmark", "bencher")


def export(
    paths: Paths,
    *,
    to: str,
    direction: str | None = None,
    metrics: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    warn: Warn | None = None,
) -> Export:
    """Run files as benchmark JSON, as `mnist-bench export --to FORMAT` writes it: one entry
    per configuration, the mean over its seeds with its 95% CI. Records that did not finish ok
    are left out (`Export.notes`). The MLflow export is the command's alone
    (`mnist-bench export --to mlflow`): it logs to a server rather than making data.

    Args:
        paths: as `report`'s.
        to: github-action-benchmark or bencher.
        direction: github-action-benchmark: bigger (accuracy, throughput; the default) or
            smaller (times, loss): the action takes one direction per file.
        metrics: metric names (a list or a comma-separated string; `all`: every one); default
            the headline ones (of `direction` for github-action-benchmark).
        skip_bad: as `report`'s.
        warn: where warnings go (default: standard error).

    Returns:
        The `Export`: `data` (the JSON value), `to_json()` (the file's text), `notes`,
        `warnings`; `to_pandas()`: one row per configuration and metric.

    Raises:
        Error: a bad keyword, an unknown metric or one of the other direction, a bad file
            (unless `skip_bad`), nothing to export.

    Example:
        >>> mnist_bench.export("results/runs", to="bencher").to_json()
    """
    from mnist_bench.analyse.report import build
    from mnist_bench.publish import export as publish

    warn = _reader_options(skip_bad, warn)
    if to == "mlflow":
        raise Error(
            f"{_option('to')} mlflow logs to a tracking server: use the command, "
            "mnist-bench export --to mlflow"
        )
    check_value(_option("to"), to, {"kind": "str", "choices": EXPORT_FORMATS})
    check_value(_option("direction"), direction,
                {"kind": "str", "optional": True, "choices": publish.DIRECTIONS})  # fmt: skip
    if direction is not None and to != "github-action-benchmark":
        raise Error(f"{_option('direction')} goes with github-action-benchmark")
    given: list[str] | None = None
    if metrics is not None:
        if isinstance(metrics, str):
            given = [metrics]
        elif isinstance(metrics, Iterable) and not isinstance(metrics, bytes | dict):
            given = list(metrics)
        if not given or not all(isinstance(m, str) for m in given):
            raise Error(f"{_option('metrics')} must be metric names (got {reprlib.repr(metrics)})")
    chosen = publish.select_metrics(given, to, direction or "bigger", flag=_option)
    skip = _option("skip_bad", "skip_bad=True")
    by = ("variant", "backend", "device")
    built = build(_as_paths(paths), by=by, skip_bad=skip_bad, warn=warn, skip_option=skip)
    return publish.build(built, to, chosen)


def merge(
    paths: Paths,
    *,
    output: PathLike | None = None,
    force: bool = False,
    allow_missing: bool = False,
) -> Merged:
    """Join the run files of a sharded run (`run --shard I/N`) into one, as `mnist-bench
    merge` does, naming every shard or job missing (`Merged.missing`).

    Args:
        paths: the shards' run files, or folders of them.
        output: where to write the merged run file (a .json file outside the shards' folder);
            None: not written.
        force: replace an existing file at `output` (never one of the shards).
        allow_missing: write it even with shards or jobs missing (marked interrupted, the
            missing jobs pending, for `run(resume=...)`); without it nothing is written then.

    Returns:
        The `Merged`: `run` (the merged `RunFile`), `missing` (a line each), `path` (where it
        was written, or None); `to_pandas()`: one row per record.

    Raises:
        Error: a bad keyword, files of different grids, a shard or job doubled, an output
            that exists (without `force`) or is a shard.

    Example:
        >>> merged = mnist_bench.merge("shards/", output="merged.json")
        >>> assert not merged.missing, merged.missing
    """
    from mnist_bench.execute.merge import merge as merge_shards
    from mnist_bench.runfile import output as policy
    from mnist_bench.runfile import storage

    shards = _as_paths(paths)
    for name, value in (("force", force), ("allow_missing", allow_missing)):
        check_value(_option(name), value, {"kind": "bool"})
    if isinstance(output, Path):
        output = str(output)
    check_value(_option("output"), output, {"kind": "str", "optional": True})
    if output is not None:
        if Path(output).suffix != ".json":
            raise Error(
                f"{_option('output')} {output}: name a .json file (report reads folders' *.json)"
            )
        with _force_named():
            policy.check(output, force=force, inputs=shards)
    merged = merge_shards(shards)
    if output is not None and (allow_missing or not merged.missing):
        target = Path(output)
        storage.ensure_dir(target.parent)
        payload = storage.json_bytes(merged.run.to_dict())
        with _force_named():
            policy.write(target, payload, force=force, inputs=shards, what="results")
        merged.path = target
    return merged


@contextlib.contextmanager
def _force_named() -> Iterator[None]:
    """The output policy's refusals, naming `force=True` where the API was called."""
    try:
        yield
    except UserError as exc:
        forced = _option("force", "force=True")
        raise Error(str(exc).replace("pass --force", f"pass {forced}")) from None


# ------------------------------------------------------------------------------------- power
POWER_CHECKS: dict[str, dict[str, Any]] = {
    "drop": {"kind": "number", "above": 0, "max": 1},
    "power": {"kind": "number", "above": 0, "max": 0.9999},
    "alpha": {"kind": "number", "above": 0, "max": 0.5},
    "sides": {"kind": "int", "min": 1, "max": 2},
    "tolerance": {"kind": "number", "min": 0, "max": 1},
    "correction": {"kind": "str", "choices": ("none", "bonferroni")},
    "pooled": {"kind": "bool"},
    "budget": {"kind": "number", "above": 0},
    "max_seeds": {"kind": "int", "min": 2, "max": 1000},
    "base_seeds": {"kind": "int", "min": 2, "max": 1000, "optional": True},
}


def power(
    paths: Paths,
    *,
    drop: float = 0.005,
    power: float = 0.9,
    alpha: float = 0.01,
    sides: int = 1,
    tolerance: float = 0.0,
    correction: str = "none",
    pooled: bool = False,
    budget: float = 180.0,
    max_seeds: int = 30,
    base_seeds: int | None = None,
    skip_bad: bool = False,
    warn: Warn | None = None,
):
    """The gate's power, from the seed spreads of the run files: as `mnist-bench power` shows.

    Args:
        paths: run files (or folders) whose rows have two or more seeds: the spreads.
        drop: the accuracy drop to catch (absolute: 0.005 is half a point).
        power: the chance of catching it the gate should reach.
        alpha: the false-alarm rate per test (per row; with `correction`, for the gate).
        sides: 1, a one-sided test of a drop; 2, two-sided (`check`'s default: 0.05, 2).
        tolerance: the observed drop must also exceed this (`check`'s accuracy tolerance).
        correction: none, or bonferroni (alpha / rows per row).
        pooled: one test of the mean drop over all rows instead of one per row.
        budget: seconds a gate run may take, for the cheapest suite.
        max_seeds: the most seeds a suite is tried with.
        base_seeds: the baseline's seeds (default: as many as the gate run's).
        skip_bad: as `report`'s.
        warn: where warnings go (default: standard error).

    Returns:
        `analyse.power.PowerReport`: per row and whole-gate minimum detectable drops, the
        false-alarm rate, the cheapest suites, the assumptions.

    Raises:
        Error: a bad keyword, a bad file, or no row with two or more seeds.
    """
    from mnist_bench.analyse import power as analysis
    from mnist_bench.plan import estimate

    values = {
        "drop": drop,
        "power": power,
        "alpha": alpha,
        "sides": sides,
        "tolerance": tolerance,
        "correction": correction,
        "pooled": pooled,
        "budget": budget,
        "max_seeds": max_seeds,
        "base_seeds": base_seeds,
    }
    for keyword, value in values.items():
        check_value(_option(keyword), value, POWER_CHECKS[keyword])
    warn = _reader_options(skip_bad, warn)
    records = _results(paths, "paths", skip_bad, warn).records
    rows = analysis.spreads(records, estimate.history(warn=lambda message: None))
    if not rows:
        raise Error("no configuration with ok records of two or more seeds: no spread to use")
    rule = analysis.Rule(alpha, sides, tolerance, correction, pooled)
    return analysis.analyse(
        rows,
        rule,
        power=power,
        drop=drop,
        budget=budget,
        max_seeds=max_seeds,
        base_seeds=base_seeds,
    )
