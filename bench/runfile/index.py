"""The run-file index: decoded run files kept in an embedded SQLite database, so a reader of
thousands of run files looks them up instead of parsing them.

The run files stay the only source of truth. The index is a cache, keyed by each file's
absolute path and checked against its `stat` (size, modification and change times, inode) on
every read: a file written, replaced or touched since it was indexed is read again (a content
SHA-256 tells a touched file from a changed one), a deleted one is dropped, and a file that is
bad is never stored, so it fails, or is skipped, with today's message. An entry holds the run
as `load_run` decoded and checked it, in MessagePack, without what only `parity` and the Python
API read (`summary`: each record's predicted labels and misclassified samples, the run's
aggregates; they read the files whole); a `running` run is never stored (its journal grows).

The index lives in the cache folder (`cache.cache_dir()`, `$MNIST_BENCH_CACHE_DIR`), not in
the results folder: a results folder may be read-only, shared over the network (where SQLite's
locks cannot be trusted) or committed to git. `$MNIST_BENCH_INDEX` names another file, or
`off` for none. It may be deleted at any time; it is rebuilt as files are read. Concurrent
readers and writers are safe (WAL, a busy timeout, one transaction per batch); an index that
cannot be opened or written means reading the files without it; a corrupt or foreign file at
its place is replaced, with one warning line.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.runfile import files
from mnist_bench.runfile.cache import INDEX_ENV, INDEX_NAME, index_path  # noqa: F401
from mnist_bench.runfile.records import Record, RunFile, load_run

APP = "mnist-bench run index"
FORMAT = "2"  # 2: an entry is the table view and what it leaves out, apart
BATCH = 500  # entries written per transaction: a killed update loses at most these
LOOKUP = 500  # entries looked up per query (SQLite allows at least 999 parameters)
BUSY_TIMEOUT_S = 10.0
PROGRESS_FROM = 200  # files to read before a progress bar is worth showing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    run BLOB NOT NULL
);
"""
# What a reader looks up first, every file's path and stat, apart from the entries themselves
# (each a few pages): 10,000 files' in 3 ms instead of 40.
_STAT_INDEX = """
CREATE INDEX IF NOT EXISTS runs_stat ON runs (path, size, mtime_ns, ctime_ns, inode, sha256)
"""

Warn = Callable[[str], None]
FilePath = str | Path  # a run file's path: a `Path`, or text (`collect.run_file_names`)

# What a reader asks of each run: `full`, the file whole (predicted labels too: `parity`, the
# Python API's `load`); `summary`, without what only those read (`summary`); `table`, also
# without what the table readers never read (`TABLE_LEFT_OUT`: `report` but for its html,
# `history`, `compare`, `check`), a third of a summary's objects.
View = Literal["full", "summary", "table"]
VIEWS: tuple[View, ...] = ("full", "summary", "table")

# Each record's fields `report` (but for --format html), `history`, `compare` and `check` never
# read: the per-batch, per-epoch and per-window detail, the confusion matrix, the settings in
# force. An entry keeps them apart from the rest, so a table reader does not decode them.
SUMMARY_LEFT_OUT = ("predicted_labels", "misclassified")  # and the run's aggregates
TABLE_LEFT_OUT = (
    "confusion_matrix",
    "inference",
    "latency_ms",
    "time_to_accuracy",
    "accuracy_curve",
    "loss_curve",
    "window_seconds",
    "window_samples",
    "steady_interval",
    "epoch_cpu_seconds",
    "threads",
    "knobs",
    "op_determinism",
    "traceback",
    "weights_sha256",
    "predictions_sha256",
    "started_utc",
    "wall_seconds",
    "flops_per_train_sample",
    "flops_per_infer_sample",
    "deterministic",
    "warmup_windows",
    "steady_seconds_per_1k",
    "diverged_at_epoch",
    "variant_source",
)


def warn_stderr(message: str) -> None:
    print(f"mnist-bench: warning: {message}", file=sys.stderr)


