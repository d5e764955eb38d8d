"""What each Keras performance knob does to speed and accuracy on this machine.

Per backend and variant (`two-dense`, `cnn-fast` by default), the default configuration and each
knob changed alone: `jit_compile` true and false, `dtype_policy` mixed_float16 and
mixed_bfloat16, `steps_per_execution` 4. Each knob is one suite with a [grid] list, run by
`mnist-bench run --suite` (the harness itself, in its worker processes); a combination a backend
cannot honour comes back `skipped` with the reason. Prints one Markdown table: steady epoch
time (median of the epochs after the first, with the spread over seeds and steady epochs as
min-max), test accuracy (mean over seeds) and status, and the `uptime` load before and after.

    python benchmarks/knobs.py [--backend jax ...] [--variant two-dense ...]
        [--train-limit 12000] [--epochs 3] [--seeds 0] [--results-dir DIR]

Run it on an otherwise idle machine: the records flag `contended` when something else was busy.
Exit status 1 when a run failed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mnist_bench.runfile.records import Record, load_run

BACKENDS = ("jax", "tensorflow", "torch")
VARIANTS = ("two-dense", "cnn-fast")
# (knob, the values tried); the first knob's first value is the default configuration.
KNOBS = (
    ("jit_compile", ("auto", "true", "false")),
    ("dtype_policy", ("mixed_float16", "mixed_bfloat16")),
    ("steps_per_execution", (4,)),
)


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def suite_text(knob: str, values: tuple, variants: list[str], backends: list[str]) -> str:
    """A suite that varies `knob` over `values`, everything else at its default."""
    return "\n".join(
        [
            f"description = {_toml('Keras knob: ' + knob)}",
            f"variants = [{', '.join(map(_toml, variants))}]",
            f"backends = [{', '.join(map(_toml, backends))}]",
            "[grid]",
            f"{knob} = [{', '.join(map(_toml, values))}]",
            "",
        ]
    )


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def table(rows: list[tuple[str, list[Record]]]) -> str:
    """The Markdown table: one row per (backend, variant, knob value)."""
    out = [
        "| backend | variant | knob | in force | steady epoch s (min-max) | test accuracy "
        "| status |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for knob, group in rows:
        first = group[0]
        steady = [s for r in group if r.status == "ok" for s in r.epoch_seconds[1:]]
        accuracy = [r.test_accuracy for r in group if r.test_accuracy is not None]
        statuses = sorted({r.status + (" (contended)" if r.contended else "") for r in group})
        status = ", ".join(statuses)
        if first.status != "ok" and first.error:
            status += f": {first.error}"
        in_force = ", ".join(f"{k}={v}" for k, v in first.knobs.items()) or "-"
        seconds = _seconds(steady) if steady else "-"
        acc = f"{statistics.fmean(accuracy):.4f}" if accuracy else "-"
        cells = (first.backend, first.variant, knob, in_force, seconds, acc, status)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--variant", action="append")
    parser.add_argument("--train-limit", type=int, default=12000)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--results-dir", help="where the run files go (default: a temporary one)")
    args = parser.parse_args(argv)
    backends, variants = args.backend or list(BACKENDS), args.variant or list(VARIANTS)
    before = uptime()
    failed = False
    rows: list[tuple[str, list[Record]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(args.results_dir or tmp)
        for knob, values in KNOBS:
            suite = Path(tmp) / f"{knob}.toml"
            suite.write_text(suite_text(knob, values, variants, backends))
            command = [
                sys.executable, "-m", "mnist_bench", "run", "--suite", str(suite),
                "--train-limit", str(args.train_limit), "--epochs", str(args.epochs),
                "--seeds", args.seeds, "--results-dir", str(results / knob), "--no-figures",
                "--infer-batch-sizes", "32",
            ]  # fmt: skip
            if args.test_limit:
                command += ["--test-limit", str(args.test_limit)]
            print("$", " ".join(command[1:]), file=sys.stderr)
            done = subprocess.run(command, stdout=subprocess.DEVNULL)
            failed |= done.returncode != 0
            run_file = max((results / knob).glob("*.json"), key=lambda p: p.stat().st_mtime)
            groups: dict[tuple, list[Record]] = {}
            for record in load_run(run_file).records:
                groups.setdefault(record.job.config_key, []).append(record)
            for group in groups.values():
                value = getattr(group[0].settings, knob)
                rows.append((f"{knob}={value}", group))
    after = uptime()
    order = {(b, v): i for i, (b, v) in enumerate((b, v) for b in backends for v in variants)}
    rows.sort(key=lambda row: order[(row[1][0].backend, row[1][0].variant)])
    print(table(rows))
    print(f"\nload before: {before}\nload after:  {after}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
