"""`mnist_bench.report / history / parity / export / merge`: each returns its typed object with
`to_pandas()`, holds its keywords to the command's rules (one-line `Error`s naming the keyword),
and the command's output is the API's object rendered. One loader under every reader: the same
duplicate and bad-file handling everywhere. Stored fixtures and made-up run files only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mnist_bench
import pytest
from conftest import ROOT
from mnist_bench import cli
from mnist_bench.analyse.history import History
from mnist_bench.analyse.parity import Parity
from mnist_bench.analyse.report import Report
from mnist_bench.execute.merge import Merged
from mnist_bench.publish.export import Export
from mnist_bench.render import formats
from mnist_bench.render import history as history_render
from mnist_bench.render import parity as parity_render
from mnist_bench.runfile.records import load_run
from test_history import write_series
from test_shards import write_shards

FIXTURES = ROOT / "tests" / "fixtures"
AMD = FIXTURES / "report" / "amd-jax-torch.json"
INTEL = FIXTURES / "report" / "intel-jax.json"
GATE = FIXTURES / "gate"
PUBLISHED = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "default.json"


def command(capsys, *args: str) -> tuple[int, str, str]:
    """`mnist-bench ARGS` in this process (the CLI's own entry point)."""
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def copy_of(source: Path, folder: Path) -> Path:
    """A second copy of one run (the same run id) under another name."""
    folder.mkdir(exist_ok=True)
    target = folder / f"copy-of-{source.name}"
    shutil.copyfile(source, target)
    return target


# ------------------------------------------------------------------------------- report
def test_report_returns_the_report_the_command_renders(capsys):
    report = mnist_bench.report([AMD, INTEL], by="variant,machine")
    assert isinstance(report, Report) and report.by == ("variant", "machine")
    assert len(report.runs) == 2 and report.rows
    for fmt in ("markdown", "csv"):
        code, out, err = command(capsys, "report", str(AMD), str(INTEL), "--group-by",
                                 "variant,machine", "--format", fmt)  # fmt: skip
        assert code == 0, err
        assert out == formats.render(report, fmt)


def test_report_to_pandas_one_row_per_report_row_or_per_record():
    report = mnist_bench.report(str(AMD), by=["variant", "backend"])
    df = report.to_pandas()
    assert len(df) == len(report.rows)
    assert {"variant", "backend", "seeds", "test_accuracy", "test_accuracy_ci95", "epochs"} <= set(
        df.columns
    )
    row = report.rows[0]
    assert df.loc[0, "test_accuracy"] == pytest.approx(row.summary("test_accuracy").mean)
    raw = report.to_pandas(raw=True)
    assert len(raw) == sum(len(loaded.run.records) for loaded in report.runs)
    assert set(raw["machine"]) == {"AMD EPYC [fe8fc6]"}
    assert set(raw["run_id"]) == {report.runs[0].run.run_id}


# ------------------------------------------------------------------------------ history
def test_history_returns_the_history_the_command_renders(tmp_path, capsys):
    folder = write_series(tmp_path / "runs", accuracy_at=(8, -0.005))
    history = mnist_bench.history(folder, alpha=0.01)
    assert isinstance(history, History) and len(history.commits) == 12
    code, out, err = command(capsys, "history", str(folder), "--format", "markdown")
    assert code == 0, err
    assert out == history_render.FORMATS["markdown"](history)


def test_history_to_pandas_one_row_per_series_metric_and_commit(tmp_path):
    history = mnist_bench.history(write_series(tmp_path / "runs", accuracy_at=(8, -0.005)))
    df = history.to_pandas()
    points = sum(len(t.points) for s in history.series for t in s.trends)
    assert len(df) == points and set(df["metric"]) == {"test_accuracy", "steady_epoch_seconds"}
    stepped = df[df["step"].notna()]
    (series, trend, step) = history.steps()[0]
    assert list(stepped["metric"]) == [trend.metric.name]
    assert stepped.iloc[0]["commit_label"] == trend.commit_of(step).label
    assert stepped.iloc[0]["step"] == step.p_value


# ------------------------------------------------------------------------------- parity
def test_parity_returns_the_pairs_the_command_renders(capsys):
    parity = mnist_bench.parity(PUBLISHED)
    assert isinstance(parity, Parity) and parity.groups
    code, out, err = command(capsys, "parity", str(PUBLISHED), "--format", "markdown")
    assert code == 0, err
    assert out == parity_render.FORMATS["markdown"](parity)
    df = parity.to_pandas()
    pairs = [p for g in parity.groups for p in g.pairs]
    assert len(df) == len(pairs)
    assert list(df["mean"]) == pytest.approx([p.mean for p in pairs])
    assert list(zip(df["a"], df["b"], strict=True)) == [(p.a, p.b) for p in pairs]


# ------------------------------------------------------------------------------- export
@pytest.mark.parametrize(
    "to, flags", [("bencher", ()), ("github-action-benchmark", ("--direction", "smaller"))]
)
def test_export_returns_the_data_the_command_writes(capsys, to, flags):
    direction = flags[1] if flags else None
    exported = mnist_bench.export(AMD, to=to, direction=direction)
    assert isinstance(exported, Export) and exported.to == to
    code, out, err = command(capsys, "export", str(AMD), "--to", to, *flags)
    assert code == 0, err
    assert out == exported.to_json() and json.loads(out) == exported.data


def test_export_to_pandas_one_row_per_configuration_and_metric():
    exported = mnist_bench.export([AMD], to="bencher", metrics="test_accuracy,train_seconds")
    df = exported.to_pandas()
    assert set(df["metric"]) == {"test_accuracy", "train_seconds"}
    assert len(df) == exported.count
    first = df[df["metric"] == "test_accuracy"].iloc[0]
    assert first["unit"] == "%"
    assert exported.data[first["name"]]["test-accuracy"]["value"] == first["value"]


# -------------------------------------------------------------------------------- merge
def test_merge_returns_the_run_the_command_writes(tmp_path, capsys):
    write_shards(tmp_path / "shards", 2)
    merged = mnist_bench.merge(tmp_path / "shards", output=tmp_path / "api.json")
    assert isinstance(merged, Merged) and merged.path == tmp_path / "api.json"
    assert not merged.missing and merged.run.status == "complete"
    assert load_run(merged.path).run_id == merged.run.run_id
    code, _, err = command(capsys, "merge", str(tmp_path / "shards"), "-o",
                           str(tmp_path / "cli.json"))  # fmt: skip
    assert code == 0, err
    written = load_run(tmp_path / "cli.json").to_dict()
    ours = merged.run.to_dict()
    for made_now in ("run_id", "finished_utc"):
        written.pop(made_now), ours.pop(made_now)
    assert written == ours
    df = merged.to_pandas()
    assert len(df) == len(merged.run.records) == 4  # two variants, two seeds


def test_merge_without_output_or_with_missing_jobs_writes_nothing(tmp_path):
    write_shards(tmp_path / "shards", 2, drop={(2, 1)})
    merged = mnist_bench.merge(tmp_path / "shards", output=tmp_path / "m.json")
    assert merged.missing and merged.path is None and not (tmp_path / "m.json").exists()
    kept = mnist_bench.merge(tmp_path / "shards", output=tmp_path / "m.json", allow_missing=True)
    assert kept.path == tmp_path / "m.json" and load_run(kept.path).status == "interrupted"
    assert mnist_bench.merge(tmp_path / "shards").path is None
    with pytest.raises(mnist_bench.Error, match=r"it exists; pass force=True to replace it\)$"):
        mnist_bench.merge(tmp_path / "shards", output=tmp_path / "m.json", allow_missing=True)
    with pytest.raises(mnist_bench.Error, match="one of the files this command reads"):
        mnist_bench.merge(tmp_path / "shards", output=tmp_path / "shards" / "shard-1.json",
                          force=True)  # fmt: skip


# ------------------------------------------------------------------------- bad keywords
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mnist_bench.report(AMD, by="colour"), "unknown by key 'colour'"),
        (lambda: mnist_bench.report(AMD, by=5), "by must be group keys"),
        (lambda: mnist_bench.report(AMD, skip_bad="yes"), "skip_bad"),
        (lambda: mnist_bench.report(AMD, warn="stderr"), "warn must be a function"),
        (lambda: mnist_bench.report([]), "paths: no path given"),
        (lambda: mnist_bench.history(AMD, alpha=2), "alpha 2 is not between 0 and 1"),
        (lambda: mnist_bench.history(AMD, alpha="low"), "alpha"),
        (lambda: mnist_bench.parity(AMD, skip_bad=1), "skip_bad"),
        (lambda: mnist_bench.export(AMD, to="csv"), "unknown to 'csv'"),
        (lambda: mnist_bench.export(AMD, to="mlflow"), "mnist-bench export --to mlflow"),
        (
            lambda: mnist_bench.export(AMD, to="bencher", direction="smaller"),
            "direction goes with github-action-benchmark",
        ),
        (lambda: mnist_bench.export(AMD, to="bencher", metrics="speed"), "unknown metric 'speed'"),
        (lambda: mnist_bench.export(AMD, to="bencher", metrics=[3]), "metrics must be metric"),
        (
            lambda: mnist_bench.export(AMD, to="github-action-benchmark", metrics="test_loss"),
            "export it with direction smaller",
        ),
        (lambda: mnist_bench.merge(AMD, output="merged.txt"), "output merged.txt: name a .json"),
        (lambda: mnist_bench.merge(AMD, force="no"), "force"),
        (lambda: mnist_bench.merge(AMD), "not a shard's run file"),
    ],
)
def test_bad_keywords_raise_one_line_errors_naming_the_keyword(call, message):
    with pytest.raises(mnist_bench.Error) as caught:
        call()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_commands_still_name_their_flags(capsys):
    code, _, err = command(capsys, "report", str(AMD), "--group-by", "colour")
    assert code == 2 and "unknown --group-by key 'colour'" in err
    code, _, err = command(capsys, "export", str(AMD), "--to", "github-action-benchmark",
                           "--metric", "test_loss")  # fmt: skip
    assert code == 2 and "export it with --direction smaller" in err


