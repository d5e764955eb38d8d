"""The README and the docs site: the site builds with `mkdocs build --strict`, and every code block
that the README or a page says runs, runs.

The convention, in the Markdown: an HTML comment on the line before a fenced block says what
the block is (GitHub and mkdocs show neither):

- `<!-- runs -->`: run here, in the default test run;
- `<!-- runs: slow (why) -->`: run by the slow test (it trains, or starts a backend);
- `<!-- not run: why -->`: not run, and the comment says why (a Ray cluster, an MLflow server,
  an hour of training).

Every ```bash and ```python block carries one of them (`test_every_block_says_whether_it_runs`);
yaml, toml and text blocks are files to copy (CI workflows), never run.

How a block runs: in a fresh folder holding links to the repository's `suites/`, `tests/`,
`examples/`, `benchmarks/`, `results/baseline/` and `results/published/`, so that what it writes
(`results/runs/`, `report.html`...) never lands in the tree; with this environment's `bin/`
first on PATH, a private cache folder, `GITHUB_STEP_SUMMARY` set to a file and
`KERAS_BACKEND=jax`. The blocks of one page run in order in one folder, so a later block reads
what an earlier one wrote. bash blocks run under `bash -euo pipefail`; a python block runs with
this interpreter, and one whose first line is `# NAME.py` is written to that file and imported.

A block that an earlier page (the README first, then docs/ in name order) runs the same way in
the slow test (the same code; in bash, comments and spacing aside) runs there only: the second
run would prove nothing the first did not. Such a block is one that nothing after it on its page
reads: today the Python API's tour (README, api.md) and the HTML report (README, ci.md).

The one change the test makes to a block: each `mnist-bench run` command gets
`--epochs 1 --train-limit 600 --test-limit 300` appended (before a trailing comment, pipe or
redirection), so a block that trains does so in seconds; the comments before those blocks say so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT
from mnist_bench import cli

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
TINY = "--epochs 1 --train-limit 600 --test-limit 300"
LINKED = ("suites", "tests", "examples", "benchmarks")
RUN = re.compile(r"^((?:\S*/)?mnist-bench run\b.*?)(\s+#.*|\s+\|.*|\s+>>?.*)?$")
BLOCK = re.compile(r"(?ms)^(?:<!--(?P<mark>[^\n]*?)-->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    mark: str  # "runs", "runs: slow ...", "not run: ...", or "" when unmarked
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.mark.startswith("runs")

    @property
    def slow(self) -> bool:
        return self.mark.startswith("runs: slow")


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(
            page,
            text.count("\n", 0, m.start("lang")) + 1,
            m.group("lang"),
            (m.group("mark") or "").strip(),
            m.group("code"),
        )
        for m in BLOCK.finditer(text)
    ]


def tiny(code: str) -> str:
    """`code` with TINY appended to each `mnist-bench run` command (continuations joined)."""
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        found = RUN.match(line)
        lines.append(f"{found.group(1)} {TINY}{found.group(2) or ''}" if found else line)
    return "\n".join(lines) + "\n"


def folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder to run blocks in, and their environment."""
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    for name in LINKED:
        (work / name).symlink_to(ROOT / name)
    for name in ("baseline", "published"):
        (work / "results" / name).symlink_to(ROOT / "results" / name)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # One cache folder for every page a test process runs (the backends' descriptions and the
    # machine's peak, measured once, as a user's home cache has them), apart from the user's.
    env["MNIST_BENCH_CACHE_DIR"] = str(tmp_path.parent / "docs-cache")  # the session's basetemp
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    env["KERAS_BACKEND"] = "jax"
    return work, env