@functools.cache
def fingerprint() -> str:
    """A digest of the run file's type: entries written by a version with other fields are
    read again, so a new field is never missing from an indexed run."""
    import json

    import msgspec

    schema = json.dumps(msgspec.json.schema(RunFile), sort_keys=True)
    text = f"{FORMAT}\n{SUMMARY_LEFT_OUT}\n{TABLE_LEFT_OUT}\n{schema}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _encoder() -> Any:
    import msgspec

    return msgspec.msgpack.Encoder()


@functools.cache
def _decoder(view: View) -> Any:
    """An entry's decoder: `[run, environment, config, left out, jobs]`; the table view leaves
    the blocks undecoded (`Reader._fetch` decodes each distinct block once)."""
    import msgspec

    if view == "table":
        parts = tuple[RunFile, msgspec.Raw, msgspec.Raw, msgspec.Raw, bytes]
        return msgspec.msgpack.Decoder(parts)
    block = dict[str, Any]
    return msgspec.msgpack.Decoder(tuple[RunFile, block, block, list[block], bytes])


_REQUIRED = object()


@functools.cache
def _record_defaults() -> tuple[tuple[str, Any], ...]:
    """Each `Record` field and its default value (`_REQUIRED`: none)."""
    import dataclasses

    out = []
    for f in dataclasses.fields(Record):
        if f.default_factory is not dataclasses.MISSING:
            out.append((f.name, f.default_factory()))
        else:
            out.append((f.name, _REQUIRED if f.default is dataclasses.MISSING else f.default))
    return tuple(out)


def _entry(run: RunFile) -> tuple[dict[str, Any], Any, Any, list[dict[str, Any]], bytes]:
    """What an index entry holds of `run`: the run's `summary` without its environment and
    config blocks and its records' `TABLE_LEFT_OUT` (a record's fields at their default
    left out too: they decode as the default), then those blocks, per record what was left
    out of `TABLE_LEFT_OUT` that held something else, and a digest of the records' jobs (runs
    of one grid share one list of `Job`s: `Reader.__call__`)."""
    import dataclasses

    records, taken = [], []
    for record in run.records:
        fields: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        for name, default in _record_defaults():
            if name in SUMMARY_LEFT_OUT:
                continue
            value = getattr(record, name)
            if default is _REQUIRED or value != default:
                (kept if name in TABLE_LEFT_OUT else fields)[name] = value
        records.append(fields)
        taken.append(kept)
    head = {f.name: getattr(run, f.name) for f in dataclasses.fields(RunFile)}
    head.update(records=records, aggregates=[], environment={}, config={})
    jobs = hashlib.sha256(_encoder().encode([r.job for r in run.records])).digest()[:16]
    return head, run.environment, run.config, taken, jobs


def _join(run: RunFile, taken: list[dict[str, Any]]) -> RunFile:
    """`run` (from an entry) with what its records' entries left out put back."""
    for record, kept in zip(run.records, taken, strict=True):
        for name, value in kept.items():
            setattr(record, name, value)
    return run


def summary(run: RunFile) -> RunFile:
    """`run` without what only `parity` and the Python API read (in place): each record's
    predicted labels and misclassified test samples, and the run's own aggregates (which
    readers compute anew). Half of a run's objects, and nine tenths of its bytes."""
    run.aggregates = []
    for record in run.records:  # SUMMARY_LEFT_OUT
        record.predicted_labels = None
        record.misclassified = []
    return run


Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def _stat_key(info: os.stat_result) -> Stat:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def _read(path: FilePath) -> bytes | None:
    """The run file's bytes, read as `load_run` reads them; None where that fails (then
    `load_run` reads it again, and words the failure)."""
    try:
        return files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run file")
    except (OSError, UserError):
        return None


# ---------------------------------------------------------------------------------- the file
def _is_ours(db: sqlite3.Connection) -> bool:
    """Whether `db` is an index; raises `sqlite3.OperationalError` where it cannot tell (locked)."""
    try:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        db.execute("SELECT path, size, mtime_ns, ctime_ns, inode, sha256, run FROM runs LIMIT 0")
    except sqlite3.OperationalError as exc:
        if "no such" in str(exc):
            return False
        raise
    except sqlite3.DatabaseError:  # not a database, or a malformed one
        return False
    return rows.get("app") == APP


