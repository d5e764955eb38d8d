"""What `list` and `env` show: variants, backends, devices, and the provenance block."""

from __future__ import annotations

import time
from typing import Any

from mnist_bench import environment, launcher, models
from mnist_bench.identity import WorkerRequest
from rich import box
from rich.table import Table

PROBE_TIMEOUT = 120.0


def probe_backends(backends: list[str]) -> dict[str, dict[str, Any]]:
    """Start a describe-mode worker per backend, all at once; gather what each reports."""
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
        found[backend] = info
    return found


def _style(color: bool):
    return box.SIMPLE_HEAVY if color else box.ASCII


def tables(*, probe: bool = True, color: bool = True) -> list[Table]:
    installed = environment.installed_backends()
    probed = probe_backends(installed) if probe and installed else {}
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
            name,
            params,
            flops,
            str(d.epochs),
            str(d.batch_size),
            d.optimizer,
            "x".join(map(str, v.input_shape)),
            v.description,
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
        backends.add_row(backend, "yes" if backend in installed else "no", version or "-", devices)
    return [variants, backends]


def suite_table(config, *, probe: bool = True, color: bool = True) -> Table:
    """The expanded grid of a suite, one row per (backend, variant, settings), with estimates."""
    from mnist_bench import data, estimate, runner

    jobs = runner.expand_jobs(config)
    full = len(data.load(config.data).x_train)
    flops: dict[str, int] = {}
    if probe:
        backends = [b for b in environment.installed_backends() if b in {j.backend for j in jobs}][
            :1
        ]
        for info in probe_backends(backends).values():
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
        title=f"{config.suite or 'run'}: {len(jobs)} records, estimated "
        f"{_duration(total)} on this machine",
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
        "records",
        "estimate",
    ):
        table.add_column(
            col, justify="right" if col in ("epochs", "batch", "records", "estimate") else "left"
        )
    for (backend, variant, s, device), row in rows.items():
        lr = "default" if s.learning_rate is None else f"{s.learning_rate:g}"
        table.add_row(
            backend,
            variant,
            device,
            str(s.epochs),
            str(s.batch_size),
            s.optimizer,
            lr,
            s.schedule,
            str(row["jobs"]),
            f"{_duration(row['seconds'])} ({'/'.join(sorted(row['sources']))})",
        )
    return table


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: no history and no FLOPs
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
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
        table.add_row(key, str(value))
    return table