def run_block(block: Block, work: Path, env: dict[str, str]) -> None:
    if block.lang == "python":
        first = block.code.splitlines()[0]
        module = re.fullmatch(r"# (\w+)\.py", first)
        if module:
            (work / f"{module.group(1)}.py").write_text(block.code)
            argv = [sys.executable, "-c", f"import {module.group(1)}"]
        else:
            argv = [sys.executable, "-c", block.code]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", tiny(block.code)]
    out = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (
        f"{block.where} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )


def runnable(slow: bool) -> list[Path]:
    """The pages with a block to run in the default run (slow False) or the slow one."""
    return [p for p in PAGES if any(b.runs and (slow or not b.slow) for b in blocks(p))]


def what_runs(block: Block) -> tuple[str, str]:
    """A block's language and code; a bash block's without comments, blank lines or spacing."""
    if block.lang != "bash":
        return block.lang, block.code
    lines = (
        " ".join(re.sub(r"\s+#[^'\"]*$", "", line).split()) for line in block.code.splitlines()
    )
    return "bash", "\n".join(line for line in lines if line)


def run_before(page: Path) -> set[tuple[str, str]]:
    """What the pages before `page` run in the slow test."""
    earlier = PAGES[: PAGES.index(page)]
    return {what_runs(b) for p in earlier for b in blocks(p) if b.runs}


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# ------------------------------------------------------------------------------ the convention
def test_every_block_says_whether_it_runs():
    unmarked = [
        b.where
        for page in PAGES
        for b in blocks(page)
        if b.lang in ("bash", "sh", "python", "console")
        and not (b.mark.startswith(("runs", "not run: ")) and b.mark.rstrip(":") != "not run")
    ]
    assert unmarked == [], f"blocks that say neither `runs` nor `not run: why`: {unmarked}"


def test_a_block_an_earlier_page_runs_is_run_there_only():
    """The same commands, comments and spacing aside, are the same block; another argument,
    command or language is not."""
    api = blocks(ROOT / "docs" / "api.md")[0]
    assert api.runs and what_runs(api) in run_before(api.page)  # the README's tour
    html = next(b for b in blocks(ROOT / "docs" / "ci.md") if "--format html" in b.code)
    assert what_runs(html) in run_before(html.page)  # the README's report, another comment
    assert what_runs(html) not in run_before(README)  # nothing comes before the README
    same = Block(README, 0, "bash", "runs", "mnist-bench list   # variants\n\nmnist-bench env\n")
    assert what_runs(same) == ("bash", "mnist-bench list\nmnist-bench env")
    for other in ("mnist-bench list --json\nmnist-bench env", "mnist-bench env\nmnist-bench list"):
        assert what_runs(Block(README, 0, "bash", "runs", other)) != what_runs(same)
    assert what_runs(Block(README, 0, "python", "runs", same.code)) != what_runs(same)
    assert what_runs(Block(README, 0, "bash", "runs", "jq '.a # b'\n")) == ("bash", "jq '.a # b'")


def test_tiny_appends_to_each_run_before_comments_and_pipes():
    code = (
        "mnist-bench list\n"
        "mnist-bench run -b jax   # a quick run\n"
        "mnist-bench run -b jax --format json | jq .rows\n"
        ".venv/bin/mnist-bench run\n"
        "mnist-bench report x --format markdown >> out.md\n"
    )
    assert tiny(code).splitlines() == [
        "mnist-bench list",
        f"mnist-bench run -b jax {TINY}   # a quick run",
        f"mnist-bench run -b jax --format json {TINY} | jq .rows",
        f".venv/bin/mnist-bench run {TINY}",
        "mnist-bench report x --format markdown >> out.md",
    ]


# ------------------------------------------------------------------------------ the README
def test_readme_is_short_and_starts_with_the_quickstart():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    sections = re.findall(r"(?m)^## (.+)$", text)
    assert sections[0] == "Quickstart", sections
    quickstart = blocks(README)[0].code.splitlines()
    assert quickstart == [
        "python3.11 -m venv .venv && .venv/bin/pip install -e '.[all]' && "
        ".venv/bin/mnist-bench run",
        "python3.11 -m venv .venv && .venv/bin/pip install -e '.[all,dev]' && .venv/bin/pytest",
    ]
    assert quickstart[1] in (ROOT / ".ci" / "run").read_text()  # CI runs the test line itself


def test_readme_links_point_at_files_that_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", text)
    assert targets, "the README links to no page"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == []


# ------------------------------------------------------------------------------ the site
def test_site_builds_strict_with_generated_cli_and_api(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
    argv += ["-f", str(ROOT / "mkdocs.yml"), "-d", str(site)]
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    reference = (site / "cli" / "index.html").read_text()
    for name, *_ in cli.COMMANDS:  # every command, new ones included, from the parser itself
        assert f'id="{name}"' in reference, name
    assert "--train-limit" in reference and "--baseline" in reference
    api = (site / "api" / "index.html").read_text()
    for name in ("mnist_bench.api.run", "mnist_bench.api.check", "mnist_bench.results.Results"):
        assert name in api, name
    assert "to_pandas" in api  # a method's docstring
    assert not (ROOT / "site").exists()  # nothing written into the tree


# ------------------------------------------------------------------------------ the blocks
@pytest.mark.parametrize("page", runnable(slow=False), ids=page_id)
def test_blocks_run(page, tmp_path):
    work, env = folder(tmp_path)
    for block in blocks(page):
        if block.runs and not block.slow:
            run_block(block, work, env)


@pytest.mark.slow
@pytest.mark.parametrize("page", runnable(slow=True), ids=page_id)
def test_slow_blocks_run(page, tmp_path):
    work, env = folder(tmp_path)
    done = run_before(page)
    for block in blocks(page):
        if block.runs and what_runs(block) not in done:
            run_block(block, work, env)


@pytest.mark.slow
def test_quickstart_run_runs(tmp_path):
    """The Quickstart's first line, past its install: `mnist-bench run` (TINY appended), every
    installed backend."""
    work, env = folder(tmp_path)
    command = blocks(README)[0].code.splitlines()[0].split(" && ")[-1]
    assert command == ".venv/bin/mnist-bench run"
    run_block(Block(README, 0, "bash", "runs", "mnist-bench run\n"), work, env)
    assert list((work / "results" / "runs").glob("*.json"))
