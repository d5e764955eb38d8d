"""The loader: pinned digests, shapes, IDX round trip, and every kind of bad file."""

from __future__ import annotations

import gzip
import zipfile

import numpy as np
import pytest
from conftest import write_idx
from mnist_bench import data
from mnist_bench.core.errors import UserError


def test_bundled_mnist_matches_readme_facts(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8
    assert np.bincount(mnist.y_train).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.digests == data.MNIST_DIGESTS


def test_limit_and_preprocess(mnist):
    small = mnist.limit(100, 50)
    assert len(small.x_train) == 100 and len(small.y_test) == 50
    x = data.preprocess(small.x_train, (784,))
    assert x.shape == (100, 784) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() == 1.0


def test_idx_round_trip(idx_folder, mnist):
    loaded = data.load(idx_folder)
    np.testing.assert_array_equal(loaded.x_train, mnist.x_train[:300])
    np.testing.assert_array_equal(loaded.y_test, mnist.y_test[:100])


def test_npz_other_file(tmp_path, mnist):
    path = tmp_path / "small.npz"
    small = mnist.limit(200, 50)
    np.savez(path, **{k: getattr(small, k) for k in data.KEYS})
    assert data.load(path).x_train.shape == (200, 28, 28)


def test_fashion_mnist_has_class_names():
    if not data.FASHION_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    fashion = data.load("fashion-mnist")
    assert fashion.x_train.shape == (60000, 28, 28) and fashion.class_names[0] == "T-shirt/top"


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def good_arrays(n=20):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n, dtype=np.uint8),
        "x_test": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n, dtype=np.uint8),
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "missing key"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "must be uint8"),
        (lambda a: a.update(x_test=a["x_test"].reshape(20, 784)), "expected (N, 28, 28)"),
        (lambda a: a.update(y_train=a["y_train"][:5]), "y_train has shape"),
        (lambda a: a.update(y_test=a["y_test"] + 10), "label"),
    ],
)
def test_bad_npz_contents(tmp_path, change, message):
    arrays = good_arrays()
    change(arrays)
    with pytest.raises(UserError, match="bad.npz") as err:
        data.load(_npz(tmp_path, **arrays))
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        data.load(tmp_path / "nope.npz")


def test_corrupt_and_truncated_npz(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    with pytest.raises(UserError, match="not a readable .npz"):
        data.load(garbage)
    whole = _npz(tmp_path, **good_arrays(200)).read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="truncated.npz"):
        data.load(truncated)


def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    arrays = good_arrays()
    arrays["x_train"] = np.array([{"evil": 1}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(UserError, match="pickled.npz"):
        data.load(path)


def test_corrupt_bundled_file_is_refused(monkeypatch, tmp_path, mnist):
    arrays = {k: getattr(mnist, k).copy() for k in data.KEYS}
    arrays["x_test"][0, 0, 0] ^= 1
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, **arrays)
    monkeypatch.setattr(data, "BUNDLED_MNIST", path)
    with pytest.raises(UserError, match="x_test does not match its pinned SHA-256"):
        data.load("mnist")


def test_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.zeros((10, 28, 28), np.uint8), dims=(20, 28, 28))
    with pytest.raises(UserError, match="truncated"):
        data.read_idx(path)


def test_idx_lying_header_allocates_nothing_big(tmp_path):
    # Claims 2^32-1 images of 2^32-1 x 2^32-1 bytes: must fail fast, not allocate.
    path = write_idx(tmp_path / "lie.gz", np.zeros(10, np.uint8), dims=(2**32 - 1,) * 3)
    with pytest.raises(UserError, match="truncated"):
        data.read_idx(path)


@pytest.mark.parametrize(
    "magic, message",
    [
        (bytes([1, 2, 8, 3]), "bad magic"),
        (bytes([0, 0, 0x0D, 3]), "not unsigned byte"),
        (bytes([0, 0, 8, 0]), "dimensions"),
    ],
)
def test_idx_bad_header(tmp_path, magic, message):
    path = write_idx(tmp_path / "m.gz", np.zeros((2, 28, 28), np.uint8), magic=magic)
    with pytest.raises(UserError, match=message):
        data.read_idx(path)


def test_idx_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(UserError, match="not a readable gzip"):
        data.read_idx(path)


def test_idx_folder_missing_file(idx_folder):
    (idx_folder / data.IDX_FILES["y_test"]).unlink()
    with pytest.raises(UserError, match="missing"):
        data.load(idx_folder)


def test_idx_extra_data(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + b"abc")
    with pytest.raises(UserError, match="more data"):
        data.read_idx(path)


def test_zipfile_errors_are_user_errors(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(UserError, match="missing key"):
        data.load(path)
