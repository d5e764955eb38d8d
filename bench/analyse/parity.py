"""`mnist-bench parity`: do the backends agree, test sample by test sample?

For each job run on several backends (the same variant, seed, device, dataset and settings:
`identity.same_except(a, b, "backend")`), compares the predicted test labels its records keep
(`Record.predicted_labels`): the share of test samples two backends label alike (mean over the
seeds both ran, and the lowest seed), each backend's accuracy and their spread, and the
confusion-matrix cells where two backends differ most. Reads run files only; imports NumPy,
no framework.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_bench.core import identity, jsonout
from mnist_bench.core.config import BACKENDS
from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import Record, unpack_labels

TOP_CELLS = 3  # confusion cells named per pair
# What tells groups apart in a title; backend, seed and repeat are what parity spans.
_SPANNED = ("backend", "seed", "repeat")

EPILOG = """examples:
  mnist-bench run -v single-dense --seeds 0,1,2         every installed backend, three seeds
  mnist-bench parity results/runs/RUN.json               agreement per variant, backend x backend
  mnist-bench parity tf.json jax.json torch.json --format markdown
  mnist-bench report RUN.json --format html -o r.html    draws where the confusion matrices differ

exit codes: 0 ok; 2 a bad file (see --skip-bad), no record with predicted labels, or no job
run on two backends."""

# --format json: the keys, stable (a key is only ever added), as `--help` documents them.
JSON_KEYS = """--format json prints one object (keys are only ever added; non-finite numbers null):
  {command: parity, runs (the RUN arguments), files (the run files read), warnings, notes
  (what was left out, a line each), unlabelled, single (their counts), groups}
  groups, one per job run on two or more backends (seed aside): {title (as the table titles
    it), variant, dataset, devices {BACKEND: where it ran}, configuration (every field of the
    job but backend and seed), backends, seeds, class_names (or null), accuracy {BACKEND: mean
    test accuracy over its seeds}, spread (highest minus lowest), agreement {BACKEND:
    {BACKEND: mean agreement over the seeds both ran, 1 with itself, null where no seed is
    shared}}, pairs}
  pairs: {a, b, seeds (both ran), agreements (one per seed), mean, min, accuracy_a,
    accuracy_b (over those seeds), disagreeing (samples labelled differently), difference
    (confusion matrix of a minus that of b, rows truth), largest (the cells that differ
    most: [{truth, predicted, count}], class indices)}"""


def agreement(a: Any, b: Any) -> float:
    """The share of samples two label arrays of one test set give the same label."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"{len(a)} labels against {len(b)}")
    return float(np.mean(np.asarray(a) == np.asarray(b))) if len(a) else 1.0


def largest_cells(difference: Sequence[Sequence[int]], top: int = TOP_CELLS) -> list[tuple]:
    """The `top` cells of a confusion difference with the largest magnitude, as (truth,
    predicted, count), largest first (ties in reading order); zero cells left out."""
    cells = [
        (i, j, value) for i, row in enumerate(difference) for j, value in enumerate(row) if value
    ]
    return sorted(cells, key=lambda c: -abs(c[2]))[:top]


@dataclass
class Labelled:
    """An ok record with its predicted labels unpacked, and the file it came from."""

    record: Record
    labels: Any  # NumPy uint8 array, in test-set order
    path: Path


@dataclass
class Pair:
    """Two backends on the seeds both ran.

    Attributes:
        a, b: the backends.
        seeds: the seeds both ran, in order.
        agreements: per seed, the share of test samples labelled alike.
        accuracy_a, accuracy_b: mean test accuracy over those seeds.
        difference: confusion matrix of `a` minus that of `b`, summed over those seeds.
        disagreeing: test samples labelled differently, summed over those seeds (two of them
            can cancel out in `difference`: 4 -> 9 on one backend, 9 -> 4 on the other).
    """

    a: str
    b: str
    seeds: list[int]
    agreements: list[float]
    accuracy_a: float
    accuracy_b: float
    difference: list[list[int]]
    disagreeing: int

    @property
    def mean(self) -> float:
        return sum(self.agreements) / len(self.agreements)

    @property
    def min(self) -> float:
        return min(self.agreements)