def _create(path: Path) -> None:
    """A new, empty index at `path`, made aside and linked into place whole, so no reader
    ever sees it half made; another process's that got there first is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        db = sqlite3.connect(tmp)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA + ";" + _STAT_INDEX)
            with db:
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("app", APP), ("format", FORMAT), ("fingerprint", fingerprint())],
                )
        finally:
            db.close()
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        for name in (tmp, *_sidecars(tmp)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _remove(path: Path, inode: int) -> None:
    """Remove the bad index at `path`, unless another process has replaced it already."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino != inode:
            return
        for name in (path, *_sidecars(path)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


def open_index(path: Path, warn: Warn) -> sqlite3.Connection | None:
    """The index at `path`, created if missing and replaced (one warning) if it is not one;
    None where it cannot be had (a read-only cache folder): then files are read without it."""
    for attempt in range(2):
        try:
            if not path.exists():
                _create(path)
            inode = os.stat(path).st_ino
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error):
            return None
        try:
            ours = _is_ours(db)
            if ours:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                return db
        except sqlite3.Error:  # locked, or read-only: read the files without it
            db.close()
            return None
        db.close()
        if attempt == 0:
            warn(f"{path}: not a mnist-bench run index (corrupt or another file); rebuilt")
            _remove(path, inode)
    return None


