"""Hostile strings in run files and on the command line: what every command shows is inert.

A run file can say anything in its variant names, CPU model, commit, command line and error
messages. None of it may reach a terminal as an escape sequence, be read by rich as markup
(`[/x]` used to crash compare, parity, check and run), go live in a Markdown job summary (HTML,
images, links) or start a spreadsheet formula. Each case here was found by hand first; the
hostile files are the stored fixtures with their strings changed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BACKEND, FAKE_WORKER, ROOT, make_record, needs_backend, only_run, run_cli
from mnist_bench.analyse.rows import DEFAULT_BY, rows
from mnist_bench.core import escape
from mnist_bench.render import figures
from mnist_bench.runfile.records import pack_labels

FIXTURES = ROOT / "tests" / "fixtures"
REPORT, GATE = FIXTURES / "report", FIXTURES / "gate"
# Sets the terminal's title, clears the screen, reverses the text after it, and is rich markup,
# HTML, a Markdown image and link, and a spreadsheet formula.
HOSTILE = (
    "[/x][bold]\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e<img src=x onerror=alert(1)>"
    "![i](http://e.test/i.png)[l](http://e.test)<script>x</script>"
)
FORMULA = '=HYPERLINK("http://e.test")\x1b[2J[/e]\nsecond line'
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # \t, \n allowed


def hostile(source: Path, target: Path, prefix: str = HOSTILE, labels: bool = False) -> Path:
    """`source` with every variant name prefixed by `prefix`, and a hostile CPU model, commit,
    command line and error; with `labels`, predicted labels made from each confusion matrix
    (rows in order), so that `parity` has something to compare."""
    data = json.loads(source.read_text())
    env = data["environment"]
    env["cpu"]["model"] = prefix + " CPU"
    env["git"]["commit"] = "\x1b]0;commit\x07[/c]" + str(env["git"]["commit"])
    env["command"] = "mnist-bench run \x1b[2J[/cmd]"
    for record in data["records"]:
        record["variant"] = prefix + record["variant"]
        if record["status"] != "ok":
            record["error"] = FORMULA
        if labels and record.get("confusion_matrix"):
            matrix = record["confusion_matrix"]
            predicted = [j for row in matrix for j, n in enumerate(row) for _ in range(n)]
            record["predicted_labels"] = pack_labels(predicted)
    target.write_text(json.dumps(data))
    return target


def assert_inert_text(text: str) -> None:
    """Terminal or text-file output: no control character but line breaks, no bidi override."""
    assert not RAW.search(text), repr(RAW.search(text))


def assert_inert_markdown(text: str) -> None:
    """No HTML, no image, no link (a `](` or `][` not escaped)."""
    assert_inert_text(text)
    assert "<" not in text and "![" not in text, text
    assert not re.search(r"(?<!\\)\][(\[]", text), text


# ------------------------------------------------------------------------ the escaping itself
def test_terminal_text_by_hand():
    assert escape.terminal("two-dense") == "two-dense"
    assert escape.terminal("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert escape.terminal("a\r\nb\tc") == "a b c"  # a carriage return cannot overwrite
    assert escape.terminal("\x9b2J\u202eab\u2066") == "\\x9b2J\\u202eab\\u2066"
    assert escape.terminal(Path("x[/y]")) == "x[/y]"
    assert escape.terminal("ü · ±, 日本") == "ü · ±, 日本"
    text = escape.text("[/x][bold]:smile:")
    assert text.plain == "[/x][bold]:smile:" and not text.spans
    assert escape.message("a\x1b\nb").plain == "a\\x1b\nb"


def test_markdown_cell_by_hand():
    assert escape.markdown("two-dense [epochs=5]") == "two-dense [epochs=5]"
    assert escape.markdown("a|b\nc") == "a\\|b c"
    assert escape.markdown("<img src=x>") == "&lt;img src=x&gt;"
    assert escape.markdown("&lt;") == "&amp;lt;"
    assert escape.markdown("![i](http://e)") == "!\\[i\\](http:\\/\\/e)"
    assert escape.markdown("[a][b] www.e.test") == "[a\\][b] www\\.e.test"
    assert escape.markdown("x\\|y") == "x\\\\\\|y"  # the text's backslash cannot free the pipe


def test_csv_cell_neutralises_formulas_not_numbers():
    for formula in ("=1+1", "+1+2", "-1+2", "@SUM(A1)", '=HYPERLINK("x")', "-x"):
        assert escape.csv_cell(formula) == "'" + formula
    assert escape.csv_cell("\t=1") == "' =1"
    assert escape.csv_cell("a\x1bb") == "a\\x1bb"
    for number in ("-5", "+1.5", "-1e-3", "-.5", "2"):
        assert escape.csv_cell(number) == number
    for value in (-5, -0.25, float("-inf"), True, None):
        assert escape.csv_cell(value) is value


def test_figure_labels_are_short_and_never_mathtext():
    assert escape.shorten("x" * 100) == "x" * 59 + "…"
    assert escape.shorten("short") == "short"
    assert escape.shorten("\x1b" * 100, 10) == "\\x1b\\x1b\\…"  # 9 characters and …
    assert escape.figure_label("$\\frac{1}{0}$") == "\\$\\frac{1}{0}\\$"


# --------------------------------------------------------------------------------- report
@pytest.fixture(scope="module")
def evil_intel(tmp_path_factory) -> Path:
    return hostile(REPORT / "intel-jax.json", tmp_path_factory.mktemp("evil") / "intel.json")


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_report_formats_show_hostile_strings_inert(evil_intel, fmt):
    out = run_cli("report", str(evil_intel), "--format", fmt)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert_inert_text(out.stdout)
    assert "[/x][bold]" in out.stdout.replace("\\[", "[").replace("\\]", "]")  # shown, not read
    if fmt == "markdown":
        assert_inert_markdown(out.stdout)
    if fmt == "csv":
        lines = list(csv.DictReader(io.StringIO(out.stdout)))
        assert len(lines) == 4  # three configurations, one failed record
        failed = next(line for line in lines if line["status"] == "failed")
        assert failed["error"] == '\'=HYPERLINK("http://e.test")\\x1b[2J[/e] second line'
        for line in lines:
            assert not any(str(v).startswith(("=", "+", "@")) for v in line.values())


def test_report_machine_column_and_html_are_inert(evil_intel, tmp_path):
    out = run_cli(
        "report", str(evil_intel), "--group-by", "variant,machine", "--format", "markdown"
    )
    assert out.returncode == 0, out.stderr
    assert_inert_markdown(out.stdout)
    page = tmp_path / "report.html"
    out = run_cli("report", str(evil_intel), "--format", "html", "-o", str(page))
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert_inert_text(html)
    assert "<img src=x" not in html and "<script>x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


# ------------------------------------------------------------- compare, check, parity, history
def _gate(tmp_path: Path, prefix: str) -> dict[str, Path]:
    folder = tmp_path / ("evil" if prefix else "benign")
    folder.mkdir()
    return {n: hostile(GATE / f"{n}.json", folder / f"{n}.json", prefix) for n in GATE_FILES}


GATE_FILES = ("baseline", "aa", "regressed")


@pytest.mark.parametrize(
    "command",
    [
        ("compare", "{baseline}", "{aa}"),
        ("compare", "{baseline}", "{regressed}", "--format", "markdown"),
        ("check", "{aa}", "--baseline", "{baseline}"),
        ("check", "{regressed}", "--baseline", "{baseline}"),  # fails: a regression
        ("check", "{regressed}", "--baseline", "{baseline}", "--format", "markdown"),
        ("history", "{baseline}", "{aa}", "{regressed}"),
        ("history", "{baseline}", "{aa}", "{regressed}", "--format", "markdown"),
    ],
    ids=lambda c: " ".join(c).replace("{", "").replace("}", ""),
)
def test_markup_in_variant_names_changes_no_exit_code(tmp_path, command):
    """A variant named `[/x]...` is shown as it is; the command ends as for a benign name."""
    ends = {}
    for prefix in ("", HOSTILE):
        files = {k: str(v) for k, v in _gate(tmp_path, prefix).items()}
        out = run_cli(*(part.format(**files) for part in command))
        assert "Traceback" not in out.stderr, out.stderr
        assert_inert_text(out.stdout + out.stderr)
        if "markdown" in command:
            assert_inert_markdown(out.stdout)
        ends[prefix] = (out.returncode, len(out.stdout.splitlines()) > 3)
    assert ends[HOSTILE] == ends[""]


def test_parity_with_markup_in_variant_names(tmp_path):
    ends = {}
    for prefix in ("", HOSTILE):
        run = hostile(
            REPORT / "amd-jax-torch.json", tmp_path / f"p{len(prefix)}.json", prefix, True
        )
        for fmt in ("table", "markdown"):
            out = run_cli("parity", str(run), "--format", fmt)
            assert "Traceback" not in out.stderr, out.stderr
            assert_inert_text(out.stdout + out.stderr)
            if fmt == "markdown":
                assert_inert_markdown(out.stdout)
            ends[prefix, fmt] = out.returncode
    assert set(ends.values()) == {0}


# ------------------------------------------------------------------- run, paths, error lines
@needs_backend
def test_run_into_a_results_dir_named_like_markup(tmp_path):
    """`run --results-dir 'x[/y]'` crashed after creating its run file (left `running`). The
    fake worker: the driver's printing is tested, not the training."""
    folder = tmp_path / "x[/y]"
    out = run_cli(
        "run", "-b", BACKEND, "-v", "single-dense", "--epochs", "1", "--train-limit", "600",
        "--test-limit", "300", "--results-dir", str(folder), "--no-figures", env=FAKE_WORKER,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run = only_run(folder)
    assert run.status == "complete" and [r.status for r in run.records] == ["ok"]
    assert f"results: {folder}/" in out.stdout


def test_an_error_naming_a_hostile_path_is_one_inert_line(tmp_path):
    path = tmp_path / "a\x1b]0;t\x07\nb[/x].json"
    for command in (("report", str(path)), ("compare", str(path), str(path))):
        out = run_cli(*command)
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and "a\\x1b]0;t\\x07 b[/x].json" in out.stderr
        assert_inert_text(out.stderr)


# ------------------------------------------------------------------------------- html limits
def _strip_figure_data(record: dict) -> dict:
    for key in ("confusion_matrix", "misclassified", "accuracy_curve", "loss_curve"):
        record.pop(key, None)
    record["latency_ms"] = None
    return record


def test_html_report_of_49_configurations(tmp_path):
    """Past 48 variants the scatter plot ran out of markers (KeyError)."""
    data = json.loads((REPORT / "intel-jax.json").read_text())
    first = next(r for r in data["records"] if r["status"] == "ok")
    data["records"] = [
        _strip_figure_data({**first, "variant": f"v{i}", "seed": 0}) for i in range(49)
    ]
    source = tmp_path / "many.json"
    source.write_text(json.dumps(data))
    page = tmp_path / "many.html"
    out = run_cli("report", str(source), "--format", "html", "-o", str(page))
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert all(f"<td>v{i}</td>" in html for i in range(49))


def test_a_confusion_matrix_past_the_cap_is_not_drawn(tmp_path):
    """400 classes took minutes and 1000 ran out of memory: past `MAX_CLASSES` the page says
    it is not drawn."""
    data = json.loads((REPORT / "intel-jax.json").read_text())
    size = figures.MAX_CLASSES + 1
    for record in data["records"]:
        _strip_figure_data(record)
    record = next(r for r in data["records"] if r["status"] == "ok")
    record["confusion_matrix"] = [[int(i == j) for j in range(size)] for i in range(size)]
    record["test_samples"] = size
    data["environment"]["dataset"]["class_names"] = [str(i) for i in range(size)]
    source = tmp_path / "classes.json"
    source.write_text(json.dumps(data))
    page = tmp_path / "classes.html"
    out = run_cli("report", str(source), "--format", "html", "-o", str(page))
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert "1 confusion matrix of more than 100 classes not drawn (MNIST has 10)." in html
    assert 'alt="confusion matrix:' not in html


def test_figure_labels_are_capped():
    """A 2 MB variant name took 100 s to draw (run files now cap names at 255 characters, and
    figure labels are cut at LABEL_LIMIT); the table keeps the name."""
    long = "x" * 255
    records = [
        make_record(long, train_seconds=2.0, test_accuracy=0.9, train_samples_per_second=10.0,
                    infer_samples_per_second=20.0),
        make_record("$\\frac{$", train_seconds=3.0, test_accuracy=0.8,
                    train_samples_per_second=10.0, infer_samples_per_second=20.0),
    ]  # fmt: skip
    all_rows = rows(records)
    for fig in (
        figures.accuracy_vs_time(all_rows, DEFAULT_BY),
        figures.throughput_bars(all_rows, DEFAULT_BY),
    ):
        figures.png(fig)  # draws: no mathtext error
        texts = [t.get_text() for t in fig.findobj(match=lambda a: hasattr(a, "get_text"))]
        assert texts and max(map(len, texts)) <= escape.LABEL_LIMIT * 2
        assert "x" * 59 + "…" in texts


def test_ctrl_c_during_an_html_report_exits_130_and_writes_nothing(tmp_path):
    page = tmp_path / "report.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_bench", "report", str(REPORT / "amd-jax-torch.json"),
         "--format", "html", "-o", str(page)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 300
    while "matplotlib" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # interrupt it while it draws
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err == "mnist-bench report: interrupted\n" and out == ""
    assert list(tmp_path.iterdir()) == []
