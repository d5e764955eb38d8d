"""The pooled accuracy rule of `check --pooled-alpha` (suites/gate.toml), and check's refusal of
records trained with an injected bug."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, make_record
from mnist_bench.analyse.compare import compare, gate
from mnist_bench.cli import main


def records(means: dict[str, float], seeds: range, sigma: float, rng) -> list:
    return [
        make_record(variant, seed=seed, test_accuracy=float(mean + rng.normal(0, sigma)))
        for variant, mean in means.items()
        for seed in seeds
    ]


MEANS = {"single-dense": 0.92, "two-dense": 0.955}


def fail_rate(drop: float, pooled_alpha: float | None, trials: int = 200) -> float:
    rng = np.random.default_rng(1)
    failed = 0
    for _ in range(trials):
        base = records(MEANS, range(0, 8), 0.0015, rng)
        new = records({k: v - drop for k, v in MEANS.items()}, range(8, 16), 0.0015, rng)
        failed += bool(gate(compare(base, new), pooled_alpha=pooled_alpha))
    return failed / trials


def test_pooled_rule_catches_half_a_point_and_rarely_fails_harmless_changes():
    assert fail_rate(0.005, pooled_alpha=0.01) >= 0.95
    assert fail_rate(0.0, pooled_alpha=0.01) <= 0.03  # 1% expected; 200 trials
    assert fail_rate(0.002, pooled_alpha=0.01) > fail_rate(0.002, pooled_alpha=None)


def test_pooled_failure_names_the_row_that_dropped_most():
    rng = np.random.default_rng(0)
    base = records(MEANS, range(4), 0.001, rng)
    new = records({"single-dense": 0.92, "two-dense": 0.94}, range(4, 8), 0.001, rng)
    (failure,) = gate(compare(base, new), pooled_alpha=0.01)
    assert failure.row.job.variant == "two-dense"
    assert failure.reason.startswith("pooled accuracy -0.00") and "one-sided p=" in failure.reason


def test_pooled_rule_still_fails_a_failed_record():
    rng = np.random.default_rng(0)
    base = records(MEANS, range(4), 0.001, rng)
    new = records(MEANS, range(4, 8), 0.001, rng)
    new[0].status, new[0].error, new[0].test_accuracy = "failed", "boom", None
    reasons = [f.reason for f in gate(compare(base, new), pooled_alpha=0.01)]
    assert any(r.startswith("failed") for r in reasons)


def _copy(tmp_path, name: str, change) -> str:
    data = json.loads((ROOT / "results" / "baseline" / "ci.json").read_text())
    data["run_id"] = name
    for record in data["records"]:
        change(record)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_check_refuses_injected_records_in_one_line(tmp_path, capsys):
    path = _copy(tmp_path, "bug", lambda r: r.update(injected={"label_noise": 0.05}))
    assert main(["check", path, "--baseline", str(ROOT / "results" / "baseline")]) == 2
    err = capsys.readouterr().err
    assert "injected bug" in err and "label_noise" in err and err.count("\n") == 1


def test_check_pooled_alpha_flag(tmp_path, capsys):
    def lower(record):  # a third of a point off every row: under check's 0.005 tolerance
        record["test_accuracy"] -= 0.0035
        record["confusion_matrix"] = record["predicted_labels"] = None

    baseline = str(ROOT / "results" / "baseline")
    path = _copy(tmp_path, "lower", lower)
    assert main(["check", path, "--baseline", baseline]) == 0
    assert main(["check", path, "--baseline", baseline, "--pooled-alpha", "0.01"]) == 1
    assert "pooled accuracy" in capsys.readouterr().out
    assert main(["check", path, "--baseline", baseline, "--pooled-alpha", "0"]) == 2
    assert "--pooled-alpha must be" in capsys.readouterr().err


@pytest.mark.parametrize("alpha", [0.6, -1])
def test_api_check_holds_pooled_alpha_to_its_rule(alpha):
    import mnist_bench

    with pytest.raises(mnist_bench.Error, match="pooled_alpha"):
        mnist_bench.check(str(ROOT / "results" / "baseline"), "x", pooled_alpha=alpha)