@dataclass
class Group:
    """One job (seed aside) and the backends it ran on: `by_backend[backend][seed]`."""

    job: Job
    by_backend: dict[str, dict[int, Labelled]]
    pairs: list[Pair] = field(default_factory=list)

    @property
    def backends(self) -> list[str]:
        return list(self.by_backend)

    def accuracy(self, backend: str) -> float:
        values = [x.record.test_accuracy or 0.0 for x in self.by_backend[backend].values()]
        return sum(values) / len(values)

    @property
    def spread(self) -> float:
        """Highest minus lowest of the backends' mean accuracies."""
        values = [self.accuracy(b) for b in self.backends]
        return max(values) - min(values)

    def pair(self, a: str, b: str) -> Pair | None:
        return next((p for p in self.pairs if (p.a, p.b) == (a, b)), None)


@dataclass
class Parity:
    """Every group with two or more backends, and what was left out."""

    groups: list[Group]
    runs: list[collect.LoadedRun]
    unlabelled: int = 0  # ok records without predicted labels (older files)
    single: int = 0  # jobs (seed aside) with labels on one backend only

    @property
    def notes(self) -> list[str]:
        """What was left out, a line each."""
        out = []
        if self.unlabelled:
            out.append(
                f"{self.unlabelled} ok record(s) have no predicted labels (written before run "
                "files kept them): left out"
            )
        if self.single:
            out.append(f"{self.single} job(s) ran on one backend only: left out")
        return out

    def title(self, group: Group) -> str:
        """The variant, and the fields that tell this group from the others: `two-dense
        [epochs=5]`."""
        varying = [
            name
            for name in identity.varying_fields(g.job for g in self.groups)
            if name not in _SPANNED and name not in ("variant", "dataset_digest")
        ]
        fields = group.job.fields()
        shown = [f"{name}={identity.format_value(fields[name])}" for name in varying]
        return group.job.variant + (f" [{' '.join(shown)}]" if shown else "")

    def class_names(self, group: Group) -> list[str] | None:
        first = next(iter(next(iter(group.by_backend.values())).values()))
        for loaded in self.runs:
            if loaded.path == first.path:
                names = (loaded.run.environment.get("dataset") or {}).get("class_names")
                return [str(n) for n in names] if isinstance(names, list) else None
        return None


def has_labels(records: Iterable[Record]) -> bool:
    return any(r.predicted_labels is not None for r in records)


def _labelled(record: Record, path: Path) -> Labelled:
    """Unpack a record's labels; they must agree with its confusion matrix's columns."""
    import numpy as np

    where = f"{path}: {record.job.label()}"
    try:
        labels = unpack_labels(record.predicted_labels, record.test_samples or 0)
    except ValueError as exc:
        raise UserError(f"{where}: predicted_labels unreadable ({exc})") from None
    matrix = record.confusion_matrix
    if matrix is not None:
        predicted = [sum(column) for column in zip(*matrix, strict=True)]
        counted = np.bincount(labels, minlength=len(matrix)).tolist()
        if counted != predicted:
            raise UserError(
                f"{where}: predicted_labels disagree with the confusion matrix "
                f"(per class {counted}, the matrix says {predicted})"
            )
    return Labelled(record, labels, path)


def compare(runs: Sequence[collect.LoadedRun]) -> Parity:
    """Group the labelled ok records of `runs` by job (backend, seed and repeat aside) and
    compare every pair of backends of a group. A job found twice (a repeat, or one run file
    read twice) counts once: its first record, repeat 0 first.

    Raises:
        UserError: labels that cannot be unpacked or disagree with their record's matrix.
    """
    groups: dict[tuple, Group] = {}
    unlabelled = 0
    found = [(r, loaded.path) for loaded in runs for r in loaded.run.records if r.status == "ok"]
    for record, path in sorted(found, key=lambda item: item[0].repeat):
        if record.predicted_labels is None or not record.confusion_matrix:
            unlabelled += 1
            continue
        key = identity.key_except(record.job, *_SPANNED)
        group = groups.setdefault(key, Group(record.job, {}))
        seeds = group.by_backend.setdefault(record.backend, {})
        if record.seed not in seeds:
            seeds[record.seed] = _labelled(record, path)
    parity = Parity([], list(runs), unlabelled=unlabelled)
    for group in groups.values():
        if len(group.by_backend) < 2:
            parity.single += 1
            continue
        order = {name: i for i, name in enumerate(BACKENDS)}
        group.by_backend = dict(sorted(group.by_backend.items(), key=lambda kv: order[kv[0]]))
        names = group.backends
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pair = _pair(group, a, b)
                if pair is not None:
                    group.pairs.append(pair)
        parity.groups.append(group)
    return parity


