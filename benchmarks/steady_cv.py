"""How steady the training time of finished runs is: within each record and across processes.

Reads run files (a folder or files, as `mnist-bench report` does) and reports per backend,
variant and device:

- records, and how many are flagged `unstable` or `contended`;
- within a record: the steady epochs' coefficient of variation (`steady_epoch_cv`: the epochs
  after the first), median and largest over the records, and the windows' 95% interval
  half-width as a share of their median (`steady_interval`: the figure a verdict reads);
- across processes: the CV of the records' steady time per 1,000 samples (each record is one
  fresh worker process, one seed), the spread a cross-process verdict has to see through.

    mnist-bench run -b tensorflow -b jax -b torch -v two-dense -v cnn-fast --seeds 0,1,2,3,4 \\
        --epochs 4 --no-figures --results-dir DIR
    python benchmarks/steady_cv.py DIR [--json OUT]

Exit 1 where no record could be read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cv(values: list[float]) -> float | None:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else None


def _half_width(record) -> float | None:
    if not record.steady_interval or not record.steady_seconds_per_1k:
        return None
    low, high = record.steady_interval
    return (high - low) / 2 / record.steady_seconds_per_1k


def summarize(records) -> list[dict]:
    """One row per (backend, variant, device) of the records that finished."""
    groups = defaultdict(list)
    for r in records:
        if r.status == "ok":
            groups[(r.backend, r.variant, r.device)].append(r)
    rows = []
    for (backend, variant, device), rs in sorted(groups.items()):
        cvs = [r.steady_epoch_cv for r in rs if r.steady_epoch_cv is not None]
        widths = [w for w in map(_half_width, rs) if w is not None]
        per_1k = [r.steady_seconds_per_1k for r in rs if r.steady_seconds_per_1k]
        rows.append(
            {
                "backend": backend,
                "variant": variant,
                "device": device,
                "records": len(rs),
                "unstable": sum(r.unstable for r in rs),
                "contended": sum(r.contended for r in rs),
                "epoch_cv_median": statistics.median(cvs) if cvs else None,
                "epoch_cv_max": max(cvs) if cvs else None,
                "window_half_width_median": statistics.median(widths) if widths else None,
                "window_half_width_max": max(widths) if widths else None,
                "process_cv": _cv(per_1k),
                "process_max_min": max(per_1k) / min(per_1k) if len(per_1k) > 1 else None,
            }
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run files or folders of them")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows here")
    args = parser.parse_args(argv)
    import mnist_bench

    try:
        records = mnist_bench.load(args.paths).records
    except mnist_bench.Error as e:
        print(f"steady_cv: {e}", file=sys.stderr)
        return 1
    rows = summarize(records)
    if not rows:
        print("steady_cv: no finished record in those runs", file=sys.stderr)
        return 1
    print(
        "| backend | variant | records | unstable | contended | steady-epoch CV, median / max "
        "| windows' 95% half-width, median / max | CV across processes | slowest / fastest |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for r in rows:
        ratio = "-" if r["process_max_min"] is None else f"{r['process_max_min']:.2f}"
        print(
            f"| {r['backend']} | {r['variant']} | {r['records']} | {r['unstable']} | "
            f"{r['contended']} | {_pct(r['epoch_cv_median'])} / {_pct(r['epoch_cv_max'])} | "
            f"{_pct(r['window_half_width_median'])} / {_pct(r['window_half_width_max'])} | "
            f"{_pct(r['process_cv'])} | {ratio} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
