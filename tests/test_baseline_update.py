"""`baseline update` replaces its own file (DIR/<suite stem>.json) and touches nothing else."""

from __future__ import annotations

import shutil

import pytest
from conftest import ROOT, run_cli
from mnist_bench.core import environment
from mnist_bench.runfile.records import load_run

INSTALLED = environment.installed_backends()
BACKEND = "jax" if "jax" in INSTALLED else (INSTALLED[0] if INSTALLED else None)
OTHER_RUN = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"


def tiny_suite(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'variants = ["single-dense"]\n'
        f'backends = ["{BACKEND}"]\n'
        "train_limit = 256\n"
        "test_limit = 128\n"
        "infer_batch_sizes = [8]\n"
        "\n[settings]\nepochs = 1\n"
    )
    return path


@pytest.mark.skipif(BACKEND is None, reason="no backend installed")
def test_update_replaces_its_own_file_and_nothing_else(tmp_path):
    folder = tmp_path / "baseline"
    folder.mkdir()
    (folder / "package.json").write_text('{"name": "not a run file"}\n')
    (folder / "notes.txt").write_text("why the baseline moved\n")
    shutil.copy(OTHER_RUN, folder / "other-run.json")
    (folder / "tiny.json").write_text("the previous baseline\n")  # its own file: replaced
    foreign = {
        name: (folder / name).read_bytes()
        for name in ("package.json", "notes.txt", "other-run.json")
    }

    out = run_cli(
        "baseline", "update", "--suite", str(tiny_suite(tmp_path)), "--baseline-dir", str(folder)
    )

    assert out.returncode == 0, out.stderr
    assert f"baseline updated: {folder / 'tiny.json'}" in out.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted([*foreign, "tiny.json"])
    for name, content in foreign.items():
        assert (folder / name).read_bytes() == content, name
    run = load_run(folder / "tiny.json")
    assert run.status == "complete"
    assert [(r.variant, r.backend, r.status) for r in run.records] == [
        ("single-dense", BACKEND, "ok")
    ]


def test_update_refuses_a_folder_in_place_of_its_file(tmp_path):
    folder = tmp_path / "baseline"
    (folder / "tiny.json").mkdir(parents=True)
    (folder / "tiny.json" / "keep.txt").write_text("x")
    out = run_cli(
        "baseline", "update", "--suite", str(tiny_suite(tmp_path)), "--baseline-dir", str(folder)
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"mnist-bench baseline: error: {folder / 'tiny.json'}: not a regular file; "
        "baseline not updated"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.json"]
    assert (folder / "tiny.json" / "keep.txt").read_text() == "x"
