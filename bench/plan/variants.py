"""Variants from anywhere: what a variant's name means, and where its function is loaded from.

A variant is named by
- a built-in's name (`two-dense`: `mnist_bench.models`);
- an installed plugin's name: an entry point of the group `mnist_bench.variants`
  (`acme-wide = "acme_variants:wide"` in the plugin's pyproject.toml);
- `MODULE:FUNCTION`, imported from the user's import path (`acme.nets:tiny_cnn`);
- `path/to/file.py:FUNCTION`, loaded from that file (its folder is not put on `sys.path`);
- from Python, a module-level function, turned into `MODULE:FUNCTION` by `spec_of`.

The function returns an uncompiled `keras.Model`; the data is reshaped to its input shape.
`variant(...)` attaches optional metadata: a description, default settings, the backends it
supports. The parent process never imports a user's code: `resolve` runs
`python -m mnist_bench.plan.variants` to load each function and read its metadata, so a missing
file, module or function is one line before anything trains; the worker loads it again
(`load`) to build the model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_bench.core.config import BACKENDS, ConfigError, TrainSettings
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import VariantSource

GROUP = "mnist_bench.variants"  # the entry-point group of plugins
META = "__mnist_bench_variant__"  # the attribute `variant` sets on a function
RESOLVE_TIMEOUT = 300.0  # importing a user's module may import a framework on a busy machine
BUILT_IN = "built-in"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
FORMS = "a variant's name (mnist-bench list), MODULE:FUNCTION or path/to/file.py:FUNCTION"


def variant(
    *, description: str = "", backends: Iterable[str] | None = None, **defaults: Any
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Metadata for a variant function: what `list` shows and what a run starts from.

    Args:
        description: one line for `mnist-bench list` (default: the docstring's first line).
        backends: the backends it supports (default: all); on another, its records are
            `skipped`.
        **defaults: training settings (`epochs=3, batch_size=128, learning_rate=1e-3`).

    Raises:
        ValueError: an unknown backend or setting, or a setting out of range.
    """
    names = tuple(backends) if backends is not None else BACKENDS
    for name in names:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    try:
        TrainSettings(**defaults)
    except (TypeError, ConfigError) as exc:
        raise ValueError(f"bad default settings: {exc}") from None

    def attach(build: Callable[[], Any]) -> Callable[[], Any]:
        setattr(build, META, {"description": description, "backends": names, **defaults})
        return build

    return attach


@dataclass(frozen=True)
class Resolved:
    """A variant ready to plan: its stable name, where it comes from, and its metadata.

    Attributes:
        name: the name records and tables carry, the same on every machine: a built-in's or a
            plugin's name, `MODULE:FUNCTION`, or `FILE.py:FUNCTION` (the file's name only).
        kind: built-in, plugin, module or file.
        source: the spec as named, what is loaded, its file and the file's SHA-256.
        description, defaults, backends: the function's metadata.
    """

    name: str
    kind: str
    source: VariantSource
    description: str = ""
    defaults: TrainSettings = TrainSettings()
    backends: tuple[str, ...] = BACKENDS


# ------------------------------------------------------------------------- parent: no import
def plugins() -> dict[str, tuple[str, str]]:
    """Installed plugins from their metadata alone (nothing imported): name -> (target,
    distribution)."""
    import importlib.metadata

    found: dict[str, tuple[str, str]] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        label = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"
        found.setdefault(ep.name, (ep.value, label))
    return found


def _is_file(left: str) -> bool:
    return left.endswith(".py") or "/" in left or os.sep in left


def parse(spec: str) -> tuple[str, str, str]:
    """`spec` as (kind, target, name) without importing anything.

    Raises:
        UserError: an unknown name, a malformed spec, or a file that does not exist.
    """
    from mnist_bench import models

    spec = spec.strip()
    if spec in models.names():
        return "built-in", BUILT_IN, spec
    if ":" in spec:
        left, _, function = spec.rpartition(":")
        if not _DOTTED.fullmatch(function):
            raise UserError(f"variant {spec!r}: {function!r} is not a function name")
        if _is_file(left):
            path = Path(left).expanduser()
            if not path.is_file():
                raise UserError(f"variant {spec!r}: no such file {left}")
            return "file", f"{path.resolve()}:{function}", f"{path.name}:{function}"
        if not _DOTTED.fullmatch(left):
            raise UserError(f"variant {spec!r}: {left!r} is not a module name")
        return "module", spec, spec
    found = plugins()
    if spec in found:
        return "plugin", found[spec][0], spec
    valid = [*models.names(), *found]
    raise UserError(f"unknown variant {spec!r}; valid: {', '.join(valid)}; or {FORMS}")


