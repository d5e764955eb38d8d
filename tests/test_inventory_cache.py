"""`mnist-bench list`: each backend's description (devices, each variant's parameters and
FLOPs) is cached per backend, keyed on the installed versions; a second `list` starts no
worker, a version change or a corrupt cache file starts one again. Real workers, real files;
the cache folder is the test's own (`MNIST_BENCH_CACHE_DIR`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INSTALLED, ROOT, needs_backend, run_cli
from mnist_bench.core import environment
from mnist_bench.execute import inventory, peak
from mnist_bench.runfile import storage

FRAMEWORKS = ("keras", "tensorflow", "jax", "torch")


def list_in(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("list", *args, env={storage.CACHE_ENV: str(cache)})


@pytest.fixture(scope="module")
def first_list(tmp_path_factory):
    """`list` with an empty cache folder: every installed backend started, and cached."""
    cache = tmp_path_factory.mktemp("cache")
    out = list_in(cache)
    assert out.returncode == 0, out.stderr
    return cache, out


def cache_copy(first_list, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(first_list[0], cache)
    return cache


def snapshot(cache: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(cache.iterdir())}


@pytest.mark.slow  # `list` starts every installed backend (about 30 s)
@needs_backend
def test_first_list_starts_each_backend_and_caches_it(first_list):
    cache, out = first_list
    assert "starting " + ", ".join(INSTALLED) in out.stderr  # progress, on stderr
    for backend in INSTALLED:
        assert f"list: {backend} described in " in out.stderr
        data = json.loads((cache / f"describe-{backend}.json").read_bytes())
        assert data["key"] == inventory.cache_key(backend)
        assert data["info"]["backend"] == backend and "cpu" in data["info"]["devices"]
        names = [v["name"] for v in data["info"]["variants"]]
        assert names[:3] == ["single-dense", "two-dense", "flatten-dense"]
    assert "from the cache" not in out.stderr
    assert "7,850" in out.stdout  # single-dense's parameters, probed
    assert "starting" not in out.stdout  # stdout holds the tables only


@pytest.mark.slow  # `list` starts every installed backend (about 30 s)
@needs_backend
def test_second_list_comes_from_the_cache(first_list, tmp_path):
    cache = cache_copy(first_list, tmp_path)
    before = snapshot(cache)
    out = list_in(cache)
    assert out.returncode == 0, out.stderr
    assert out.stdout == first_list[1].stdout  # the same tables
    assert f"list: {', '.join(INSTALLED)} described from the cache ({cache})" in out.stderr
    assert "starting" not in out.stderr and "described in" not in out.stderr  # no worker
    assert snapshot(cache) == before  # read, not rewritten


def tables(stdout: str) -> tuple[str, str]:
    """`list`'s two tables: variants, backends."""
    lines = stdout.splitlines()
    split = next(i for i, line in enumerate(lines) if line.strip() == "backends")
    return "\n".join(lines[:split]), "\n".join(lines[split:])


def fake_distribution(folder: Path, name: str, version: str) -> Path:
    """A distribution's metadata, as pip leaves it, saying `name` is at `version`: what
    `importlib.metadata` reports when `folder` comes first on the path."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


@pytest.mark.slow  # `list` starts every installed backend (about 30 s)
@needs_backend
def test_a_version_change_or_a_corrupt_file_starts_that_backend_again(first_list, tmp_path):
    cache = cache_copy(first_list, tmp_path)
    corrupt, changed = INSTALLED[0], INSTALLED[-1]  # the same one where only one is installed
    (cache / f"describe-{corrupt}.json").write_bytes(b'{"key": {"format": 1}, "info": [tru')
    package = environment.BACKEND_PACKAGES[changed]
    site = fake_distribution(tmp_path / "site", package, "99.0.0")
    out = run_cli("list", env={storage.CACHE_ENV: str(cache), "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    variants, backends = tables(out.stdout)
    assert variants == tables(first_list[1].stdout)[0] and "7,850" in variants  # probed again
    assert "| 99.0.0 " in backends  # the version the distribution's metadata says
    again = list(dict.fromkeys([corrupt, changed]))
    assert f"starting {', '.join(again)} to describe" in out.stderr
    cached = [b for b in INSTALLED if b not in again]
    if cached:
        assert f"list: {', '.join(cached)} described from the cache" in out.stderr
    saved = json.loads((cache / f"describe-{changed}.json").read_bytes())
    assert saved["key"]["packages"][package] == "99.0.0"  # rewritten under the new key
    assert (
        saved["info"]["variants"]
        == json.loads((first_list[0] / f"describe-{changed}.json").read_bytes())["info"]["variants"]
    )
    if corrupt != changed:  # the corrupt file is whole again, under the current key
        rewritten = json.loads((cache / f"describe-{corrupt}.json").read_bytes())
        assert rewritten["key"] == inventory.cache_key(corrupt)
    # back on the real versions, the entry for 99.0.0 is not taken
    real = inventory.cache_key(changed)
    assert real["packages"][package] != "99.0.0"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(storage.CACHE_ENV, str(cache))
        assert inventory.read_cached(changed, real) is None


def test_cache_folder_respects_the_override_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "mine"))
    assert storage.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(storage.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert storage.cache_dir() == tmp_path / "xdg" / "mnist-bench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert storage.cache_dir() == tmp_path / "home" / ".cache" / "mnist-bench"


def test_the_machine_peak_is_cached_in_the_same_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path))
    assert peak.cache_path().parent == tmp_path
    measured = peak.peak_gflops()  # the real matmul, about 2 s
    assert measured > 0 and json.loads(peak.cache_path().read_text())["gflops"] == measured
    assert peak.peak_gflops() == measured  # read back, not measured again (that would differ)


def test_unusable_cache_files_are_passed_over(monkeypatch, tmp_path):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path))
    key = inventory.cache_key("jax")
    info = {"backend": "jax", "devices": ["cpu"], "variants": []}
    path = tmp_path / "describe-jax.json"
    assert inventory.read_cached("jax", key) is None  # absent
    assert inventory.write_cached("jax", key, info)
    assert inventory.read_cached("jax", key) == info
    assert inventory.read_cached("jax", {**key, "python": "other"}) is None  # stale
    for junk in (b"", b"\xff\xfe", b"[1, 2]", b'{"key": 1}', b"[" * 100_000, b"nul\0l"):
        path.write_bytes(junk)
        assert inventory.read_cached("jax", key) is None
    path.unlink()
    path.mkdir()  # a folder where the file goes is not ours to replace
    assert inventory.read_cached("jax", key) is None
    assert inventory.write_cached("jax", key, info) is False and path.is_dir()
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "file" / "sub"))
    (tmp_path / "file").write_text("not a folder")
    assert inventory.write_cached("jax", key, info) is False  # unwritable: no error


def test_cache_key_imports_no_framework():
    code = (
        "import sys\n"
        "from mnist_bench.execute import inventory\n"
        "keys = [inventory.cache_key(b) for b in ('tensorflow', 'jax', 'torch')]\n"
        f"loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert all(k['packages'].get('numpy') for k in keys)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
