"""What `list` and `env` show: variants, backends, devices, and the provenance block.

Describing a backend (its version, devices, and each variant's parameters and FLOPs) means
starting a worker that imports its framework: seconds each. The description is cached per
backend in the user's cache folder (`cache_dir`), keyed on what it depends on: the installed
versions of the backend's packages, Keras and NumPy (read with `importlib.metadata`, no
framework imported), the Python, the source of the variants and of the worker, the GPUs and
the variables that hide devices. A cache file that is unreadable or from another key is
ignored and rewritten.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mnist_bench import models
from mnist_bench.core import environment, escape
from mnist_bench.core.config import BACKENDS, TrainSettings
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import WorkerRequest
from mnist_bench.execute import launcher
from mnist_bench.runfile import files, storage
from mnist_bench.runfile.storage import cache_dir
from rich import box
from rich.console import Console
from rich.table import Table

PROBE_TIMEOUT = 120.0
CACHE_FORMAT = 1
# Distributions whose version changes what a backend's worker reports, by name prefix.
KEY_PACKAGES = ("keras", "numpy", "ml-dtypes", "nvidia-")
BACKEND_PREFIXES = {"tensorflow": ("tensorflow", "tf-"), "jax": ("jax",), "torch": ("torch",)}
DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
               "JAX_PLATFORMS", "JAX_PLATFORM_NAME")  # fmt: skip
SOURCE = Path(__file__).resolve().parent  # bench/, installed as mnist_bench


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed_versions(prefixes: Iterable[str]) -> dict[str, str]:
    prefixes = tuple(prefixes)
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        # the metadata is an email Message, whose get() the PackageMetadata protocol leaves out
        name = _normalize(dist.metadata.get("Name") or "")  # type: ignore[attr-defined]
        if name and name.startswith(prefixes):
            found.setdefault(name, dist.version)  # the first on sys.path is the one imported
    return dict(sorted(found.items()))


def _source_digest() -> str:
    """The variants, the worker and the backends' modules: what the description comes from."""
    from mnist_bench.models import registry

    paths = sorted(Path(registry.__file__).parent.glob("*.py"))
    paths += [SOURCE / "worker.py", SOURCE / "training.py", *sorted(SOURCE.glob("backends/*.py"))]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def _gpu_names() -> list[str]:
    return [g["name"] for g in environment.nvidia_gpus()]  # nvidia-smi once, not per backend


def cache_key(backend: str) -> dict[str, Any]:
    """What a backend's description depends on, computed without importing a framework."""
    from mnist_bench import __version__

    return {
        "format": CACHE_FORMAT,
        "backend": backend,
        "packages": _installed_versions((*KEY_PACKAGES, *BACKEND_PREFIXES[backend])),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "mnist_bench": __version__,
        "source": _source_digest(),
        "gpus": _gpu_names(),
        "device_env": {k: os.environ[k] for k in DEVICE_VARS if k in os.environ},
    }


def _cache_path(backend: str) -> Path:
    return cache_dir() / f"describe-{backend}.json"


def read_cached(
    backend: str, key: dict[str, Any], warn: Callable[[str], None] | None = None
) -> dict[str, Any] | None:
    """The cached description of `backend` if its key is `key`; None if absent, stale (another
    key) or corrupt. A corrupt one (unreadable, not JSON, another shape, a count that is no
    count) is passed to `warn` first, in one line."""
    path = _cache_path(backend)
    try:
        raw = files.read_bytes(path, limit=files.CACHE_LIMIT, what="cache file")
        data = json.loads(raw)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _corrupt(warn, f"{path}: unreadable ({exc.strerror or exc})")
        return None
    except UserError as exc:
        _corrupt(warn, str(exc))
        return None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deeply
        _corrupt(warn, f"{path}: not a JSON cache")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("key"), dict):
        _corrupt(warn, f"{path}: not a description cache")
        return None
    if data["key"] != key:
        return None
    info = data.get("info")
    problem = _info_problem(info)
    if problem:
        _corrupt(warn, f"{path}: {problem}")
        return None
    return info


