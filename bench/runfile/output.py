"""One policy for every file a command writes on request (`--output`, `history --plot`).

A command never replaces a file the user did not ask it to replace, nor one of its own inputs:

- an existing file is refused unless `--force`;
- one of the command's inputs is refused even with `--force` (a run file named on the command
  line, or a `*.json` file under a folder it reads);
- a symlink, a folder, a device, a FIFO or a socket at the path is refused: renaming over a
  symlink would drop the link, and a device or FIFO is no place for a report;
- the write is atomic (a temporary file in the same folder, fsync, rename: `storage.write_atomic`),
  and without `--force` it never replaces a file that appeared meanwhile.

Every command words a refusal the same way, and its `--output` and `--force` help say the same.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from mnist_bench.core.errors import UserError
from mnist_bench.runfile import files

RULE = (
    "an existing file only with --force; never one of the files read, a symlink, a folder or "
    "a device"
)
FORCE_HELP = (
    "replace an existing regular file at the output path (never one of the files read, a "
    "symlink, a folder or a device)"
)

_KINDS = ((stat.S_ISLNK, "a symlink"), *files.NOT_REGULAR)  # checked with lstat


def add_options(
    p: argparse.ArgumentParser,
    *,
    what: str = "the output",
    metavar: str = "FILE",
    required: bool = False,
    note: str = "",
) -> None:
    """`--output/-o` and `--force`, with the help text every command shares."""
    p.add_argument(
        "--output",
        "-o",
        metavar=metavar,
        required=required,
        help=f"write {what} here (atomically){note}; {RULE}",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def check_force(args: argparse.Namespace, *outputs: str) -> None:
    """`--force` alone names nothing to replace: refuse it without an output option."""
    if getattr(args, "force", False) and not any(getattr(args, o, None) for o in outputs):
        names = " or ".join(f"--{o}" for o in outputs)
        raise UserError(f"--force goes with {names} FILE")


def check(path: str | Path, *, force: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """`path`, once the policy allows writing it (see the module's docstring).

    Raises:
        UserError: why not, in one line that names the path.
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise UserError(f"refusing to write {path} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise UserError(f"refusing to write {path} (it is {kind}; name a regular file)")
    if any(_reads(source, path) for source in inputs):
        raise UserError(f"refusing to overwrite {path} (it is one of the files this command reads)")
    if not force:
        raise UserError(_exists(path))
    return path


def write(
    path: str | Path,
    payload: bytes | str,
    *,
    force: bool,
    inputs: Iterable[str | Path] = (),
    what: str = "",
) -> None:
    """Write `payload` to `path` under the policy, atomically.

    Raises:
        UserError: the policy refuses `path`, or the write failed.
    """
    from mnist_bench.runfile.storage import write_atomic

    path = check(path, force=force, inputs=inputs)
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        write_atomic(path, data, exclusive=not force, what=what)
    except FileExistsError:  # appeared since the check
        raise UserError(_exists(path)) from None


def _exists(path: Path) -> str:
    return f"refusing to overwrite {path} (it exists; pass --force to replace it)"


def _reads(source: str | Path, path: Path) -> bool:
    """Whether a command given `source` reads the existing file `path`: the file itself, or a
    `*.json` file anywhere under the folder `source` (as folders of run files are read)."""
    source = Path(source)
    try:
        if source.is_dir():
            return path.suffix == ".json" and path.resolve().is_relative_to(source.resolve())
        return os.path.samefile(source, path)
    except OSError:
        return False