# -------------------------------------------------------------------------- one loader
def test_every_reader_drops_a_second_copy_of_a_run_with_one_warning(tmp_path, capsys):
    copy = copy_of(PUBLISHED, tmp_path / "copies")
    said = f"skipped {copy}: same run id as {PUBLISHED}"
    for read in (mnist_bench.report, mnist_bench.history, mnist_bench.parity):
        warnings: list[str] = []
        got = read([PUBLISHED, copy], warn=warnings.append)
        assert [loaded.path for loaded in got.runs] == [PUBLISHED], read
        assert warnings == [said], read
    exported = mnist_bench.export([PUBLISHED, copy], to="bencher", warn=warnings.append)
    assert len(exported.report.runs) == 1 and said in warnings
    assert len(mnist_bench.load([PUBLISHED, copy]).runs) == 1
    assert capsys.readouterr().err == f"mnist-bench: warning: {said}\n"
    comparison = mnist_bench.compare([PUBLISHED, copy], PUBLISHED)
    assert all(len(row.new) == len(row.base) for row in comparison)
    capsys.readouterr()
    for name in ("report", "parity", "history"):
        code, _, err = command(capsys, name, str(PUBLISHED), str(copy))
        assert code == 0 and f"mnist-bench {name}: warning: {said}" in err, err
    shutil.copyfile(PUBLISHED, tmp_path / "copies" / "another.json")  # two copies in one folder
    code, _, err = command(capsys, "compare", str(PUBLISHED), str(tmp_path / "copies"))
    assert code == 0 and "warning: skipped" in err, err
    assert "same run id as" in err