def _pair(group: Group, a: str, b: str) -> Pair | None:
    import numpy as np

    first, second = group.by_backend[a], group.by_backend[b]
    seeds = [seed for seed in first if seed in second]
    if not seeds:
        return None
    agreements, disagreeing, difference = [], 0, 0
    for seed in seeds:
        x, y = first[seed], second[seed]
        mx, my = np.asarray(x.record.confusion_matrix), np.asarray(y.record.confusion_matrix)
        if len(x.labels) != len(y.labels) or mx.shape != my.shape:
            raise UserError(
                f"{x.path} and {y.path}: {x.record.job.label()} and {y.record.job.label()} "
                f"labelled different test sets ({len(x.labels)} and {len(y.labels)} samples, "
                f"{len(mx)} and {len(my)} classes)"
            )
        agreements.append(agreement(x.labels, y.labels))
        disagreeing += int(np.count_nonzero(x.labels != y.labels))
        difference = difference + (mx - my)
    accuracy = [
        sum(side[s].record.test_accuracy or 0.0 for s in seeds) / len(seeds)
        for side in (first, second)
    ]
    return Pair(a, b, seeds, agreements, accuracy[0], accuracy[1], difference.tolist(), disagreeing)


def build(
    paths: Sequence[str],
    *,
    skip_bad: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Parity:
    """Load the run files under `paths` and compare (`compare`).

    Raises:
        UserError: a bad file (unless `skip_bad`), no record with predicted labels, or no job
            with labels on two backends.
    """
    runs = collect.load_runs(paths, skip_bad=skip_bad, warn=warn)
    parity = compare(runs)
    if not parity.groups:
        if parity.unlabelled and not parity.single:
            raise UserError(
                f"no record has predicted labels ({parity.unlabelled} ok record(s) written "
                "before run files kept them); run again to compare backends"
            )
        raise UserError(
            "no job ran on two backends with predicted labels: nothing to compare (run with "
            "-b for two or more backends, the same variant, seed and settings)"
        )
    return parity


# ------------------------------------------------------------------------------ rendering
def _ratio(value: float) -> str:
    return "1" if value == 1.0 else f"{value:.4f}"


def agreement_cell(group: Group, a: str, b: str) -> str:
    """`mean (min)` over the seeds both ran; `1` on the diagonal; `-` where no seed is shared."""
    if a == b:
        return "1"
    pair = group.pair(a, b) or group.pair(b, a)
    if pair is None:
        return "-"
    if len(pair.agreements) == 1:
        return _ratio(pair.mean)
    return f"{_ratio(pair.mean)} (min {_ratio(pair.min)})"


def agreement_rows(group: Group) -> tuple[list[str], list[list[str]]]:
    """The backend x backend agreement table: header and body."""
    names = group.backends
    header = ["agreement", *names]
    body = [[a, *(agreement_cell(group, a, b) for b in names)] for a in names]
    return header, body


def seeds_text(group: Group) -> str:
    seeds = sorted({s for per in group.by_backend.values() for s in per})
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"


def accuracy_line(group: Group) -> str:
    parts = [f"{b} {group.accuracy(b):.4f}" for b in group.backends]
    return f"accuracy: {', '.join(parts)} (spread {group.spread:.4f})"


def cells_text(pair: Pair, class_names: Sequence[str] | None = None) -> str:
    """Where `a`'s confusion matrix differs most from `b`'s: `truth 4 -> 9: +3`."""
    names = class_names or [str(i) for i in range(len(pair.difference))]
    cells = largest_cells(pair.difference)
    if not cells:
        return "identical"
    return ", ".join(f"truth {names[i]} -> {names[j]}: {v:+d}" for i, j, v in cells)


def difference_lines(parity: Parity, group: Group) -> list[str]:
    names = parity.class_names(group)
    return [
        f"{p.a} - {p.b}: {p.disagreeing} sample(s) labelled differently; confusion differs "
        f"most at {cells_text(p, names)}"
        for p in group.pairs
    ]


def render_table(parity: Parity, *, color: bool = False) -> list:
    """Rich renderables: per group, a title, the agreement table and its lines."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out: list = []
    for group in parity.groups:
        header, body = agreement_rows(group)
        table = Table(
            title=f"{parity.title(group)} · {seeds_text(group)}",
            box=box.SIMPLE_HEAVY if color else box.ASCII,
        )
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for line in body:
            table.add_row(*(Text(cell) for cell in line))
        out.append(table)
        out.extend(Text(line) for line in [accuracy_line(group), *difference_lines(parity, group)])
        out.append(Text(""))
    out.extend(Text(note) for note in parity.notes)
    return out


def render_text(parity: Parity) -> str:
    """The table format as plain ASCII (files and pipes)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=200, no_color=True)
    for item in render_table(parity):
        console.print(item, highlight=False)
    return buffer.getvalue()


