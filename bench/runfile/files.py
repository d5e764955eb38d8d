"""Bounded reads: every file the tool reads is a regular file of sane size, read with a limit.

A device (`/dev/zero`) named where a file belongs would be read until the kernel kills the
process, and a FIFO would block it forever; both are refused from their `stat`, before anything
opens them. An oversize file is refused from its size, and the read itself stops at the limit
too (a file may grow after the check).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from mnist_bench.core.errors import UserError

MiB = 2**20
RUN_FILE_LIMIT = 256 * MiB  # the CI baseline (27 records) is 0.12 MiB
SUITE_LIMIT = 1 * MiB  # a suite is a few lines of TOML
CACHE_LIMIT = 1 * MiB  # the tool's own small JSON caches (the machine's peak GFLOP/s)
DATASET_FILE_LIMIT = 512 * MiB  # an .npz or IDX .gz file: MNIST's uncompressed .npz is 52 MiB
DATASET_ARRAY_LIMIT = 1024 * MiB  # one array, decompressed: MNIST's x_train is 45 MiB
RUNTIME_ENV_LIMIT = 1 * MiB  # Ray's runtime env: a few package names, paths and variables
_CHUNK = 1 * MiB  # what a file that grew since its `stat` is read on by

NOT_REGULAR = (  # what a path names when it is no regular file, and how to say so
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)
# O_NONBLOCK: should a FIFO take the checked file's place after the check, opening it does not
# wait for a writer (and the fstat below refuses it). Regular files ignore the flag.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def size_text(size: int) -> str:
    """`1.5 MiB`, `256 MiB`, `12 KiB`, `300 bytes`."""
    for unit, scale in (("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _check(path: Path, info: os.stat_result, limit: int, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in NOT_REGULAR if test(info.st_mode)), "not a file")
        raise UserError(f"{path}: not a regular file ({kind}; expected a {what})")
    if info.st_size > limit:
        raise UserError(
            f"{path}: too large for a {what} ({size_text(info.st_size)}; limit {size_text(limit)})"
        )


def check_regular(path: str | Path, *, limit: int, what: str) -> Path:
    """`path`, once its `stat` shows a regular file (symlinks followed) of at most `limit` bytes.

    Raises:
        UserError: a folder, device, FIFO or socket, or a file larger than `limit`.
        OSError: the `stat` failed (`FileNotFoundError`...): callers word these themselves.
    """
    path = Path(path)
    _check(path, os.stat(path), limit, what)
    return path


def open_regular(path: str | Path, *, limit: int, what: str) -> BinaryIO:
    """`path` opened for binary reading, once `check_regular` accepts it. A device or FIFO is
    never opened: opening one can block (a FIFO) or act (a tape rewinds).

    Raises:
        UserError: as `check_regular`.
        OSError: the file cannot be opened.
    """
    path = check_regular(path, limit=limit, what=what)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _check(path, os.fstat(fd), limit, what)  # the file opened is the file checked
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, *, limit: int, what: str) -> bytes:
    """The contents of a regular file of at most `limit` bytes, read no further than that.

    Raises:
        UserError: as `check_regular`, or the file grew past `limit` while it was read.
        OSError: the file cannot be opened or read.
    """
    with open_regular(path, limit=limit, what=what) as f:
        # As much as the file holds, plus a byte to see it grow: a read of `limit` bytes would
        # reserve all of them up front, whatever the file's size.
        want = min(os.fstat(f.fileno()).st_size, limit) + 1
        chunks, total = [], 0
        while total <= limit:
            ask = min(want, limit + 1 - total)
            chunks.append(f.read(ask))
            total += len(chunks[-1])
            if len(chunks[-1]) < ask:  # the end of the file
                break
            want = _CHUNK
    if total > limit:
        raise UserError(f"{path}: too large for a {what} (over {size_text(limit)}, the limit)")
    return b"".join(chunks)
