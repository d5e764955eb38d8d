"""Datasets: the bundled MNIST (pinned by digest), other Keras-layout .npz files, IDX folders.

Arrays stay uint8 here; `preprocess` turns them into float32 in [0, 1] in the worker. Every
problem with a file is a `UserError` naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mnist_bench.core.errors import UserError
from mnist_bench.runfile import files

BUNDLED_MNIST = Path(__file__).parent / "data" / "mnist.npz"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
KEYS = ("x_train", "y_train", "x_test", "y_test")

# SHA-256 of each array's raw bytes (C order), from shared/data/SHA256SUMS: the identity of the
# benchmark data. Re-compressing the file changes the file digest but not these.
MNIST_DIGESTS = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_IDX_UBYTE = 0x08
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Dataset:
    """Four uint8 arrays plus what identifies them."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def digests(self) -> dict[str, str]:
        return {key: array_digest(getattr(self, key)) for key in KEYS}

    def limit(self, train: int | None, test: int | None) -> Dataset:
        """The first `train` training and `test` test samples (None keeps all)."""
        return Dataset(
            self.name,
            self.source,
            self.x_train[:train],
            self.y_train[:train],
            self.x_test[:test],
            self.y_test[:test],
            self.class_names,
        )


def array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def load(spec: str | Path | None = None) -> Dataset:
    """Load a dataset by name (`mnist`, `fashion-mnist`) or path (.npz file or IDX folder).

    Raises:
        UserError: the file is missing, unreadable, or not 28x28 uint8 images with labels 0..9.
    """
    spec = "mnist" if spec is None else str(spec)
    if spec == "mnist":
        dataset = _load_npz(BUNDLED_MNIST, "mnist")
        _verify_pinned(dataset, MNIST_DIGESTS, BUNDLED_MNIST)
        return dataset
    if spec == "fashion-mnist":
        if not FASHION_DIR.is_dir():
            raise UserError(
                f"{FASHION_DIR}: Fashion-MNIST is not installed "
                "(apt-get install dataset-fashion-mnist), or pass --data FOLDER"
            )
        return _load_idx_dir(FASHION_DIR, "fashion-mnist", FASHION_CLASSES)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(
            f"{path}: no such file or folder (--data takes mnist, fashion-mnist, "
            "a Keras-layout .npz file, or a folder of IDX .gz files)"
        )
    if path.is_dir():
        classes = FASHION_CLASSES if "fashion" in path.name.lower() else DIGIT_CLASSES
        return _load_idx_dir(path, path.name, classes)
    return _load_npz(path, path.stem)


def _verify_pinned(dataset: Dataset, pinned: dict[str, str], path: Path) -> None:
    for key, digest in dataset.digests.items():
        if digest != pinned[key]:
            raise UserError(
                f"{path}: {key} does not match its pinned SHA-256 "
                f"(got {digest[:12]}..., expected {pinned[key][:12]}...): the file is corrupt"
            )


def _load_npz(path: Path, name: str) -> Dataset:
    try:
        with (
            files.open_regular(path, limit=files.DATASET_FILE_LIMIT, what="dataset file") as raw,
            zipfile.ZipFile(raw) as npz,
        ):
            members = {m[: -len(".npy")]: m for m in npz.namelist() if m.endswith(".npy")}
            missing = [key for key in KEYS if key not in members]
            if missing:
                found = ", ".join(members) or "none"
                raise UserError(
                    f"{path}: missing key(s) {', '.join(missing)} "
                    f"(found {found}; expected {', '.join(KEYS)})"
                )
            arrays = {key: _read_npy(npz, members[key], path) for key in KEYS}
    except UserError:
        raise
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as exc:  # RuntimeError: an encrypted member
        raise UserError(f"{path}: not a readable .npz file ({_short(exc)})") from None
    return _validated(path, name, arrays, DIGIT_CLASSES)


