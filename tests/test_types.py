"""mypy over the package under the names it installs as: `bench/` is `mnist_bench` and `models/`
is `mnist_bench.models` (pyproject's package-dir), which mypy cannot follow, so the test lays a
tree of links with those names in a temporary folder and checks `-p mnist_bench` there. The
settings are pyproject's [tool.mypy]."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT


def shadow_tree(root) -> None:
    """`root/mnist_bench/`: a link to each entry of bench/, and `models` linked to models/."""
    package = root / "mnist_bench"
    package.mkdir()
    for entry in (ROOT / "bench").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "models").symlink_to(ROOT / "models")


def test_mypy_is_clean_on_the_package(tmp_path):
    shadow_tree(tmp_path)
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    command += ["--cache-dir", str(ROOT / ".mypy_cache"), "-p", "mnist_bench"]
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    report = (done.stdout + done.stderr).replace("mnist_bench/models/", "models/")
    report = report.replace("mnist_bench/", "bench/")
    assert done.returncode == 0, report
    checked = re.search(r"no issues found in (\d+) source files", report)
    sources = [*(ROOT / "bench").rglob("*.py"), *(ROOT / "models").rglob("*.py")]
    assert checked and int(checked[1]) == len(sources), report  # every module, none left out
