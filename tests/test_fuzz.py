"""Fuzzing the readers of untrusted files: run files, IDX files, .npz files.

Whatever the bytes, a reader returns a well-formed value or raises `UserError`: never another
exception (KeyError, struct.error, zlib.error, MemoryError, RecursionError...), never a huge
allocation because a header said so.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import io
import json
import os
import types
import typing
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from mnist_bench import data
from mnist_bench.core.errors import UserError
from mnist_bench.runfile.records import Record, RunFile, load_run

# Derandomized, so CI is repeatable; MNIST_BENCH_FUZZ_RANDOM=1 explores fresh cases (and
# --hypothesis-seed replays one).
FUZZ = settings(
    derandomize=os.environ.get("MNIST_BENCH_FUZZ_RANDOM") != "1",
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def valid_run() -> dict:
    """A real run file, records and all (one of the stored report fixtures)."""
    path = Path(__file__).parent / "fixtures" / "report" / "intel-jax.json"
    return json.loads(path.read_text())


def conforms(value: Any, hint: Any) -> bool:
    """The test's own oracle, independent of the decoder: does `value` fit the annotation?"""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (types.UnionType, typing.Union):
        return any(conforms(value, arg) for arg in args)
    if origin is list:
        return type(value) is list and all(conforms(item, args[0]) for item in value)
    if origin is dict:
        return type(value) is dict and all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()
        )
    return type(value) is hint or (hint is float and type(value) is int)


def assert_well_formed(run: RunFile) -> None:
    """What every reader of a loaded run may rely on: fields of their declared types."""
    for obj in (run, *run.records):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            if f.name != "records":
                assert conforms(getattr(obj, f.name), hints[f.name]), f.name
    text = json.dumps(run.to_dict(), allow_nan=False)  # what a resumed run writes back
    assert json.dumps(RunFile.from_dict(json.loads(text)).to_dict(), allow_nan=False) == text


def load(scratch: Path, content: bytes) -> RunFile | None:
    path = scratch / "run.json"
    path.write_bytes(content)
    try:
        run = load_run(path)
    except UserError as exc:
        assert str(exc).startswith(str(path))
        event("refused")
        return None
    assert_well_formed(run)
    event("loaded")
    return run


# ------------------------------------------------------------------------------------ run files
@FUZZ
@given(value=json_values)
def test_any_json_value_loads_or_is_a_user_error(scratch, value):
    load(scratch, json.dumps(value).encode())


KEYS = st.sampled_from([f.name for f in dataclasses.fields(RunFile)] + ["extra"])
RECORD_KEYS = st.sampled_from([f.name for f in dataclasses.fields(Record)] + ["extra"])