def render_markdown(parity: Parity) -> str:
    from mnist_bench.render.markdown import escape

    lines: list[str] = []
    for group in parity.groups:
        header, body = agreement_rows(group)
        lines += [f"### {escape(parity.title(group))} · {seeds_text(group)}", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| --- |" + " ---: |" * (len(header) - 1))
        lines += ["| " + " | ".join(escape(c) for c in line) + " |" for line in body]
        lines += ["", f"- {accuracy_line(group)}"]
        lines += [f"- {escape(line)}" for line in difference_lines(parity, group)]
        lines.append("")
    lines += [f"_{note}_" for note in parity.notes]
    return "\n".join(lines).rstrip("\n") + "\n"


FORMATS: dict[str, Callable[[Parity], str]] = {"table": render_text, "markdown": render_markdown}


def _pair_dict(pair: Pair) -> dict[str, Any]:
    return {
        "a": pair.a,
        "b": pair.b,
        "seeds": list(pair.seeds),
        "agreements": list(pair.agreements),
        "mean": pair.mean,
        "min": pair.min,
        "accuracy_a": pair.accuracy_a,
        "accuracy_b": pair.accuracy_b,
        "disagreeing": pair.disagreeing,
        "difference": pair.difference,
        "largest": [
            {"truth": i, "predicted": j, "count": count}
            for i, j, count in largest_cells(pair.difference)
        ],
    }


def _group_dict(parity: Parity, group: Group) -> dict[str, Any]:
    def agreement_of(a: str, b: str) -> float | None:
        if a == b:
            return 1.0
        pair = group.pair(a, b) or group.pair(b, a)
        return None if pair is None else pair.mean

    names = group.backends
    configuration = group.job.fields()
    del configuration["backend"]
    return {
        "title": parity.title(group),
        "variant": group.job.variant,
        "dataset": group.job.dataset,
        "devices": {
            b: next(iter(per.values())).record.where for b, per in group.by_backend.items()
        },
        "configuration": configuration,
        "backends": names,
        "seeds": sorted({s for per in group.by_backend.values() for s in per}),
        "class_names": parity.class_names(group),
        "accuracy": {b: group.accuracy(b) for b in names},
        "spread": group.spread,
        "agreement": {a: {b: agreement_of(a, b) for b in names} for a in names},
        "pairs": [_pair_dict(p) for p in group.pairs],
    }


def render_json(parity: Parity, *, runs: Sequence[str], warnings: Sequence[str] = ()) -> str:
    """The `--format json` object (the keys `JSON_KEYS` documents)."""
    return jsonout.dumps(
        {
            "command": "parity",
            "runs": [str(r) for r in runs],
            "files": [str(loaded.path) for loaded in parity.runs],
            "warnings": list(warnings),
            "notes": parity.notes,
            "unlabelled": parity.unlabelled,
            "single": parity.single,
            "groups": [_group_dict(parity, g) for g in parity.groups],
        }
    )


# ------------------------------------------------------------------------------ the command
def add_parity(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG + "\n\n" + JSON_KEYS
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("runs", nargs="+", metavar="RUN", help="run files or folders of them")
    p.add_argument(
        "--format",
        choices=[*FORMATS, "json"],
        default="table",
        help="table (rich; plain ASCII when piped), markdown (GitHub tables) or json (one "
        "object, keys below)",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="warn about and skip bad run files instead of stopping",
    )


def cmd_parity(args: argparse.Namespace) -> int:
    warnings: list[str] = []

    def warn(message: str) -> None:
        print(f"mnist-bench parity: warning: {message}", file=sys.stderr)
        warnings.append(message)

    parity = build(args.runs, skip_bad=args.skip_bad, warn=warn)
    if args.format == "table" and not args.output:
        from mnist_bench.core.console import make_console

        console = make_console()
        for item in render_table(parity, color=console.is_terminal):
            console.print(item, highlight=False)
        return 0
    if args.format == "json":
        text = render_json(parity, runs=args.runs, warnings=warnings)
    else:
        text = FORMATS[args.format](parity)
    if not args.output:
        sys.stdout.write(text)
        return 0
    from mnist_bench.runfile.storage import write_atomic

    target = Path(args.output)
    if target.is_dir():
        raise UserError(f"--output {target}: is a folder")
    if target.exists() and any(target.resolve() == r.path.resolve() for r in parity.runs):
        raise UserError(f"--output {target}: is one of the run files read; not overwritten")
    write_atomic(target, text.encode(), what="parity")
    print(f"parity: {target}", file=sys.stderr)
    return 0