def _read_npy(npz: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    """One array of an .npz, as `np.load(allow_pickle=False)` would read it, except that the
    header's shape is checked against the data actually present (read in bounded chunks), so a
    header that claims terabytes allocates nothing of the sort."""
    fmt = np.lib.format
    with npz.open(member) as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise UserError(
                f"{path}: {member} has .npy format version {version}, expected 1.0 or 2.0"
            )
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        try:  # numpy parses the header as a Python literal: garbage raises parser errors
            shape, fortran, dtype = read_header(f)
        except (SyntaxError, tokenize.TokenError, TypeError) as exc:
            raise UserError(
                f"{path}: {member} has an unreadable .npy header ({_short(exc)})"
            ) from None
        if dtype.hasobject:
            raise UserError(f"{path}: {member} holds Python objects (pickled data is refused)")
        expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
        data = _read_exactly(f, expected, f"{path}: {member}")
    if len(data) < expected:
        raise UserError(
            f"{path}: {member} is truncated: its header claims {expected} bytes "
            f"of data, it holds {len(data)}"
        )
    array = np.frombuffer(memoryview(data)[:expected], dtype=dtype)  # np.load ignores a tail
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_exactly(f, expected: int, name: str) -> bytearray:
    """Up to `expected` bytes of `f` (one more if present), never asking for more at a time
    than a chunk: memory grows with the data there, not with what a header claims, and stops
    at `files.DATASET_ARRAY_LIMIT` (a small compressed file can expand to terabytes).

    Raises:
        UserError: the header claims more than the limit, and that much data is there.
    """
    limit = files.DATASET_ARRAY_LIMIT
    bound = min(expected, limit) + 1
    data = bytearray()
    while len(data) < bound:
        chunk = f.read(min(_READ_CHUNK, bound - len(data)))
        if not chunk:
            break
        data += chunk
    if expected > limit and len(data) > limit:
        raise UserError(
            f"{name} holds more than {files.size_text(limit)} of data (the limit for one array)"
        )
    return data


def _load_idx_dir(folder: Path, name: str, classes: tuple[str, ...]) -> Dataset:
    arrays = {}
    for key, filename in IDX_FILES.items():
        path = folder / filename
        if not path.exists():
            raise UserError(
                f"{path}: missing (an IDX folder holds {', '.join(IDX_FILES.values())})"
            )
        arrays[key] = read_idx(path)
    return _validated(folder, name, arrays, classes)


def read_idx(path: Path) -> np.ndarray:
    """Read one gzip-compressed IDX file (LeCun's format) holding unsigned bytes.

    The header's dimensions are checked against the data actually present, read in bounded
    chunks, so a header that claims terabytes allocates nothing of the sort.
    """
    try:
        with (
            files.open_regular(path, limit=files.DATASET_FILE_LIMIT, what="dataset file") as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as f,
        ):
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0:
                raise UserError(
                    f"{path}: not an IDX file (bad magic number {header.hex() or 'none'})"
                )
            if header[2] != _IDX_UBYTE:
                raise UserError(
                    f"{path}: IDX data type 0x{header[2]:02x} is not unsigned byte (0x08)"
                )
            ndim = header[3]
            if not 1 <= ndim <= 4:
                raise UserError(f"{path}: IDX header claims {ndim} dimensions (expected 1 to 4)")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise UserError(f"{path}: truncated IDX header")
            dims = tuple(int.from_bytes(dims_raw[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
            expected = int(np.prod(dims, dtype=object))
            data = _read_exactly(f, expected, str(path))
    except UserError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{path}: not a readable gzip IDX file ({_short(exc)})") from None
    if len(data) != expected:
        if len(data) < expected:
            what = f"truncated: header claims {expected} bytes of data, file holds {len(data)}"
        else:
            what = f"holds more data than its header claims ({expected} bytes)"
        raise UserError(f"{path}: {what}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _validated(path: Path, name: str, arrays: dict[str, np.ndarray], classes) -> Dataset:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise UserError(f"{path}: x_{split}/y_{split} must be uint8 (got {x.dtype}/{y.dtype})")
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise UserError(f"{path}: x_{split} has shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise UserError(f"{path}: y_{split} has shape {y.shape}, expected ({x.shape[0]},)")
        if x.shape[0] == 0:
            raise UserError(f"{path}: x_{split} is empty")
        if int(y.max()) > 9:
            raise UserError(f"{path}: y_{split} holds label {int(y.max())}, expected 0..9")
    return Dataset(name, str(path), class_names=tuple(classes), **arrays)


def preprocess(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], reshaped to the variant's input shape."""
    return (x.astype(np.float32) / 255.0).reshape((x.shape[0], *input_shape))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
