"""`mnist-bench compare` and `check` go through the API (`mnist_bench.compare`, `check`, `load`):
the API's `warn=` takes the warnings the commands print (`warning: ...`) and put in their JSON,
`check` names paths it was given in its errors as the command does, and the command's rows
are the API's rows rendered. Stored fixtures only."""

from __future__ import annotations

import json
import shutil

import mnist_bench
import pytest
from conftest import ROOT
from mnist_bench import cli
from mnist_bench.commands import compare as compare_cmd

FIXTURES = ROOT / "tests" / "fixtures"
GATE = FIXTURES / "gate"
AMD = FIXTURES / "report" / "amd-jax-torch.json"
INTEL = FIXTURES / "report" / "intel-jax.json"


def copies(tmp_path, source):
    """A folder with two copies of `source`: the second is dropped with a warning."""
    folder = tmp_path / "copies"
    folder.mkdir()
    for name in ("a.json", "b.json"):
        shutil.copyfile(source, folder / name)
    return folder, f"skipped {folder / 'b.json'}: same run id as {folder / 'a.json'}"


def test_warnings_go_where_warn_says_and_nowhere_else(tmp_path, capsys):
    folder, said = copies(tmp_path, GATE / "regressed.json")
    for call in (
        lambda warn: mnist_bench.load(folder, warn=warn),
        lambda warn: mnist_bench.compare(GATE / "baseline.json", folder, warn=warn),
        lambda warn: mnist_bench.check(folder, GATE / "baseline.json", warn=warn),
    ):
        warnings: list[str] = []
        call(warnings.append)
        assert warnings == [said]
        assert capsys.readouterr().err == ""
    mnist_bench.compare(GATE / "baseline.json", folder)  # by default: standard error
    assert capsys.readouterr().err == f"mnist-bench: warning: {said}\n"


@pytest.mark.parametrize("warn", ["stderr", 3])
def test_warn_must_be_a_function(warn):
    with pytest.raises(mnist_bench.Error, match="warn must be a function of one message"):
        mnist_bench.compare(GATE / "baseline.json", GATE / "regressed.json", warn=warn)


def test_the_commands_print_and_report_the_apis_warnings(tmp_path, capsys):
    folder, said = copies(tmp_path, GATE / "regressed.json")
    for args in (
        ["compare", str(GATE / "baseline.json"), str(folder)],
        ["check", str(folder), "--baseline", str(GATE / "baseline.json")],
    ):
        code = cli.main([*args, "--format", "json"])
        out = capsys.readouterr()
        assert code == (1 if args[0] == "check" else 0)
        assert out.err.splitlines()[0] == f"warning: {said}"
        assert json.loads(out.out)["warnings"] == [said]


def test_check_names_the_paths_it_was_given_as_the_command_does(capsys):
    with pytest.raises(mnist_bench.Error) as caught:
        mnist_bench.check(GATE / "baseline.json", GATE / "baseline.json")
    assert str(caught.value).startswith(f"{GATE / 'baseline.json'} and {GATE / 'baseline.json'}")
    loaded = mnist_bench.load(GATE / "baseline.json")
    with pytest.raises(mnist_bench.Error, match="^the results and the baseline hold the same"):
        mnist_bench.check(loaded, loaded)
    code = cli.main(
        ["check", str(GATE / "baseline.json"), "--baseline", str(GATE / "baseline.json")]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"error: {GATE / 'baseline.json'} and {GATE / 'baseline.json'}" in err


def test_check_reads_the_baseline_first():
    """Both bad: the baseline's error, as `mnist-bench check` has always said."""
    with pytest.raises(mnist_bench.Error, match=r"^nope\.json: no such file"):
        mnist_bench.check(ROOT / "README.md", "nope.json")


def test_the_api_names_the_commands_flags_within_the_command(capsys):
    code = cli.main(["compare", str(AMD), str(INTEL), "--accuracy-tolerance", "2"])
    assert code == 2 and "--accuracy-tolerance must be a finite number" in capsys.readouterr().err
    with pytest.raises(mnist_bench.Error, match="^accuracy_tolerance must be a finite number"):
        mnist_bench.compare(AMD, INTEL, accuracy_tolerance=2)
    code = cli.main(["check", str(INTEL), "--baseline", str(AMD), "--max-slowdown", "2"])
    assert code == 2 and "--max-slowdown must be a finite number" in capsys.readouterr().err


def test_the_commands_rows_are_the_apis_rows(capsys):
    comparison = mnist_bench.compare(AMD, INTEL, match_on=["variant", "backend"])
    code = cli.main(["compare", str(AMD), str(INTEL), "--match-on", "variant,backend",
                     "--format", "json"])  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert code == 0 and rows == json.loads(
        json.dumps([compare_cmd.row_dict(row) for row in comparison])
    )
    assert len(rows) == len(comparison) > 0


def test_the_help_names_the_metrics_compare_judges():
    from mnist_bench.analyse import compare

    assert compare_cmd.METRICS is compare.METRICS