@FUZZ
@given(
    changes=st.lists(
        st.tuples(st.booleans(), KEYS, RECORD_KEYS, st.one_of(st.just("<delete>"), json_values)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_run_file_loads_or_is_a_user_error(scratch, valid_run, changes):
    run = copy.deepcopy(valid_run)
    for in_record, key, record_key, value in changes:
        records = run.get("records")
        if in_record and not (
            isinstance(records, list) and records and isinstance(records[0], dict)
        ):
            continue
        target, name = (records[0], record_key) if in_record else (run, key)
        if value == "<delete>":
            target.pop(name, None)
        else:
            target[name] = value
    load(scratch, json.dumps(run).encode())


@FUZZ
@given(
    cut=st.integers(min_value=0),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6),
)
def test_truncated_or_corrupted_run_file_bytes(scratch, valid_run, cut, flips):
    content = bytearray(json.dumps(valid_run, indent=1).encode())
    for at, byte in flips:
        content[at % len(content)] = byte
    load(scratch, bytes(content[: cut % (len(content) + 1)]))


# ------------------------------------------------------------------------------------------ IDX
def read_idx_bytes(scratch: Path, content: bytes) -> np.ndarray | None:
    path = scratch / "fuzz-idx.gz"
    path.write_bytes(content)
    try:
        array = data.read_idx(path)
    except UserError as exc:
        assert str(exc).startswith(str(path))
        return None
    assert array.dtype == np.uint8
    return array


@FUZZ
@given(content=st.binary(max_size=300), compress=st.booleans())
def test_idx_arbitrary_bytes(scratch, content, compress):
    read_idx_bytes(scratch, gzip.compress(content) if compress else content)


@FUZZ
@given(
    magic=st.tuples(
        st.sampled_from([0, 0, 0, 1, 255]),
        st.sampled_from([0, 0, 0, 3]),
        st.sampled_from([0x08, 0x08, 0x09, 0x0D, 0]),
        st.integers(0, 6),
    ),
    dims=st.lists(st.one_of(st.integers(0, 30), st.integers(0, 2**32 - 1)), max_size=6),
    payload=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=3),
)
def test_idx_mutated_headers_and_streams(scratch, magic, dims, payload, flips):
    header = bytes(magic) + b"".join(d.to_bytes(4, "big") for d in dims)
    stream = bytearray(gzip.compress(header + bytes(payload)))
    for at, byte in flips:  # damage the compressed stream itself (zlib errors, bad CRCs)
        stream[at % len(stream)] = byte
    array = read_idx_bytes(scratch, bytes(stream))
    if array is not None and not flips:
        assert magic[:3] == (0, 0, 0x08) and array.shape == tuple(dims[: magic[3]])
        assert array.size == payload


# ------------------------------------------------------------------------------------------ npz
def small_npz(compression: int) -> bytes:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 6, dtype=np.uint8),
        "x_test": rng.integers(0, 255, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array)
            z.writestr(f"{key}.npy", member.getvalue())
    return buf.getvalue()


NPZ = {c: small_npz(c) for c in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)}


@FUZZ
@given(
    compression=st.sampled_from(sorted(NPZ)),
    cut=st.integers(min_value=0),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6
    ),
)
# Found by this fuzzer: a flipped header byte made numpy's header parser raise TokenError.
@example(compression=zipfile.ZIP_DEFLATED, cut=0, flips=[(149, 1)])
def test_npz_corrupted_bytes(scratch, compression, cut, flips):
    content = bytearray(NPZ[compression])
    for at, byte in flips:
        content[at % len(content)] = byte
    path = scratch / "fuzz.npz"
    path.write_bytes(bytes(content[: len(content) - cut % 64]))
    try:
        dataset = data.load(path)
    except UserError as exc:
        assert str(exc).startswith(str(path))
        return
    assert dataset.x_train.shape[1:] == (28, 28) and dataset.x_train.dtype == np.uint8


def npy_bytes(descr: str, fortran: bool, shape: tuple[int, ...], payload: int) -> bytes:
    """A version 1.0 .npy member whose header says whatever it is told to."""
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return (
        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(payload)
    )


@FUZZ
@given(
    descr=st.sampled_from(["|u1", "<u1", ">u2", "<f4", "|O", "|V0", "<i8", "|S3", "bogus"]),
    fortran=st.booleans(),
    shape=st.lists(st.one_of(st.integers(0, 40), st.integers(0, 2**40)), max_size=4),
    payload=st.integers(0, 6000),
)
def test_npz_lying_npy_headers(scratch, descr, fortran, shape, payload):
    path = scratch / "lying.npz"
    path.write_bytes(NPZ[zipfile.ZIP_STORED])
    with zipfile.ZipFile(path, "a") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the last x_train.npy is the one read
        z.writestr("x_train.npy", npy_bytes(descr, fortran, tuple(shape), payload))
    try:
        dataset = data.load(path)
    except UserError as exc:
        assert str(exc).startswith(str(path))
        return
    assert dataset.x_train.shape == (shape[0], 28, 28) and payload >= shape[0] * 784