# ------------------------------------------------------------------------------- the reader
class Reader:
    """Reads run files through the index: `reader(path)` is `load_run(path)`, from the index
    where its entry is fresh, in the `view` asked for: `summary` (the default), the run
    without predicted labels (`summary`); `table`, also without `TABLE_LEFT_OUT` where it
    comes from the index (read from its file, it has them), and the runs' equal environment
    and config blocks one shared dict each (to be read, never changed); `full` (or
    `full=True`), every file read whole (and its entry refreshed).

    Use as a context manager: entries are written in batches, the last on leaving.
    """

    def __init__(
        self,
        files: Sequence[FilePath],
        folders: Sequence[Path] = (),
        *,
        full: bool = False,
        view: View = "summary",
        rebuild: bool = False,
        warn: Warn | None = None,
        progress: bool | None = None,
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"view {view!r} is not one of {', '.join(VIEWS)}")
        self.view: View = "full" if full else view
        self.full, self.warn = self.view == "full", warn or warn_stderr
        self.files, self.folders = files, folders
        self.db: sqlite3.Connection | None = None
        self.known: dict[str, tuple[Stat, str]] = {}
        self.pending: list[tuple] = []
        self.dropped: list[str] = []
        self.seen: set[str] = set()
        self.jobs: dict[Job, Job] = {}
        self.blocks: dict[bytes, dict[str, Any]] = {}  # the table view's blocks, one of each
        self.keys: list[str] = []  # the files' keys, in the order given
        self.order: dict[str, int] = {}  # key -> its place in `keys`
        self.ahead: dict[str, bytes] = {}  # entries read ahead (`_fetch`)
        self.last_jobs: bytes | None = None  # the jobs digest of the entry `_fetch` read last
        self.job_lists: dict[bytes, list[Job]] = {}  # jobs digest -> the run's records' jobs
        self.read = 0
        self.written = True  # False once an update failed
        self._progress: Any = None
        self._task: Any = None
        self.location = index_path()
        if self.location is not None:
            self.db = open_index(self.location, self.warn)
        if self.db is not None:
            try:
                self._prepare(rebuild)
            except sqlite3.Error:
                self._close_db()
        stale = len(files)
        if self.db is not None:  # the keys are worked out: count those without an entry
            stale = len(self.keys) - sum(map(self.known.__contains__, self.keys))
        if stale >= PROGRESS_FROM and (progress if progress is not None else _stderr_is_terminal()):
            self._start_progress(stale)

    def _prepare(self, rebuild: bool) -> None:
        assert self.db is not None
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("fingerprint") != fingerprint():
            with self.db:
                self.db.execute("DELETE FROM runs")
                self.db.execute(_STAT_INDEX)  # an index made by an older version has none
                self.db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("format", FORMAT), ("fingerprint", fingerprint())],
                )
        if rebuild:
            with self.db:
                self.db.executemany(
                    "DELETE FROM runs WHERE path = ?", [(_key(f),) for f in self.files]
                )
        # Only the entries of the files read: the index is shared by every results folder, so
        # reading a few files never costs in proportion to all it holds.
        keys = self.keys = list(dict.fromkeys(_key(f) for f in self.files))
        self.order = {key: i for i, key in enumerate(keys)}
        wanted = set(keys)
        rest = keys
        columns = "SELECT path, size, mtime_ns, ctime_ns, inode, sha256 FROM runs"
        for folder in self.folders:  # a folder's entries in one range (its files are read)
            prefix = os.path.join(os.path.abspath(folder), "")
            rows = self.db.execute(f"{columns} WHERE path >= ? AND path < ?", _range(prefix))
            self.known.update(
                (row[0], (tuple(row[1:5]), row[5])) for row in rows if row[0] in wanted
            )
            rest = [key for key in rest if not key.startswith(prefix)]
        for start in range(0, len(rest), LOOKUP):
            chunk = rest[start : start + LOOKUP]
            rows = self.db.execute(f"{columns} WHERE path IN ({','.join('?' * len(chunk))})", chunk)
            self.known.update((row[0], (tuple(row[1:5]), row[5])) for row in rows)

    def _entry(self, path: FilePath) -> tuple[Stat, str] | None:
        return self.known.get(_key(path)) if self.db is not None else None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        if exc[0] is None:
            self._prune()
        self._flush()
        self._close_db()

    def __call__(self, path: FilePath) -> RunFile:
        """`load_run(path)` (the same run, the same `UserError`), from the index if it can."""
        self.last_jobs = None
        run = self._run(path)
        # One object per job: they are frozen, and read often. A run from an entry whose jobs
        # were seen in another's takes that run's list whole, without hashing a job.
        digest, self.last_jobs = self.last_jobs, None
        shared = self.job_lists.get(digest) if digest is not None else None
        if shared is not None and len(shared) == len(run.records):
            for record, job in zip(run.records, shared, strict=True):
                record.job = job
            return run
        for record in run.records:
            record.job = self.jobs.setdefault(record.job, record.job)
        if digest is not None:
            self.job_lists[digest] = [record.job for record in run.records]
        return run

    def refresh(self, path: FilePath) -> None:
        """Bring `path`'s entry up to date, as `reader(path)` would, without decoding an entry
        that is fresh already (`mnist-bench index`).

        Raises:
            UserError: the file is bad (`load_run`'s message).
        """
        key = _key(path)
        if self.db is not None and not self.full and key in self.known:
            with contextlib.suppress(OSError):
                if _stat_key(os.stat(key)) == self.known[key][0]:
                    self.seen.add(key)
                    return
        self._run(path)

    def _run(self, path: FilePath) -> RunFile:
        key = _key(path)
        self.seen.add(key)
        if self.db is None:
            return self._load(path)
        try:
            before = _stat_key(os.stat(path))
        except OSError:
            return self._load(path)  # load_run words it
        known = None if self.full else self.known.get(key)
        if known is not None and known[0] == before:
            run = self._fetch(key)
            if run is not None:
                return run
        raw = _read(path)
        digest = hashlib.sha256(raw).hexdigest() if raw is not None else None
        if known is not None and digest == known[1]:  # touched, not changed
            run = self._fetch(key, "summary")  # all of the entry: it is written again
            if run is not None:
                self.pending.append((key, *before, digest, self._blob(run)))
                return run
        try:
            run = self._load(path, raw)
        except UserError:
            if key in self.known:
                self.dropped.append(key)
            raise
        if run.status != "running" and digest is not None:
            with contextlib.suppress(OSError):
                if _stat_key(os.stat(path)) == before:  # what was read is what was stat'ed
                    self.pending.append((key, *before, digest, self._blob(run)))
        if len(self.pending) >= BATCH:
            self._flush()
        return run

    def _load(self, path: FilePath, raw: bytes | None = None) -> RunFile:
        self.read += 1
        if self._progress is not None:
            self._progress.advance(self._task)
        run = load_run(path, raw)
        return run if self.full else summary(run)

    def _blob(self, run: RunFile) -> bytes:
        """`run`'s entry (`_entry`)."""
        return _encoder().encode(_entry(run))

    def _fetch(self, key: str, view: View | None = None) -> RunFile | None:
        assert self.db is not None
        view = view or self.view
        try:
            blob = self.ahead.pop(key, None)
            if blob is None:  # read this entry and the next files' in one query
                at = self.order.get(key)
                chunk = [key] if at is None else self.keys[at : at + LOOKUP]
                self.ahead = dict(
                    self.db.execute(
                        f"SELECT path, run FROM runs WHERE path IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
                blob = self.ahead.pop(key, None)
            if blob is None:
                return None
            run, environment, config, taken, jobs = _decoder(view).decode(blob)
            if view == "table":  # runs of one machine and commit share one block, read once
                environment, config = self._block(environment), self._block(config)
            run.environment, run.config = environment, config
            if view != "table":
                _join(run, taken)
            self.last_jobs = jobs
            return run
        except (sqlite3.Error, ValueError):  # msgspec's errors are ValueErrors
            return None

    def _block(self, raw: Any) -> dict[str, Any]:
        """The block encoded as `raw`, decoded once for all the runs that hold it."""
        import msgspec

        key = bytes(raw)
        block = self.blocks.get(key)
        if block is None:
            block = self.blocks[key] = msgspec.msgpack.decode(key)
        return block

    def _prune(self) -> None:
        """Drop the entries of files gone from the folders read."""
        if self.db is None:
            return
        for folder in self.folders:
            prefix = os.path.join(os.path.abspath(folder), "")
            try:
                rows = self.db.execute(
                    "SELECT path FROM runs WHERE path >= ? AND path < ?", _range(prefix)
                ).fetchall()
            except sqlite3.Error:
                return
            self.dropped.extend(key for (key,) in rows if key not in self.seen)

    def _flush(self) -> None:
        if self.db is None or self.location is None or not (self.pending or self.dropped):
            return
        try:
            with self.db:
                self.db.executemany("DELETE FROM runs WHERE path = ?", [(k,) for k in self.dropped])
                self.db.executemany(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", self.pending
                )
        except sqlite3.Error as exc:
            if not isinstance(exc, sqlite3.OperationalError):  # corrupt: made anew next time
                self.warn(f"{self.location}: run index is corrupt ({exc}); removed")
                with contextlib.suppress(OSError):
                    _remove(self.location, os.stat(self.location).st_ino)
            elif "readonly" not in str(exc):
                self.warn(f"run index not updated ({exc}); read the run files without it")
            self._close_db()
            self.written = False
        self.pending, self.dropped = [], []

    def _close_db(self) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
        self.db = None

    def _start_progress(self, total: int) -> None:
        from mnist_bench.core.console import make_console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("indexing run files"),
            BarColumn(),
            MofNCompleteColumn(),
            console=make_console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("index", total=total)
        self._progress.start()


def _range(prefix: str) -> tuple[str, str]:
    """The keys under folder `prefix` ("FOLDER/"): every one sorts between "FOLDER/" and
    "FOLDER0" ("0" follows "/")."""
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


def _key(path: FilePath) -> str:
    """The entry's key: the absolute, normal path (without asking for the working folder
    where the path is one already: a listing's paths under an absolute folder are)."""
    text = os.fspath(path)
    if text.startswith("/") and "/." not in text and "//" not in text and not text.endswith("/"):
        return text
    return os.path.abspath(text)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def reader(
    files: Sequence[FilePath],
    folders: Sequence[Path] = (),
    *,
    full: bool = False,
    view: View = "summary",
    warn: Warn | None = None,
) -> Iterator[Reader]:
    """A `Reader` of `files` (found in `folders`, whose vanished files' entries are dropped)."""
    with Reader(files, folders, full=full, view=view, warn=warn) as read:
        yield read
