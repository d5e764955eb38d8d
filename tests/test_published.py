"""What a newcomer reads first: the published results table (`docs/results.md`) against the
committed run files in `results/published/`, and the help texts.

The page names the command that makes its table (`mnist-bench report results/published/...
--format markdown`); this runs it and fails on any row or number that disagrees.
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, run_cli
from mnist_bench import cli

README = (ROOT / "README.md").read_text()
RESULTS = (ROOT / "docs" / "results.md").read_text()  # the dated published results
PAGES = [README, *(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))]
COMMAND = re.compile(r"`(mnist-bench report (results/published/\S+) --format markdown)`")
KEYS = ("variant", "backend", "device")


def expand(path: str) -> list[str]:
    """The shell's brace expansion, for the one `{a,b}` group a README path may hold."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [f"{head}{part}{tail}" for part in match.group(1).split(",")]


def parse_table(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """A Markdown table's header and body rows (the separator line dropped)."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert len(cells) >= 2 and set("".join(cells[1])) <= set("-: "), lines[:2]
    return cells[0], cells[2:]


def table_after(text: str, start: int) -> list[str]:
    """The lines of the first Markdown table in `text` after offset `start`."""
    lines = text[start:].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def published_table() -> tuple[str, list[str], list[str]]:
    """(command, the README's table lines, the table the command prints now)."""
    found = COMMAND.search(RESULTS)
    assert found, "docs/results.md names no `mnist-bench report results/published/...` command"
    paths = expand(found.group(2))
    for path in paths:
        assert (ROOT / path).is_file(), f"the README's command reads {path}, which is missing"
    out = run_cli("report", *paths, "--format", "markdown")
    assert out.returncode == 0, out.stderr
    generated = [line for line in out.stdout.splitlines() if line.startswith("|")]
    return found.group(1), table_after(RESULTS, found.end()), generated


def disagreements(readme_lines: list[str], generated_lines: list[str]) -> list[str]:
    """Where the README's table differs from the generated one, over the README's columns (the
    report may show more); empty when they agree."""
    readme_head, readme_rows = parse_table(readme_lines)
    head, rows = parse_table(generated_lines)
    missing = [c for c in readme_head if c not in head]
    if missing:
        return [f"README columns the report has not: {missing}"]
    index = [head.index(c) for c in readme_head]
    now = [[row[i] for i in index] for row in rows]  # the README's columns, in its order

    def key(row: list[str]) -> str:
        return " · ".join(row[readme_head.index(k)] for k in KEYS)

    if [key(r) for r in readme_rows] != [key(r) for r in now]:
        return [f"rows: README {[key(r) for r in readme_rows]}, now {[key(r) for r in now]}"]
    return [
        f"{key(mine)}: {name}: README {a!r}, results/published {b!r}"
        for mine, theirs in zip(readme_rows, now, strict=True)
        for name, a, b in zip(readme_head, mine, theirs, strict=True)
        if a != b
    ]


def test_readme_results_table_matches_results_published():
    command, readme_lines, generated_lines = published_table()
    wrong = disagreements(readme_lines, generated_lines)
    assert not wrong, f"the README's table disagrees with `{command}`:\n" + "\n".join(wrong)


def test_a_changed_number_or_row_is_caught():
    _, readme_lines, generated_lines = published_table()
    head, rows = parse_table(readme_lines)
    accuracy = rows[0][head.index("test accuracy")]
    changed = accuracy[:-1] + ("1" if accuracy[-1] != "1" else "2")
    edited = readme_lines[2].replace(f"| {accuracy} |", f"| {changed} |", 1)
    assert edited != readme_lines[2]
    wrong = disagreements([*readme_lines[:2], edited, *readme_lines[3:]], generated_lines)
    assert wrong == [
        f"{' · '.join(rows[0][:3])}: test accuracy: README {changed!r}, "
        f"results/published {accuracy!r}"
    ]
    assert disagreements(readme_lines[:-1], generated_lines)[0].startswith("rows:")  # one short
    renamed = readme_lines[0].replace("train s", "train seconds")
    assert "train seconds" in disagreements([renamed, *readme_lines[1:]], generated_lines)[0]


def test_readme_says_where_fashion_mnist_comes_from():
    for page in PAGES:
        for match in re.finditer(r"--data fashion-mnist", page):
            nearby = page[max(0, match.start() - 600) : match.end() + 600]
            assert "apt-get install dataset-fashion-mnist" in nearby, nearby


def test_readme_shows_a_job_summary_that_works():
    line = next(line for line in README.splitlines() if "GITHUB_STEP_SUMMARY" in line)
    assert re.search(r"mnist-bench check \S+ --baseline \S+ --format markdown >>", line), line
    out = run_cli(
        "check",
        "tests/fixtures/gate/aa.json",
        "--baseline",
        "tests/fixtures/gate/baseline.json",
        "--format",
        "markdown",
    )
    assert out.returncode == 0 and "check passed" in out.stdout


# ------------------------------------------------------------------------------ help texts
COMMANDS = ["", *(command[0] for command in cli.COMMANDS)]  # every command, new ones included


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "top")
def test_help_has_no_doubled_percent(command):
    out = run_cli(*([command] if command else []), "--help")
    assert out.returncode == 0, out.stderr
    assert "%%" not in out.stdout, [line for line in out.stdout.splitlines() if "%%" in line]


def test_help_says_95_percent_and_what_run_trains():
    top = " ".join(run_cli("--help").stdout.split())
    assert "mean ± 95% CI" in top
    assert "(default: the seed notebook's three on every installed backend)" in top
    assert "the seed notebook's three nets (not every variant)" in top
    compare = " ".join(run_cli("compare", "--help").stdout.split())
    assert "Welch's t-test at 95% on" in compare and "or write 10%)" in compare
