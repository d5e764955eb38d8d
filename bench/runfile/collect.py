"""Find and read run files for every reader (`load_runs`); label machines. No framework.

Every bad file is named with its reason. By default a bad file stops the command (exit 2);
`skip_bad=True` warns about it and goes on with the good ones.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.core.errors import UserError
from mnist_bench.runfile.machine import Environment, machine_label
from mnist_bench.runfile.machine import node_label as node_label  # its old home
from mnist_bench.runfile.records import Record, RunFile, load_run, run_file_names_in

if TYPE_CHECKING:
    from mnist_bench.runfile.index import View


class Views:
    """Each environment block's view and machine label, worked out once for all the runs
    that share the block (one dict: `index.Reader`'s table view)."""

    def __init__(self) -> None:
        # id(block) -> the block (kept, so its id is never another's), its view, its label
        self.envs: dict[int, tuple[dict[str, Any], Environment]] = {}
        self.labels: dict[int, tuple[dict[str, Any], str]] = {}

    def env(self, block: dict[str, Any]) -> Environment:
        known = self.envs.get(id(block))
        if known is None:
            known = self.envs[id(block)] = (block, Environment.of(block))
        return known[1]

    def machine(self, block: dict[str, Any]) -> str:
        known = self.labels.get(id(block))
        if known is None:
            view = self.envs.get(id(block))
            label = machine_label(view[1] if view is not None else block)
            known = self.labels[id(block)] = (block, label)
        return known[1]


@dataclass(frozen=True)
class LoadedRun:
    path: Path
    run: RunFile
    complete: bool = True  # False: read without predicted labels (`load_runs`)
    views: Views | None = field(default=None, repr=False, compare=False)  # shared by runs

    @functools.cached_property
    def env(self) -> Environment:
        """The run's environment block, read once (`machine.Environment`)."""
        if self.views is not None:
            return self.views.env(self.run.environment)
        return Environment.of(self.run.environment)

    @functools.cached_property
    def machine(self) -> str:
        if self.views is not None:
            return self.views.machine(self.run.environment)
        # The environment's view is kept only where a reader asked for it (`history`): 10,000
        # runs' views are 10 MB that `report` does not need.
        return machine_label(self.__dict__.get("env") or self.run.environment)


def run_files(paths: Iterable[str | Path]) -> list[Path]:
    """The run files named by `paths`: files as given, folders searched recursively for *.json
    (outside hidden folders: `records.run_files_in`).

    Raises:
        UserError: a path is missing, or a folder holds no run file.
    """
    return [Path(name) for name in run_file_names(paths)]


def run_file_names(paths: Iterable[str | Path]) -> list[str]:
    """`run_files`, as text: what `mnist-bench index` reads, where making 10,000 `Path`s
    would take a sixth of its time."""
    found: list[str] = []
    given = 0
    for raw in paths:
        given += 1
        path = Path(raw)
        if path.is_dir():
            files = run_file_names_in(path)
            if not files:
                raise UserError(f"{path}: folder holds no run files (*.json)")
            found.extend(files)
        elif path.exists():
            found.append(str(path))
        else:
            raise UserError(f"{path}: no such file or folder")
    # One folder's listing names each file once (and hashing 10,000 paths takes a while).
    return found if given == 1 else list(dict.fromkeys(found))


def load_runs(
    paths: Iterable[str | Path],
    *,
    skip_bad: bool = False,
    warn: Callable[[str], None] | None = None,
    skip_option: str = "--skip-bad",
    full: bool = False,
    view: View = "summary",
    check: Callable[[LoadedRun], object] | None = None,
) -> list[LoadedRun]:
    """Read every run file under `paths`, through the run index (`runfile.index`): the runs come
    without their records' predicted labels, unless `full` (what `parity` and the Python API
    read). The one loader of every reader: a second copy of a run (same run id) is dropped with
    a warning (`unique_runs`), and a bad file stops the read, or with `skip_bad` is skipped with
    a warning. A bad file's message names `skip_option` (the command's flag, or the API's
    keyword).

    Args:
        view: what of each run is read where `full` is not asked for (`index.Reader`):
            `summary`, or `table`, without what the table readers never read.
        check: a reader's own test of a run, raising UserError where the run is bad for it
            (`history`: a start time it cannot order); such a run counts as a bad file.

    Raises:
        UserError: a path is missing, a file is bad (unless `skip_bad`), or nothing usable is left.
    """
    from mnist_bench.runfile import index

    paths = list(paths)
    files = run_files(paths)
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    loaded: list[LoadedRun] = []
    views = Views() if view == "table" and not full else None
    reading = index.reader(files, folders, full=full, view=view, warn=warn)
    with _no_cyclic_gc(), reading as read:
        for path in files:
            try:
                run = LoadedRun(path, read(path), full, views)
                if check is not None:
                    check(run)
                loaded.append(run)
            except UserError as exc:
                if not skip_bad:
                    raise UserError(f"{exc} (pass {skip_option} to skip bad files)") from None
                if warn is not None:
                    warn(f"skipped {exc}")
    if not loaded:
        raise UserError("no usable run files among: " + ", ".join(str(p) for p in paths))
    return unique_runs(loaded, warn)


def complete(runs: Iterable[LoadedRun]) -> list[LoadedRun]:
    """`runs`, each read whole (predicted labels too) where `load_runs` left that out.

    Raises:
        UserError: a file has gone bad since.
    """
    return [
        loaded if loaded.complete else LoadedRun(loaded.path, load_run(loaded.path))
        for loaded in runs
    ]


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: a run file decodes into thousands of lists and
    dicts, none of them in a cycle, and the collections their allocation triggers would
    otherwise take two thirds of the loading time (1,000 files: 0.3 s instead of 0.9 s).
    What was loaded is then frozen (`gc.freeze`): the first collection after it would
    otherwise walk every object loaded (over a second for 1,000 files), and each full one
    after it again. Frozen objects are still freed when no longer referenced."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def unique_runs(
    runs: list[LoadedRun], warn: Callable[[str], None] | None = None
) -> list[LoadedRun]:
    """Drop a second copy of a run (same run id), so no record counts twice."""
    seen: dict[str, Path] = {}
    out = []
    for loaded in runs:
        first = seen.setdefault(loaded.run.run_id, loaded.path)
        if first != loaded.path:
            if warn is not None:
                warn(f"skipped {loaded.path}: same run id as {first}")
            continue
        out.append(loaded)
    return out


def records(runs: Iterable[LoadedRun]) -> list[Record]:
    return [r for loaded in runs for r in loaded.run.records]
