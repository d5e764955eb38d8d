"""`mnist-bench report` on stored run files: every format, grouping, bad files, no framework.

Fixtures (tests/fixtures/report/): `amd-jax-torch.json` is a real run (jax and torch; single-dense,
two-dense, cnn; seeds 0 and 1) without its misclassified digits; `intel-jax.json` is the same run's
jax records from another machine, twice as fast, with two-dense seed 0 contended, cnn seed 1
failed, and a determinism repeat of single-dense seed 0 (accuracy 0.5) that must not count.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
from pathlib import Path

import pytest
from conftest import ROOT, cli_importing_none_of, run_cli
from mnist_bench import cli
from mnist_bench.analyse import report as report_cmd
from mnist_bench.analyse.rows import DEFAULT_BY
from mnist_bench.render import formats, table

FIXTURES = ROOT / "tests" / "fixtures" / "report"
AMD, INTEL = FIXTURES / "amd-jax-torch.json", FIXTURES / "intel-jax.json"
AMD_LABEL = "AMD EPYC [fe8fc6]"
INTEL_LABEL = "Intel Xeon Platinum 8375C @ 2.90GHz [5e1b2d]"
FRAMEWORKS = ("tensorflow", "jax", "torch", "keras")
T_975_1 = 12.706204736174694  # Student t, 97.5% quantile, 1 degree of freedom


def report(*args: str, capsys) -> tuple[int, str, str]:
    """`mnist-bench report ARGS` in this process (the CLI's own entry point)."""
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of a GitHub table (its legend, after a blank line, left out); checks the header
    rule on the way."""
    lines = text.strip().split("\n\n")[0].splitlines()
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines), text
    cells = [[c.strip() for c in line[2:-2].split(" | ")] for line in lines]
    assert all(set(c) <= set("-:") for c in cells[1]), lines[1]
    assert len({len(c) for c in cells}) == 1, "ragged table"
    return [cells[0], *cells[2:]]


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    text = AMD.read_text()
    newer = json.loads(text) | {"schema_version": 99}
    files = {
        "malformed JSON": ("malformed.json", "{not json"),
        "newer than this mnist-bench": ("newer.json", json.dumps(newer)),
        "truncated": ("truncated.json", text[: len(text) // 2]),
    }
    for name, content in files.values():
        (tmp_path / name).write_text(content)
    return {reason: tmp_path / name for reason, (name, _) in files.items()}


# ------------------------------------------------------------------------------- every format
def test_table_is_plain_ascii_when_piped():
    out = run_cli("report", str(AMD), str(INTEL))
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith("+--")
    for text in (
        "single-dense",
        "torch",
        "0.7010 ± 0.1906",  # seeds 0 and 1, each run on both machines: 2 seeds, not 4
        "2 (4 runs)",
        "ok (contended)",
        "failed: worker exited with signal 9",
    ):
        assert text in out.stdout
    assert "\x1b[" not in out.stdout


def test_markdown_group_by_machine_imports_no_framework():
    """Through the CLI's entry point in a fresh process, which then must hold no framework and
    no matplotlib."""
    by = "variant,backend,machine"
    args = ["report", str(FIXTURES), "--format", "markdown", "--group-by", by]
    out = cli_importing_none_of((*FRAMEWORKS, "matplotlib", "seaborn"), *args)
    header, *body = markdown_rows(out.stdout)
    assert " | ".join(header) == (
        "variant | backend | machine | seeds | test accuracy | train s | train samples/s | "
        "infer samples/s | MFU % | status"
    )
    assert len(body) == 10  # 6 on AMD, 3 ok + 1 failed on Intel
    assert {row[2] for row in body} == {AMD_LABEL, INTEL_LABEL}
    intel_single = next(r for r in body if r[:3] == ["single-dense", "jax", INTEL_LABEL])
    assert intel_single[3] == "2"  # the determinism repeat is not a third seed
    assert intel_single[4] == "0.7010 ± 0.1906"  # 0.716, 0.686: not the repeat's 0.5


def test_csv_means_by_hand(capsys):
    code, out, err = report(str(AMD), str(INTEL), "--format", "csv", capsys=capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 7  # 3 variants x 2 backends, and the failed cnn record
    by = {(r["variant"], r["backend"], r["status"]): r for r in rows}

    torch_single = by["single-dense", "torch", "ok"]  # 0.712, 0.702
    assert torch_single["n"] == "2"
    assert float(torch_single["test_accuracy_mean"]) == pytest.approx(0.707)
    assert float(torch_single["test_accuracy_std"]) == pytest.approx(0.01 / 2**0.5)
    half = T_975_1 * 0.01 / 2**0.5 / 2**0.5
    assert float(torch_single["test_accuracy_ci_low"]) == pytest.approx(0.707 - half)
    assert float(torch_single["test_accuracy_ci_high"]) == pytest.approx(0.707 + half)

    jax_single = by["single-dense", "jax", "ok"]  # seeds 0, 1 on both machines, repeat left out
    assert jax_single["n"] == "2" and jax_single["runs"] == "4"  # a seed run twice is one sample
    assert float(jax_single["test_accuracy_mean"]) == pytest.approx((0.716 + 0.686) / 2)
    amd_seconds = 1.0935702140013746 + 0.9527427920002083  # the Intel copy took half as long
    assert float(jax_single["train_seconds_mean"]) == pytest.approx(amd_seconds * 1.5 / 4)

    jax_cnn = by["cnn", "jax", "ok"]  # seed 0: 0.66 (AMD), 0.66 (Intel); seed 1: 0.668 (AMD)
    assert jax_cnn["n"] == "2" and jax_cnn["runs"] == "3"
    assert float(jax_cnn["test_accuracy_mean"]) == pytest.approx((0.66 + 0.668) / 2)
    failed = by["cnn", "jax", "failed"]
    assert failed["n"] == "1" and "signal 9" in failed["error"]
    assert failed["test_accuracy_mean"] == ""
    assert by["two-dense", "jax", "ok"]["contended"] == "True"
    assert by["two-dense", "torch", "ok"]["contended"] == "False"


def test_html_is_one_file_with_every_plot(tmp_path):
    """Grouped by backend (two rows, so two confusion matrices) to keep the test quick."""
    page = tmp_path / "report.html"
    args = ("--format", "html", "--output", str(page), "--group-by", "backend")
    out = run_cli("report", str(AMD), str(INTEL), *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and sorted(tmp_path.iterdir()) == [page]
    text = page.read_text()
    prefix = '<img src="data:image/png;base64,'
    images = [chunk.split('"', 1)[0] for chunk in text.split(prefix)[1:]]
    # scatter, throughput, curves (one figure: the rows merge variants), latency, MFU, and one
    # confusion matrix per ok row
    assert len(images) == 5 + 2
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    kinds = ("accuracy against training time", "training and inference throughput")
    for alt in (*kinds, "confusion matrix: jax, accuracy", "confusion matrix: torch, accuracy"):
        assert f'alt="{alt}' in text
    assert "<table>" in text and INTEL_LABEL in text and "worker exited with signal 9" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("reason", ["malformed JSON", "newer than this mnist-bench", "truncated"])
def test_bad_file_is_one_line_exit_2(bad_files, reason):
    bad = bad_files[reason]
    out = run_cli("report", str(AMD), str(bad), "--format", "markdown")
    assert out.returncode == 2
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert str(bad) in out.stderr and "--skip-bad" in out.stderr
    if reason != "truncated":
        assert reason in out.stderr


def test_skip_bad_warns_and_goes_on(bad_files, capsys):
    args = (str(AMD), *map(str, bad_files.values()), "--format", "markdown", "--skip-bad")
    code, out, err = report(*args, capsys=capsys)
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert len(warnings) == 3
    for path, line in zip(bad_files.values(), warnings, strict=True):
        assert line.startswith(f"mnist-bench report: warning: skipped {path}: ")
    assert len(markdown_rows(out)) == 1 + 6


def test_only_bad_files_is_exit_2_even_with_skip_bad(bad_files, capsys):
    code, out, err = report(str(bad_files["truncated"]), "--skip-bad", capsys=capsys)
    assert code == 2 and out == ""
    assert "no usable run files" in err.splitlines()[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--group-by", "variant,colour"), "unknown --group-by key 'colour'; valid: variant,"),
        (("--raw",), "--raw goes with --format csv"),
        (("--output", "/no/such/folder/r.md", "--format", "markdown"), "/no/such/folder/r.md"),
    ],
)
def test_bad_options_are_one_line(capsys, args, message):
    code, out, err = report(str(AMD), *args, capsys=capsys)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_path_is_named(capsys):
    code, _, err = report(str(AMD), "/no/such/run.json", capsys=capsys)
    assert code == 2 and "/no/such/run.json: no such file or folder" in err


# ------------------------------------------------------------------------ grouping, in-process
def test_output_file_is_written_whole(tmp_path, capsys):
    target = tmp_path / "results.md"
    code, out, err = report(str(AMD), "--format", "markdown", "-o", str(target), capsys=capsys)
    assert code == 0 and out == "" and str(target) in err
    assert len(markdown_rows(target.read_text())) == 1 + 6
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary left behind


def test_same_run_twice_counts_once(tmp_path):
    copy = tmp_path / "copy.json"
    copy.write_text(AMD.read_text())
    warnings: list[str] = []
    built = report_cmd.build([str(AMD), str(copy)], by=DEFAULT_BY, warn=warnings.append)
    assert len(built.runs) == 1 and len(built.rows) == 6
    assert all(len(row.records) == 2 for row in built.rows)
    assert warnings == [f"skipped {copy}: same run id as {AMD}"]


def test_group_by_backend_merges_variants():
    built = report_cmd.build([str(AMD), str(INTEL)], by=("backend",))
    ok = [r for r in built.rows if r.status == "ok"]
    assert [(r.backend, len(r.records)) for r in ok] == [("jax", 11), ("torch", 6)]
    assert ok[0].variant == "single-dense, two-dense, cnn" and ok[0].contended


def test_group_by_machine_rows_carry_labels():
    built = report_cmd.build([str(AMD), str(INTEL)], by=("machine",))
    assert [(r.machine, len(r.records), r.status) for r in built.rows] == [
        (AMD_LABEL, 12, "ok"),
        (INTEL_LABEL, 5, "ok"),
        (INTEL_LABEL, 1, "failed"),
    ]


def test_raw_csv_has_every_record(capsys):
    code, out, _ = report(str(AMD), str(INTEL), "--format", "csv", "--raw", capsys=capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12 + 7
    assert {r["machine"] for r in rows} == {AMD_LABEL, INTEL_LABEL}
    assert [r["repeat"] for r in rows].count("1") == 1


def test_run_table_is_unchanged_by_default():
    """`records_table(records, title=..., color=...)`, as `run` calls it, keeps its columns."""
    records = report_cmd.build([str(AMD)], by=DEFAULT_BY).runs[0].run.records
    t = table.records_table(records, title="run", color=False)
    assert [c.header for c in t.columns] == [
        "variant",
        "backend",
        "device",
        "seeds",
        "test accuracy",
        "train s",
        "train samples/s",
        "infer samples/s",
        "MFU %",  # the records have it
        "status",
    ]
    assert t.row_count == 6


def test_format_choices_are_the_registry():
    """`--format` offers exactly the registered formats, and each one's renderer imports."""
    from mnist_bench.commands.report import add_report

    parser = argparse.ArgumentParser()
    add_report(parser)
    (option,) = [a for a in parser._actions if "--format" in a.option_strings]
    assert list(option.choices) == list(formats.FORMATS) == ["table", "markdown", "csv", "html"]
    for fmt in formats.FORMATS.values():
        assert callable(fmt.renderer())
        assert not fmt.raw or callable(fmt.renderer(raw=True))