def test_every_reader_handles_a_bad_file_alike(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for read in (mnist_bench.report, mnist_bench.history, mnist_bench.parity, mnist_bench.load):
        with pytest.raises(mnist_bench.Error, match=r"bad\.json.*\(pass skip_bad=True to skip"):
            read([PUBLISHED, bad])
        assert read([PUBLISHED, bad], skip_bad=True).runs[0].path == PUBLISHED
        assert f"mnist-bench: warning: skipped {bad}" in capsys.readouterr().err
    for name in ("report", "history", "parity", "export"):
        extra = ("--to", "bencher") if name == "export" else ()
        code, _, err = command(capsys, name, str(PUBLISHED), str(bad), *extra)
        assert code == 2 and "(pass --skip-bad to skip bad files)" in err, err
        code, _, err = command(capsys, name, str(PUBLISHED), str(bad), *extra, "--skip-bad")
        assert code == 0 and f"mnist-bench {name}: warning: skipped {bad}" in err, err


def test_a_run_history_cannot_order_is_a_bad_file_like_any_other(tmp_path):
    data = json.loads(AMD.read_text()) | {"started_utc": "yesterday"}
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(data))
    with pytest.raises(mnist_bench.Error, match=r"not an ISO 8601 time \(pass skip_bad=True"):
        mnist_bench.history([odd, INTEL])
    warnings: list[str] = []
    history = mnist_bench.history([odd, INTEL], skip_bad=True, warn=warnings.append)
    assert [loaded.path for loaded in history.runs] == [INTEL]
    assert warnings and warnings[0].startswith(f"skipped {odd}: started_utc")
