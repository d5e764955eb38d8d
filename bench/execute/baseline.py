"""`baseline update`: run the baseline's suite where no reader looks, then put its file in place.

The run is staged in a hidden folder beside the baseline folder (`results/.baseline.update-XXXX/`
for `results/baseline`): `check --baseline results/baseline` never looks beside it, and a folder
scan skips hidden folders (`records.run_files_in`), so `report results/` does not read it either.
Only a complete run replaces the baseline's own file (`DIR/<suite stem>.json`), by a rename.

An interrupted update keeps its staged run and names the command that finishes it
(`baseline update --resume RUN.json`); one whose records failed removes what it wrote. Nothing
else is ever deleted: the staging folder goes only once empty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_bench.core.errors import UserError
from mnist_bench.runfile import storage
from mnist_bench.runfile.records import journal_path, load_run

if TYPE_CHECKING:
    from mnist_bench.execute.runner import Run


@dataclasses.dataclass(frozen=True)
class Update:
    """One baseline update: the suite that defines the baseline and the folder it lives in."""

    suite: Path
    folder: Path

    @property
    def final(self) -> Path:
        """The one file this update replaces."""
        return self.folder / f"{self.suite.stem}.json"

    @property
    def prefix(self) -> str:
        return f".{self.folder.name}.update-"

    def check(self) -> None:
        """Create the baseline folder if needed; refuse a non-file in the final file's place.

        Raises:
            UserError: the folder cannot be made or written, or the final path is no file.
        """
        storage.ensure_dir(self.folder)
        if self.final.exists() and not self.final.is_file():
            raise UserError(f"{self.final}: not a regular file; baseline not updated")

    def stopped(self) -> list[Path]:
        """Staged run files of earlier updates of this folder that never finished."""
        return sorted(
            path
            for folder in self.folder.absolute().parent.glob(self.prefix + "*")
            if folder.is_dir() and not folder.is_symlink()
            for path in folder.glob("*.json")
        )

    def start(self, argv: list[str]) -> Run:
        """The suite's run, its file created in a new staging folder."""
        from mnist_bench.execute.runner import Run
        from mnist_bench.plan import suite

        config = suite.load(self.suite)
        try:
            staging = Path(tempfile.mkdtemp(dir=self.folder.absolute().parent, prefix=self.prefix))
        except OSError as exc:
            where = self.folder.absolute().parent
            raise UserError(f"{where}: cannot create a staging folder ({exc.strerror})") from None
        try:
            return Run.start(dataclasses.replace(config, results_dir=str(staging)), argv)
        except BaseException:  # nothing ran yet: the run file, if made, holds no record
            for path in staging.glob("*.json"):
                self.discard(path)
            with contextlib.suppress(OSError):
                staging.rmdir()
            raise

    def resume(self, path: str | Path) -> Run | Path:
        """The staged run at `path` reopened for its missing records; or `path` itself when it
        is complete already (the update stopped between the run's end and the rename).

        Raises:
            UserError: `path` is not a staged run of this baseline folder and suite.
        """
        from mnist_bench.core.config import RunConfig
        from mnist_bench.execute.runner import Run
        from mnist_bench.plan import suite

        path = Path(path)
        staging = path.absolute().parent
        if (
            staging.parent != self.folder.absolute().parent
            or not staging.name.startswith(self.prefix)
            or path.suffix != ".json"
        ):
            raise UserError(
                f"--resume {path}: not a staged run of an update of {self.folder} "
                f"(those lie in {self.folder.absolute().parent / (self.prefix + '*')}/)"
            )
        run = load_run(path)
        expected = suite.load(self.suite).to_dict()
        try:
            staged = RunConfig.from_dict(run.config).to_dict()
        except (UserError, TypeError, ValueError, AttributeError, KeyError):
            staged = run.config
        if {**staged, "results_dir": None} != {**expected, "results_dir": None}:
            raise UserError(f"--resume {path}: staged from another suite than {self.suite}")
        if run.status == "complete":
            return path
        return Run.resume(path)

    def finish(self, path: Path) -> None:
        """Put the complete staged run at `path` in place of the baseline's file; remove the
        staging folder if nothing else is in it."""
        os.replace(path, self.final)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def discard(self, path: Path) -> None:
        """Remove the staged run at `path` (a failed update) and its journal; then its folder,
        if nothing else is in it."""
        for written in (path, journal_path(path)):
            with contextlib.suppress(FileNotFoundError):
                written.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def resume_command(self, path: Path) -> str:
        return shlex.join(
            [
                "mnist-bench",
                "baseline",
                "update",
                "--suite",
                str(self.suite),
                "--baseline-dir",
                str(self.folder),
                "--resume",
                str(path),
            ]
        )
