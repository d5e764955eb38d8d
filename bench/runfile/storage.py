"""Where run files live: unique names, atomic writes, nothing ever overwritten by another run;
and the user's cache folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mnist_bench.core.errors import UserError
from mnist_bench.runfile.cache import CACHE_ENV, cache_dir  # noqa: F401 (named here too)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def ensure_dir(folder: Path) -> Path:
    """Create the results folder if needed and check it is writable, or raise a `UserError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create results folder ({exc.strerror})") from None
    if not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: results folder is not writable")
    return folder


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_json(path: Path, data: dict[str, Any], *, exclusive: bool = False) -> None:
    """Write `data` as indented JSON to `path` atomically (see `write_atomic`).

    Raises:
        UserError: the write failed; the message names the path.
    """
    write_atomic(path, json_bytes(data), exclusive=exclusive, what="results")


def json_bytes(data: dict[str, Any]) -> bytes:
    """A run file's bytes: indented JSON, no NaN or infinity."""
    return json.dumps(data, indent=1, allow_nan=False).encode() + b"\n"


def write_atomic(path: Path, payload: bytes, *, exclusive: bool = False, what: str = "") -> None:
    """Write `payload` to `path` atomically: a temporary file in the same folder, fsync, rename.

    With `exclusive`, an existing file at `path` is never replaced (`FileExistsError`). A failed
    write (disk full, permissions) leaves no temporary or partial file behind. The file gets the
    usual permissions (0666 less the umask), not mkstemp's 0600.

    Raises:
        UserError: the write failed; the message names the path (and `what` was written).
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                os.link(tmp, path)  # fails if path exists: no run overwrites another
            else:
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _write_error(path, what, exc) from None


def append_durable(path: Path, payload: bytes, *, what: str = "") -> None:
    """Append `payload` to `path` (created if missing) and fsync it: a cost that does not grow
    with the file.

    O_APPEND puts it at the end whatever else holds the file open. A failed append (disk full,
    an interrupt) is cut off again, so no partial payload is left behind where it can be helped.
    The file is opened afresh each time: an append into a folder someone removed fails loudly
    instead of writing into an unlinked file.

    Raises:
        UserError: the append failed; the message names the path (and `what` was written).
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)  # less the umask
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise _write_error(path, what, exc) from None


def _write_error(path: Path, what: str, exc: OSError) -> UserError:
    reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return UserError(f"{path}: cannot write {what + ' ' if what else ''}({reason})")


def reserve_run_path(folder: Path, run_id: str, data: dict[str, Any]) -> Path:
    """Write the first version of a run file under a name no other run holds."""
    for attempt in range(100):
        name = f"{run_id}.json" if attempt == 0 else f"{run_id}-{attempt}.json"
        path = folder / name
        try:
            write_json(path, data, exclusive=True)
            return path
        except FileExistsError:
            continue
    raise UserError(f"{folder}: could not find a free run file name")
