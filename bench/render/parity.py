"""A `Parity` drawn: rich tables, plain text, Markdown and JSON."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mnist_bench.core import escape

if TYPE_CHECKING:  # the analysis itself is not needed to describe `parity`'s options
    from mnist_bench.analyse.parity import Group, Pair, Parity


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
    from mnist_bench.analyse.parity import largest_cells

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

    out: list = []
    for group in parity.groups:
        header, body = agreement_rows(group)
        table = Table(
            title=escape.text(f"{parity.title(group)} · {seeds_text(group)}"),
            box=box.SIMPLE_HEAVY if color else box.ASCII,
        )
        for i, name in enumerate(header):
            table.add_column(escape.text(name), justify="left" if i == 0 else "right")
        for line in body:
            table.add_row(*(escape.text(cell) for cell in line))
        out.append(table)
        lines = [accuracy_line(group), *difference_lines(parity, group)]
        out.extend(escape.text(line) for line in lines)
        out.append(escape.text(""))
    out.extend(escape.text(note) for note in parity.notes)
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
    lines: list[str] = []
    for group in parity.groups:
        header, body = agreement_rows(group)
        lines += [f"### {escape.markdown(parity.title(group))} · {seeds_text(group)}", ""]
        lines.append("| " + " | ".join(escape.markdown(h) for h in header) + " |")
        lines.append("| --- |" + " ---: |" * (len(header) - 1))
        lines += ["| " + " | ".join(escape.markdown(c) for c in line) + " |" for line in body]
        lines += ["", f"- {escape.markdown(accuracy_line(group))}"]
        lines += [f"- {escape.markdown(line)}" for line in difference_lines(parity, group)]
        lines.append("")
    lines += [f"_{escape.markdown(note)}_" for note in parity.notes]
    return "\n".join(lines).rstrip("\n") + "\n"


FORMATS: dict[str, Callable[[Parity], str]] = {"table": render_text, "markdown": render_markdown}


def _pair_dict(pair: Pair) -> dict[str, Any]:
    from mnist_bench.analyse.parity import largest_cells

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
    from mnist_bench.core import jsonout

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