def spec_of(function: Any) -> str:
    """A function object as the `MODULE:FUNCTION` the worker (another process) imports.

    Raises:
        UserError: not a module-level function: a lambda, a closure, a partial, or a function
            defined in `__main__` (a script or a notebook).
    """
    if isinstance(function, str):
        return function
    what = getattr(function, "__qualname__", None) or type(function).__name__
    fix = (
        "the worker is another process and imports it by name; define it with `def` at the "
        "top of a module file and pass that, or name it as 'path/to/file.py:FUNCTION'"
    )
    if isinstance(function, functools.partial) or not callable(function):
        raise UserError(f"variant {what!r} is not a module-level function: {fix}")
    module = getattr(function, "__module__", None)
    if getattr(function, "__name__", "") == "<lambda>":
        raise UserError(f"variant <lambda>: a lambda cannot be loaded: {fix}")
    if "<locals>" in what:
        raise UserError(f"variant {what!r} is defined inside a function: {fix}")
    if not module or module in ("__main__", "__mp_main__", "builtins"):
        raise UserError(f"variant {what!r} is defined in {module or 'no module'}: {fix}")
    return f"{module}:{what}"


_cache: dict[tuple, Resolved] = {}


def _cache_key(kind: str, target: str) -> tuple:
    if kind == "file":
        stat = Path(target.rpartition(":")[0]).stat()
        return (kind, target, stat.st_mtime_ns, stat.st_size)
    return (kind, target, os.getcwd(), os.environ.get("PYTHONPATH", ""))


def resolve(specs: Iterable[Any], backend: str | None = None) -> list[Resolved]:
    """Each spec (or function object) as a `Resolved` variant, checked by loading it in a
    child process (`backend`, if given, is the Keras backend it imports with).

    Raises:
        UserError: an unknown name, a missing file, module or function, a module that fails
            to import, bad metadata, or two specs that give one name.
    """
    items = []
    for given in specs:
        spec = spec_of(given)
        items.append((spec, *parse(spec)))
    todo: dict[tuple, tuple[str, str, str, str]] = {}
    for spec, kind, target, name in items:
        if kind != "built-in" and (key := _cache_key(kind, target)) not in _cache:
            todo.setdefault(key, (spec, kind, target, name))
    if todo:
        answers = _ask_child([target for _, _, target, _ in todo.values()], backend)
        for (key, (spec, kind, target, name)), answer in zip(todo.items(), answers, strict=True):
            if "error" in answer:
                raise UserError(f"variant {spec!r}: {answer['error']}")
            _cache[key] = _from_answer(name, kind, spec, target, answer)
    out: list[Resolved] = []
    named: dict[str, str] = {}
    for spec, kind, target, name in items:
        if kind == "built-in":
            found = built_in(name)
        else:
            found = _cache[_cache_key(kind, target)]
            found = dataclasses.replace(
                found, name=name, source=dataclasses.replace(found.source, spec=spec)
            )
        if named.setdefault(name, target) != target:
            raise UserError(f"two variants named {name!r}: {named[name]} and {target}")
        out.append(found)
    return out


def _from_answer(name: str, kind: str, spec: str, target: str, answer: dict) -> Resolved:
    source = VariantSource(spec, target, answer.get("file", ""), answer.get("sha256", ""))
    try:
        defaults = TrainSettings(**answer.get("defaults", {}))
    except (TypeError, ConfigError) as exc:
        raise UserError(f"variant {spec!r}: bad default settings: {exc}") from None
    backends = tuple(answer.get("backends") or BACKENDS)
    return Resolved(name, kind, source, answer.get("description", ""), defaults, backends)


def built_in(name: str) -> Resolved:
    """A registered variant, with the file it is defined in."""
    from mnist_bench import models

    v = models.get(name)
    file = inspect.getsourcefile(getattr(v.build, "func", v.build)) or ""
    source = VariantSource(name, BUILT_IN, file, file_sha256(file) if file else "")
    return Resolved(name, "built-in", source, v.description, v.defaults, v.backends)


def unsupported(name: str, backends: Iterable[str]) -> str:
    """Why a variant's record on another backend is skipped."""
    return f"variant {name} supports {', '.join(backends)} only (its declared backends)"


