"""Fuzzing the renderers with hostile strings: whatever a run file says in its variant names,
CPU model, commit, command line and errors, every format shows it inert.

- terminal and text output (rich tables, plain tables, Markdown, CSV): no control character
  but line breaks, no bidi override; rich never raises (markup is never read from data);
- Markdown: no HTML (`<`), no image (`![`), no link (`](`, `][`) that the data brought;
- CSV: a text cell never starts a formula;
- HTML: the data appears only escaped;
- JSON: the strings come back as they were.

The strings are drawn from fragments known to bite (markup, escape sequences, HTML, Markdown,
formula starters) mixed with arbitrary text, and some very long ones. No training: the runs are
the stored fixtures with their strings replaced.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import io
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mnist_bench.analyse import compare
from mnist_bench.analyse.report import Report
from mnist_bench.analyse.rows import DEFAULT_BY, rows
from mnist_bench.commands import compare as compare_cmd
from mnist_bench.core import jsonout
from mnist_bench.render import csvout, html, markdown, table
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import RunFile, load_run, pack_labels
from rich.console import Console

# Derandomized, so CI is repeatable; MNIST_BENCH_FUZZ_RANDOM=1 explores fresh cases (and
# --hypothesis-seed replays one).
FUZZ = settings(
    derandomize=os.environ.get("MNIST_BENCH_FUZZ_RANDOM") != "1",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIXTURES = Path(__file__).parent / "fixtures"
MAX_NAME = 255  # a run file's variant names are capped (longer ones: a bad file, tested apart)
FRAGMENTS = (
    "[/x]", "[bold]", "[/]", "[link=http://e.test]", "\\", ":smile:", "\x1b]0;title\x07",
    "\x1b]8;;http://e.test\x1b\\", "\x1b[2J", "\x1b[31m", "\x9b2J", "\x07", "\x00", "\x7f",
    "\r", "\n", "\t", "\u202e", "\u2066", "\u2028", "<img src=x>", "<script>", "</td>", "&lt;",
    "![i](http://e.test/i.png)", "[l](http://e.test)", "[r][1]", "http://e.test", "www.e.test",
    "|", "`", "*", "_", "$x$", "=1+1", "+", "-", "@", "-5", "=", "\"", "'", ",",
)  # fmt: skip
hostile_text = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=10).map("".join),
    st.text(max_size=40),
    st.builds(lambda s, n: s * n, st.sampled_from(["x", "[/", "\x1b[", "<", "=", "é"]),
              st.integers(1_000, 50_000)),
)  # fmt: skip
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
RICH_STYLE = re.compile("\x1b\\[[0-9;]*m")  # the colour rich itself writes on a terminal
LIVE_MARKDOWN = re.compile(r"<|!\[|(?<!\\)\][(\[]")


@pytest.fixture(scope="module", autouse=True)
def long_csv_fields():
    """The test reads back cells of the long strings (the csv module stops at 128 KiB)."""
    before = csv.field_size_limit(1 << 24)
    yield
    csv.field_size_limit(before)


@pytest.fixture(scope="module")
def fixture_runs() -> dict[str, RunFile]:
    return {
        "intel": load_run(FIXTURES / "report" / "intel-jax.json"),
        "amd": load_run(FIXTURES / "report" / "amd-jax-torch.json"),
    }


def hostile_run(run: RunFile, strings: list[str], labels: bool = False) -> RunFile:
    """`run` with its variant names, errors, CPU model, commit and command replaced by
    `strings` (taken in turn); with `labels`, predicted labels from each confusion matrix."""
    strings = strings or [""]
    records = []
    for i, record in enumerate(run.records):
        job = dataclasses.replace(record.job, variant=strings[i % len(strings)][:MAX_NAME])
        changes: dict = {"job": job}
        if record.status != "ok":
            changes["error"] = strings[(i + 1) % len(strings)]
        if labels and record.confusion_matrix:
            predicted = [j for row in record.confusion_matrix for j, n in enumerate(row)
                         for _ in range(n)]  # fmt: skip
            changes["predicted_labels"] = pack_labels(predicted)
        records.append(dataclasses.replace(record, **changes))
    env = copy.deepcopy(run.environment)
    env["cpu"]["model"] = strings[-1]
    env["git"]["commit"] = strings[0]
    env["command"] = strings[len(strings) // 2]
    return dataclasses.replace(run, records=records, environment=env)


def make_report(loaded: list[collect.LoadedRun], by=DEFAULT_BY) -> Report:
    run_of = {id(r): lr for lr in loaded for r in lr.run.records}
    machines = {lr.run.run_id: lr.machine for lr in loaded}
    report = Report(loaded, tuple(by), [], run_of, machines)
    report.rows = rows(collect.records(loaded), by=by, machine_of=report.machine_of)
    return report


def assert_inert_text(text: str) -> None:
    found = RAW.search(text)
    assert found is None, repr(text[max(0, found.start() - 40) : found.end() + 40])


def assert_inert_markdown(text: str) -> None:
    assert_inert_text(text)
    found = LIVE_MARKDOWN.search(text)
    assert found is None, repr(text[max(0, found.start() - 40) : found.end() + 40])


def rich_text(renderable, *, color: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, force_terminal=color, no_color=not color)
    console.print(renderable)
    return RICH_STYLE.sub("", buffer.getvalue())


@FUZZ
@given(strings=st.lists(hostile_text, min_size=1, max_size=4))
def test_report_formats_keep_hostile_strings_inert(fixture_runs, strings):
    run = hostile_run(fixture_runs["intel"], strings)
    loaded = [collect.LoadedRun(Path("hostile.json"), run)]
    for by in (DEFAULT_BY, ("variant", "machine")):
        report = make_report(loaded, by)
        for color in (True, False):
            assert_inert_text(rich_text(table.rows_table(report.rows, by=by, color=color),
                                        color=color))  # fmt: skip
        assert_inert_text(table.render_report(report))
        assert_inert_markdown(markdown.render_report(report))
        for text in (csvout.render_report(report), csvout.render_report_raw(report)):
            assert_inert_text(text)
            for line in csv.reader(io.StringIO(text)):
                for cell in line:
                    assert not cell.lstrip().startswith(("=", "+", "@")), cell
                    assert not cell.startswith("-") or re.fullmatch(r"-([\d.e+-]+|inf)", cell), cell
        page = html.results_table(report) + html.runs_table(report)
        assert_inert_text(page)
        for s in strings:
            if "<" in s:
                assert s not in page  # only its escaped form is


@FUZZ
@given(base=st.lists(hostile_text, min_size=1, max_size=3), new=st.lists(hostile_text, max_size=3))
def test_compare_and_check_keep_hostile_strings_inert(fixture_runs, base, new):
    """Both sides hostile; where `new` is empty the names match and rows have verdicts."""
    old = hostile_run(fixture_runs["amd"], base)
    run = hostile_run(fixture_runs["amd"], new or base)
    compared = compare.compare(old.records, run.records)
    reasons = {id(r): f"failed: {base[0]}" for r in compared}
    for fmt in ("table", "markdown"):
        for why in (None, reasons):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                compare_cmd._render(compared, fmt, title=f"{base[0]} -> {base[-1]}", reasons=why)
            if fmt == "markdown":
                assert_inert_markdown(out.getvalue())
            else:
                assert_inert_text(out.getvalue())
    text = jsonout.dumps({"rows": [compare_cmd.row_dict(r) for r in compared]})
    assert_inert_text(text)
    variants = {row["variant"] for row in json.loads(text)["rows"]}
    assert variants <= {r.variant for r in (*old.records, *run.records)}


@FUZZ
@given(strings=st.lists(hostile_text, min_size=1, max_size=3))
def test_parity_keeps_hostile_strings_inert(fixture_runs, strings):
    from mnist_bench.analyse import parity
    from mnist_bench.render import parity as parity_render

    run = hostile_run(fixture_runs["amd"], strings, labels=True)
    result = parity.compare([collect.LoadedRun(Path("hostile.json"), run)])
    assert result.groups
    for item in parity_render.render_table(result, color=True):
        assert_inert_text(rich_text(item, color=True))
    assert_inert_text(parity_render.render_text(result))
    assert_inert_markdown(parity_render.render_markdown(result))


@settings(FUZZ, max_examples=15)
@given(strings=st.lists(hostile_text, min_size=1, max_size=3))
def test_history_keeps_hostile_strings_inert(tmp_path_factory, strings):
    from mnist_bench.analyse import history
    from mnist_bench.render import history as history_render

    folder = tmp_path_factory.mktemp("history")
    for name in ("baseline", "aa", "regressed"):
        data = json.loads((FIXTURES / "gate" / f"{name}.json").read_text())
        for i, record in enumerate(data["records"]):
            record["variant"] = strings[i % len(strings)][:MAX_NAME]
        data["environment"]["cpu"]["model"] = strings[-1]
        (folder / f"{name}.json").write_text(json.dumps(data))
    found = history.build([folder])
    for item in history_render.rich_tables(found, color=True):
        assert_inert_text(rich_text(item, color=True))
    assert_inert_text(history_render.render_table(found))
    assert_inert_markdown(history_render.render_markdown(found))


@pytest.mark.slow  # a page with its figures per example
@pytest.mark.filterwarnings("ignore:Glyph")  # matplotlib: a character its font lacks
@settings(FUZZ, max_examples=6)
@given(strings=st.lists(hostile_text, min_size=2, max_size=3))
def test_the_html_page_draws_hostile_labels(fixture_runs, strings):
    """The whole page, figures and all: matplotlib never reads a label as mathtext, and long
    labels are cut."""
    run = hostile_run(fixture_runs["amd"], strings, labels=True)
    page = html.render_report(make_report([collect.LoadedRun(Path("hostile.json"), run)]))
    assert_inert_text(page)
    body = page.split("<body>", 1)[1]
    for s in strings:
        if "<" in s:
            assert s not in body