def _corrupt(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        warn(message)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _info_problem(info: Any) -> str | None:
    """What is wrong with a cached description, in a few words; None if nothing is."""
    if not isinstance(info, dict):
        return "info is not an object"
    devices = info.get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        return "devices is not a list of names"
    variants = info.get("variants")
    if not isinstance(variants, list):
        return "variants is not a list"
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict) or not isinstance(variant.get("name"), str):
            return f"variants[{i}] has no name"
        for field in ("params", "flops_per_train_sample", "flops_per_infer_sample"):
            if not _is_count(variant.get(field)):
                return f"variants[{i}].{field} is not a count"
    return None


def write_cached(backend: str, key: dict[str, Any], info: dict[str, Any]) -> bool:
    """Save a description atomically; False (and nothing else) where the cache is unwritable."""
    path = _cache_path(backend)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not path.is_file():  # a folder or a FIFO is not ours to replace
            return False
        payload = json.dumps({"key": key, "info": info}, indent=1, allow_nan=False)
        storage.write_atomic(path, payload.encode() + b"\n", what="cache")
    except (OSError, UserError, ValueError):
        return False
    return True


def probe_backends(
    backends: list[str], on_done: Callable[[str, dict[str, Any]], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Start a describe-mode worker per backend, all at once; gather what each reports.

    `on_done(backend, info)` is called as each one finishes (progress)."""
    workers = {b: launcher.WorkerProcess(WorkerRequest("describe", b)) for b in backends}
    deadline = time.monotonic() + PROBE_TIMEOUT
    found: dict[str, dict[str, Any]] = {}
    for backend, worker in workers.items():
        info: dict[str, Any] = {}
        try:
            while (event := worker.next_event(deadline)) is not None:
                if event["event"] == "ready":
                    info.update(event)
                elif event["event"] == "describe":
                    info["variants"] = event["variants"]
                elif event["event"] == "done":
                    break
        except TimeoutError:
            info["error"] = "timed out"
        if event is None and "variants" not in info:
            info["error"] = worker.death_cause()
        worker.kill()
        info.pop("event", None)
        found[backend] = info
        if on_done is not None:
            on_done(backend, info)
    return found


def describe_backends(
    backends: list[str], *, refresh: bool = False, console: Console | None = None
) -> dict[str, dict[str, Any]]:
    """Each backend's description (`probe_backends`), from the cache where its key matches.

    Progress goes to `console` (default: stderr): which backends come from the cache, and each
    worker as it starts and finishes. A description with an error is not cached.
    """
    console = console or Console(stderr=True)
    keys = {b: cache_key(b) for b in backends}
    found: dict[str, dict[str, Any]] = {}
    if not refresh:

        def warn(message: str) -> None:
            console.print(
                f"list: warning: {message}; describing it again", highlight=False, soft_wrap=True
            )

        for backend in backends:
            info = read_cached(backend, keys[backend], warn)
            if info is not None:
                found[backend] = {**info, "cached": True}
    if found:
        console.print(
            escape.text(f"list: {', '.join(found)} described from the cache ({cache_dir()})"),
            highlight=False,
            soft_wrap=True,
        )
    todo = [b for b in backends if b not in found]
    if not todo:
        return {b: found[b] for b in backends}
    start, left = time.monotonic(), list(todo)
    status = console.status(_waiting(left)) if console.is_terminal else None
    if status is None:
        console.print(f"list: {_waiting(left)}", highlight=False, soft_wrap=True)

    def done(backend: str, info: dict[str, Any]) -> None:
        left.remove(backend)
        if "variants" in info and "error" not in info:
            write_cached(backend, keys[backend], info)
        outcome = f"failed ({info['error']})" if "error" in info else "described"
        elapsed = time.monotonic() - start
        console.print(
            escape.text(f"list: {backend} {outcome} in {elapsed:.1f} s"),
            highlight=False,
            soft_wrap=True,
        )
        if status is not None and left:
            status.update(_waiting(left))

    with status or contextlib.nullcontext():
        found.update(probe_backends(todo, on_done=done))
    return {b: found[b] for b in backends}


def _waiting(backends: list[str]) -> str:
    return (
        f"starting {', '.join(backends)} to describe variants and devices "
        "(seconds each; cached afterwards)..."
    )


def _style(color: bool):
    return box.SIMPLE_HEAVY if color else box.ASCII


def _plugins(load: bool, installed: list[str]) -> list[dict[str, Any]]:
    """Installed plugins (`variants.GROUP`), each with its defaults, and either its metadata or
    the error that breaks it; loaded in a child process where `load`, else only named."""
    from mnist_bench.plan import variants

    if load and variants.plugins():
        try:
            found = variants.describe_plugins(installed[0] if installed else None)
        except UserError as exc:  # the child itself failed: every plugin is in doubt
            found = [
                {"name": n, "target": t, "distribution": d, "error": str(exc)}
                for n, (t, d) in variants.plugins().items()
            ]
    else:
        found = [
            {"name": n, "target": t, "distribution": d, "description": "(not loaded)"}
            for n, (t, d) in variants.plugins().items()
        ]
    for plugin in found:
        try:
            plugin["defaults"] = TrainSettings(**plugin.get("defaults", {}))
        except (TypeError, ValueError, UserError) as exc:
            plugin.setdefault("error", f"bad default settings: {exc}")
            plugin["defaults"] = TrainSettings()
    return found


def tables(*, probe: bool = True, color: bool = True, refresh: bool = False) -> list[Table]:
    installed = environment.installed_backends()
    probed = describe_backends(installed, refresh=refresh) if probe and installed else {}
    described: list[dict[str, Any]]
    described = next((p["variants"] for p in probed.values() if "variants" in p), [])
    sizes = {v["name"]: v for v in described}

    variants = Table(title="variants", box=_style(color))
    for col in (
        "name",
        "params",
        "MFLOPs/sample (train)",
        "epochs",
        "batch",
        "optimizer",
        "input",
        "model",
    ):
        variants.add_column(
            col,
            justify="right"
            if col in ("params", "epochs", "batch") or col.startswith("MFLOPs")
            else "left",
        )
    for name in models.names():
        v = models.get(name)
        size = sizes.get(name, {})
        params = f"{size['params']:,}" if size else "-"
        flops = f"{size['flops_per_train_sample'] / 1e6:.2f}" if size else "-"
        d = v.defaults
        variants.add_row(
            *map(
                escape.text,
                (
                    name,
                    params,
                    flops,
                    str(d.epochs),
                    str(d.batch_size),
                    d.optimizer,
                    "x".join(map(str, v.input_shape)),
                    v.description,
                ),
            )
        )

    for plugin in _plugins(True, installed):
        d = plugin["defaults"]
        where = f"plugin {plugin['distribution']}: {plugin['target']}"
        if "error" in plugin:
            text = f"BROKEN: {plugin['error']} ({where})"
        else:
            text = f"{plugin.get('description') or '-'} ({where})"
        supported = plugin.get("backends")
        if supported and tuple(supported) != BACKENDS:
            text += f", {', '.join(supported)} only"
        variants.add_row(
            escape.text(plugin["name"]),
            "-",
            "-",
            str(d.epochs),
            str(d.batch_size),
            d.optimizer,
            "-",
            escape.text(text),
        )

    backends = Table(title="backends", box=_style(color))
    for col in ("backend", "installed", "version", "devices"):
        backends.add_column(col)
    for backend, package in environment.BACKEND_PACKAGES.items():
        version = environment.package_version(package)
        info = probed.get(backend, {})
        if backend not in installed:
            devices = f"- (pip install 'mnist-bench[{backend}]')"
        elif not probe:
            devices = "(not probed)"
        else:
            devices = ", ".join(info.get("devices", [])) or f"error: {info.get('error')}"
        cells = (backend, "yes" if backend in installed else "no", version or "-", devices)
        backends.add_row(*map(escape.text, cells))
    return [variants, backends]


def suite_table(config, *, probe: bool = True, color: bool = True) -> Table:
    """The expanded grid of a suite, one row per (backend, variant, settings), with estimates."""
    from mnist_bench import data
    from mnist_bench.execute import runner
    from mnist_bench.plan import estimate

    jobs = runner.expand_jobs(config)
    full = len(data.load(config.data).x_train)
    flops: dict[str, int] = {}
    if probe:
        backends = [b for b in environment.installed_backends() if b in {j.backend for j in jobs}][
            :1
        ]
        for info in describe_backends(backends).values():
            flops = {v["name"]: v["flops_per_train_sample"] for v in info.get("variants", [])}
    learnt = estimate.history()
    rows: dict[tuple, dict[str, Any]] = {}
    for job in jobs:
        key = (job.backend, job.variant, job.settings, job.device)
        train = min(full, job.settings.train_limit or full)
        seconds, source = estimate.job_seconds(job, train, learnt, flops)
        row = rows.setdefault(key, {"jobs": 0, "seconds": 0.0, "sources": set()})
        row["jobs"] += 1
        row["seconds"] += seconds
        row["sources"].add(source)
    total = sum(r["seconds"] for r in rows.values())
    table = Table(
        title=escape.text(
            f"{config.suite or 'run'}: {len(jobs)} records, estimated "
            f"{_duration(total)} on this machine"
        ),
        box=_style(color),
    )
    for col in (
        "backend",
        "variant",
        "device",
        "epochs",
        "batch",
        "optimizer",
        "lr",
        "schedule",
        "knobs",
        "records",
        "estimate",
    ):
        table.add_column(
            col, justify="right" if col in ("epochs", "batch", "records", "estimate") else "left"
        )
    for (backend, variant, s, device), row in rows.items():
        lr = "default" if s.learning_rate is None else f"{s.learning_rate:g}"
        cells = (
            backend,
            variant,
            device,
            str(s.epochs),
            str(s.batch_size),
            s.optimizer,
            lr,
            s.schedule,
            _knobs(s),
            str(row["jobs"]),
            f"{_duration(row['seconds'])} ({'/'.join(sorted(row['sources']))})",
        )
        table.add_row(*map(escape.text, cells))
    return table


def _knobs(settings: TrainSettings) -> str:
    """The Keras knobs that differ from their defaults, e.g. `jit_compile=true mixed_float16`."""
    default = TrainSettings()
    parts = [
        f"{name}={getattr(settings, name)}"
        for name in ("jit_compile", "steps_per_execution")
        if getattr(settings, name) != getattr(default, name)
    ]
    if settings.dtype_policy != default.dtype_policy:
        parts.append(settings.dtype_policy)
    return " ".join(parts) or "-"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):  # NaN: no history and no FLOPs
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:  # a grid of days: hours and minutes would be false precision
        return f"{hours / 24:,.1f} days"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def environment_table(env: dict[str, Any], *, color: bool = True) -> Table:
    table = Table(title="environment", box=_style(color), show_header=False)
    table.add_column("key", style="bold" if color else "")
    table.add_column("value")
    cpu = env["cpu"]
    rows = [
        ("machine id", env["machine_id"]),
        (
            "CPU",
            f"{cpu['model']} ({cpu['logical_cores']} logical cores, {cpu['usable_cores']} usable)",
        ),
        ("CPU flags", ", ".join(cpu["flags"]) or "-"),
        ("memory", f"{env['memory_gib']} GiB"),
        (
            "GPUs",
            ", ".join(
                f"{g['name']} ({g['memory_mib']} MiB, driver {g['driver']})"
                for g in env.get("gpu_details", [])
            )
            or ", ".join(env["gpus"])
            or "none (no nvidia-smi; `mnist-bench list` shows what each backend sees)",
        ),
        ("OS", f"{env['os']} ({env['machine']})"),
        ("Python", f"{env['python']} ({env['implementation']})"),
        ("mnist-bench", env["mnist_bench"]),
        ("git", f"{env['git']['commit'] or '-'}" + (" (dirty)" if env["git"]["dirty"] else "")),
        (
            "thread settings",
            ", ".join(f"{k}={v}" for k, v in env["thread_env"].items()) or "none set",
        ),
    ]
    rows += [(pkg, ver or "not installed") for pkg, ver in env["packages"].items()]
    if "peak_gflops" in env:
        rows.append(("float32 matmul peak", f"{env['peak_gflops']:.1f} GFLOP/s (NumPy)"))
    for key, value in rows:
        table.add_row(key, escape.text(value))
    return table
