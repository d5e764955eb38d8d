"""One import name: the wheel installs `mnist_bench` (and `mnist_bench.models`) and nothing named
`bench` or `models`; `python -m mnist_bench` is the CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_installs_only_mnist_bench(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("mnist_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {
        "mnist_bench",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    for module in ("cli.py", "execute/worker.py", "models/__init__.py", "models/dense.py",
                   "render/table.py", "execute/backends/jax.py", "data/mnist.npz"):  # fmt: skip
        assert f"mnist_bench/{module}" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"mnist-bench = mnist_bench.cli:main" in entry_points


def test_python_dash_m_and_no_stray_top_level_names(tmp_path):
    """From outside the repository (so the checkout is not on sys.path), the installed package
    is `mnist_bench`; `bench` and `models` are not importable."""
    script = (
        "import importlib.util, sys\n"
        "import mnist_bench, mnist_bench.models\n"
        "names = mnist_bench.models.default_names()\n"
        "assert names == ['single-dense', 'two-dense', 'flatten-dense'], names\n"
        "print([n for n in ('bench', 'models') if importlib.util.find_spec(n) is not None])\n"
    )
    probe = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=tmp_path, timeout=60)  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "mnist_bench", "--version"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert "0.1.0" in version.stdout