def sources(resolved: Iterable[Resolved]) -> dict[str, VariantSource]:
    """What a worker needs to load the variants that are not built in, by name."""
    return {r.name: r.source for r in resolved if r.kind != "built-in"}


def _ask_child(targets: list[str], backend: str | None) -> list[dict[str, Any]]:
    env = dict(os.environ)
    if backend and "KERAS_BACKEND" not in env:
        env["KERAS_BACKEND"] = backend  # a module that imports keras at its top gets this one
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mnist_bench.plan.variants"],
            input=json.dumps(targets).encode(),
            capture_output=True,
            env=env,
            timeout=RESOLVE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"loading variant(s) {', '.join(targets)} took over {RESOLVE_TIMEOUT:.0f} s"
        ) from None
    try:
        answers = json.loads(done.stdout)
        if not isinstance(answers, list) or len(answers) != len(targets):
            raise ValueError
    except ValueError:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"loading variant(s) {', '.join(targets)} failed: {tail[0]}") from None
    return answers


def describe_plugins(backend: str | None = None) -> list[dict[str, Any]]:
    """Every installed plugin for `list`: name, target, distribution and either its
    description or the error that breaks it (one child process; nothing imported here)."""
    from mnist_bench import models

    found = plugins()
    if not found:
        return []
    answers = _ask_child([target for target, _ in found.values()], backend)
    out = []
    for (name, (target, dist)), answer in zip(found.items(), answers, strict=True):
        entry = {"name": name, "target": target, "distribution": dist, **answer}
        if name in models.names():
            entry["error"] = "its name is a built-in variant's"
        out.append(entry)
    return out


# ------------------------------------------------------------------- child and worker: import
class LoadError(Exception):
    """A variant's function could not be loaded: one line, the cause."""


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(target: str) -> Callable[[], Any]:
    """The function `target` (`MODULE:FUNCTION` or `/absolute/file.py:FUNCTION`) names.

    Raises:
        LoadError: no such file, module or function, a module that raised on import, or an
            object that is not callable.
    """
    left, _, function = target.rpartition(":")
    if _is_file(left):
        path = Path(left)
        if not path.is_file():
            raise LoadError(f"no such file {left}")
        name = f"_mnist_bench_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:  # not a file Python can load as a module
                raise LoadError(f"cannot load {left} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # what the file defines can refer to its module
            try:
                spec.loader.exec_module(module)
            except BaseException as exc:  # noqa: BLE001 - the user's code: SystemExit too
                del sys.modules[name]
                raise LoadError(f"loading {left} raised {_one_line(exc)}") from None
    else:
        try:
            module = importlib.import_module(left)
        except ModuleNotFoundError as exc:
            if exc.name and left.startswith(exc.name):
                raise LoadError(f"no module named {exc.name!r}") from None
            raise LoadError(f"importing {left} raised {_one_line(exc)}") from None
        except BaseException as exc:  # noqa: BLE001
            raise LoadError(f"importing {left} raised {_one_line(exc)}") from None
    found: Any = module
    for part in function.split("."):
        if not hasattr(found, part):
            raise LoadError(f"{left} has no function {function!r}")
        found = getattr(found, part)
    if not callable(found):
        raise LoadError(f"{left}:{function} is a {type(found).__name__}, not a function")
    return found


def metadata(build: Callable[[], Any]) -> dict[str, Any]:
    """The function's metadata (`variant`): description, backends, default settings."""
    meta = dict(getattr(build, META, None) or {})
    doc = (inspect.getdoc(build) or "").strip().splitlines()
    description = meta.pop("description", "") or (doc[0] if doc else "")
    backends = list(meta.pop("backends", BACKENDS))
    return {"description": description, "backends": backends, "defaults": meta}


def source_file(build: Callable[[], Any]) -> str:
    try:
        return inspect.getsourcefile(build) or ""
    except TypeError:  # a built-in or C function
        return ""


def describe(target: str) -> dict[str, Any]:
    """What the parent needs of one target: its metadata, file and the file's SHA-256, or
    the error that keeps it from loading."""
    try:
        build = load(target)
    except LoadError as exc:
        return {"error": str(exc)}
    file = source_file(build)
    return {**metadata(build), "file": file, "sha256": file_sha256(file) if file else ""}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def main() -> None:
    """`python -m mnist_bench.plan.variants`: targets (JSON list) on stdin, one answer each on
    stdout; what the user's code prints goes to stderr."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    targets = json.loads(sys.stdin.read())
    out.write(json.dumps([describe(t) for t in targets], default=str))
    out.flush()


if __name__ == "__main__":
    main()
