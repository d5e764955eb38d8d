"""Cross-backend parity (`mnist-bench parity`, the HTML report's difference heatmaps) and what
op determinism costs (`--check-determinism`): real tiny runs on JAX and PyTorch, agreement
checked against labels compared by hand."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    FAKE_WORKER,
    FRAMEWORKS,
    INSTALLED,
    ROOT,
    cli_importing_none_of,
    make_record,
    only_run,
    run_cli,
    undocumented_json_keys,
)
from mnist_bench.analyse import parity
from mnist_bench.core import identity
from mnist_bench.core.errors import UserError
from mnist_bench.execute import runner
from mnist_bench.runfile.records import load_run, pack_labels, packed_length, unpack_labels

BACKENDS = ("jax", "torch")  # the two quickest to start
TINY = ("--epochs", "1", "--train-limit", "1000", "--test-limit", "300", "--infer-batch-sizes", "8",
        "--no-figures")  # fmt: skip
needs_two = pytest.mark.skipif(
    not set(BACKENDS) <= set(INSTALLED), reason="parity runs need jax and torch installed"
)


def parity_run(folder: Path, env: dict[str, str] | None = None) -> Path:
    """One variant, two seeds, on JAX and PyTorch."""
    out = run_cli(
        "run", "-b", ",".join(BACKENDS), "-v", "single-dense", "--seeds", "0,1", *TINY,
        "--results-dir", str(folder), env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = folder.glob("*.json")
    return path


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    """The parity run, trained."""
    return parity_run(tmp_path_factory.mktemp("parity"))


@pytest.fixture(scope="module")
def fake_run_file(tmp_path_factory) -> Path:
    """The parity run with fake workers (made-up predictions that differ between backends):
    for the tests of how reports read a run's labels, not of what training predicts."""
    return parity_run(tmp_path_factory.mktemp("parity-fake"), env=FAKE_WORKER)


def labels_of(path: Path) -> dict[tuple[str, int], np.ndarray]:
    return {
        (r.backend, r.seed): unpack_labels(r.predicted_labels, r.test_samples)
        for r in load_run(path).records
    }


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """`### title` -> the table's body rows, cells stripped."""
    tables, title = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            title = line[4:]
            tables[title] = []
        elif line.startswith("| ") and title and not line.startswith(("| agreement", "| ---")):
            tables[title].append([c.strip() for c in line.strip("|").split("|")])
    return tables


# ------------------------------------------------------------------------ the stored labels
def test_labels_pack_and_unpack():
    for count in range(7):
        labels = np.arange(count) % 10
        text = pack_labels(labels)
        assert len(text) == packed_length(count)
        assert unpack_labels(text, count).tolist() == labels.tolist()
    assert len(pack_labels(np.zeros(10_000, int))) == packed_length(10_000) == 6668
    with pytest.raises(ValueError):
        pack_labels([15])
    with pytest.raises(ValueError, match="do not hold"):
        unpack_labels(pack_labels([1, 2, 3]), 5)
    with pytest.raises(ValueError, match="base64"):
        unpack_labels("not base64!", 2)


@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
@needs_two
def test_a_run_stores_every_prediction(run_file, mnist):
    truth = mnist.y_test[:300]
    for record in load_run(run_file).records:
        assert record.status == "ok" and record.test_samples == 300
        labels = unpack_labels(record.predicted_labels, 300)
        # what the worker measured, recomputed from the stored labels alone
        assert np.mean(labels == truth) == pytest.approx(record.test_accuracy)
        cm = np.zeros((10, 10), int)
        np.add.at(cm, (truth, labels), 1)
        assert cm.tolist() == record.confusion_matrix
        for index, true, predicted in record.misclassified:
            assert (truth[index], labels[index]) == (true, predicted)


# ------------------------------------------------------------------------------ the command
@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
@needs_two
def test_parity_agreement_matches_labels_compared_by_hand(run_file):
    out = run_cli("parity", str(run_file), "--format", "markdown")
    assert out.returncode == 0, out.stderr
    (title,) = markdown_tables(out.stdout)
    assert title.startswith("single-dense") and "2 seeds" in title
    body = markdown_tables(out.stdout)[title]
    assert [row[0] for row in body] == list(BACKENDS)
    assert body[0][1] == body[1][2] == "1"  # each backend agrees with itself
    assert body[0][2] == body[1][1]  # symmetric
    labels = labels_of(run_file)
    by_hand = [float(np.mean(labels["jax", s] == labels["torch", s])) for s in (0, 1)]
    assert body[0][2] == f"{np.mean(by_hand):.4f} (min {min(by_hand):.4f})"
    assert all(0 <= a <= 1 for a in by_hand)
    differing = sum(int(np.sum(labels["jax", s] != labels["torch", s])) for s in (0, 1))
    assert f"jax - torch: {differing} sample(s) labelled differently" in out.stdout
    accuracies = {
        b: np.mean([r.test_accuracy for r in load_run(run_file).records if r.backend == b])
        for b in BACKENDS
    }
    spread = max(accuracies.values()) - min(accuracies.values())
    assert f"(spread {spread:.4f})" in out.stdout

    table = run_cli("parity", str(run_file))  # the plain table when piped
    assert table.returncode == 0, table.stderr
    assert re.search(rf"\| jax\s+\|\s+1 \| {re.escape(body[0][2])} \|", table.stdout)


PUBLISHED = ROOT / "results" / "published" / "2026-11-24-epyc-2core" / "default.json"
TOP = {"command", "runs", "files", "warnings", "notes", "unlabelled", "single", "groups"}
GROUP = {
    "title", "variant", "dataset", "devices", "configuration", "backends", "seeds",
    "class_names", "accuracy", "spread", "agreement", "pairs",
}  # fmt: skip
PAIR = {
    "a", "b", "seeds", "agreements", "mean", "min", "accuracy_a", "accuracy_b", "disagreeing",
    "difference", "largest",
}  # fmt: skip


def parity_json(*args: str) -> dict:
    out = run_cli("parity", *args, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # stdout is the object, nothing else


def test_parity_json_matches_the_labels_compared_by_hand():
    """The published default run: the seed's three networks on three backends, full test set."""
    data = parity_json(str(PUBLISHED))
    assert set(data) == TOP and data["command"] == "parity"
    assert data["runs"] == data["files"] == [str(PUBLISHED)]
    assert data["warnings"] == data["notes"] == [] and data["unlabelled"] == data["single"] == 0
    records = {(r.variant, r.backend): r for r in load_run(PUBLISHED).records}
    labels = {key: unpack_labels(r.predicted_labels, r.test_samples) for key, r in records.items()}
    assert [g["variant"] for g in data["groups"]] == ["single-dense", "two-dense", "flatten-dense"]
    for group in data["groups"]:
        variant, names = group["variant"], group["backends"]
        assert set(group) == GROUP and group["title"] == variant
        assert names == ["tensorflow", "jax", "torch"] and group["seeds"] == [0]
        assert group["devices"] == dict.fromkeys(names, "cpu")
        assert group["class_names"] == [str(i) for i in range(10)]
        assert "backend" not in group["configuration"] and group["configuration"]["epochs"] == 5
        accuracy = {b: records[variant, b].test_accuracy for b in names}
        assert group["accuracy"] == accuracy
        assert group["spread"] == pytest.approx(max(accuracy.values()) - min(accuracy.values()))
        assert len(group["pairs"]) == 3
        for pair in group["pairs"]:
            assert set(pair) == PAIR
            a, b = pair["a"], pair["b"]
            x, y = labels[variant, a], labels[variant, b]
            by_hand = float(np.mean(x == y))
            assert pair["agreements"] == [by_hand] and pair["mean"] == pair["min"] == by_hand
            assert group["agreement"][a][b] == group["agreement"][b][a] == by_hand
            assert pair["disagreeing"] == int(np.sum(x != y))
            assert (pair["accuracy_a"], pair["accuracy_b"]) == (accuracy[a], accuracy[b])
            cm_a = np.array(records[variant, a].confusion_matrix)
            cm_b = np.array(records[variant, b].confusion_matrix)
            assert pair["difference"] == (cm_a - cm_b).tolist()
            cells = [(c["truth"], c["predicted"], c["count"]) for c in pair["largest"]]
            assert cells == parity.largest_cells(pair["difference"]) and len(cells) == 3
        assert all(group["agreement"][n][n] == 1 for n in names)
    # what the table shows, figure for figure
    table = run_cli("parity", str(PUBLISHED)).stdout
    two = next(g for g in data["groups"] if g["variant"] == "two-dense")
    tf_jax = two["pairs"][0]
    assert re.search(rf"\| tensorflow\s+\|\s+1 \| {tf_jax['mean']:.4f} \|", table), table
    assert f"tensorflow - jax: {tf_jax['disagreeing']} sample(s) labelled differently" in table
    assert f"(spread {two['spread']:.4f})" in table


def test_parity_json_to_a_file_and_with_unlabelled_records(tmp_path):
    old = _without_labels(PUBLISHED, tmp_path / "old.json")
    target = tmp_path / "parity.json"
    out = run_cli("parity", str(PUBLISHED), str(old), "--format", "json", "-o", str(target))
    assert out.returncode == 0 and out.stdout == "", out.stderr
    data = json.loads(target.read_text())
    assert data["unlabelled"] == 9 and data["single"] == 0 and len(data["groups"]) == 3
    assert data["notes"] == [
        "9 ok record(s) have no predicted labels (written before run files kept them): left out"
    ]
    assert data["groups"] == parity_json(str(PUBLISHED))["groups"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json", "parity.json"]  # no temp
    (tmp_path / "broken.json").write_text("{not json")
    data = parity_json(str(PUBLISHED), str(tmp_path / "broken.json"), "--skip-bad")
    assert len(data["warnings"]) == 1 and "broken.json" in data["warnings"][0]
    refused = run_cli("parity", str(old), "--format", "json")  # the error is one line, no JSON
    assert refused.returncode == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1


@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
@needs_two
def test_parity_json_over_two_seeds(run_file):
    (group,) = parity_json(str(run_file))["groups"]
    assert group["seeds"] == [0, 1] and group["backends"] == list(BACKENDS)
    labels = labels_of(run_file)
    by_hand = [float(np.mean(labels["jax", s] == labels["torch", s])) for s in (0, 1)]
    (pair,) = group["pairs"]
    assert pair["agreements"] == by_hand and pair["seeds"] == [0, 1]
    assert pair["mean"] == pytest.approx(np.mean(by_hand)) and pair["min"] == min(by_hand)
    assert group["agreement"]["jax"]["torch"] == pytest.approx(np.mean(by_hand))


def test_parity_help_documents_every_json_key():
    keys = TOP | GROUP | PAIR | {"parity", "truth", "predicted", "count"}
    missing = undocumented_json_keys("parity", keys)
    assert not missing, missing


def test_parity_json_imports_no_framework():
    banned = (*FRAMEWORKS, "matplotlib", "rich")
    out = cli_importing_none_of(banned, "parity", str(PUBLISHED), "--format", "json")
    assert json.loads(out.stdout)["command"] == "parity"


def test_agreement_and_largest_cells_by_hand():
    a, b = np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])
    assert parity.agreement(a, a) == 1.0
    assert parity.agreement(a, b) == 0.75
    with pytest.raises(ValueError):
        parity.agreement(a, b[:3])
    difference = [[0, 2, 0], [-5, 0, 1], [0, 0, -2]]
    assert parity.largest_cells(difference, 3) == [(1, 0, -5), (0, 1, 2), (2, 2, -2)]
    assert parity.largest_cells([[0, 0], [0, 0]]) == []


def _labelled_record(backend: str, seed: int, predicted: list[int], truth: list[int], **fields):
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (truth, predicted), 1)
    return make_record(
        "two-dense", backend, seed=seed, test_samples=len(truth), confusion_matrix=cm.tolist(),
        test_accuracy=float(np.mean(np.array(truth) == predicted)),
        predicted_labels=pack_labels(predicted), **fields,
    )  # fmt: skip


def test_compare_pairs_only_the_same_job_on_other_backends(tmp_path):
    from mnist_bench.runfile.collect import LoadedRun
    from mnist_bench.runfile.records import SCHEMA_VERSION, RunFile

    truth = [0, 1, 2, 3, 4, 5]
    records = [
        _labelled_record("jax", 0, [0, 1, 2, 3, 4, 5], truth),
        _labelled_record("torch", 0, [0, 1, 2, 3, 9, 5], truth),
        _labelled_record("torch", 0, [0, 0, 0, 0, 0, 0], truth, repeat=1),  # a repeat: not used
        _labelled_record("tensorflow", 0, [0, 1, 2, 3, 4, 4], truth, epochs=9),  # another job
        make_record("two-dense", "tensorflow", test_accuracy=0.5),  # no labels (older file)
    ]
    run = RunFile("r", "2026-01-01T00:00:00Z", {}, {}, records, schema_version=SCHEMA_VERSION)
    result = parity.compare([LoadedRun(tmp_path / "r.json", run)])
    (group,) = result.groups
    assert group.backends == ["jax", "torch"]
    (pair,) = group.pairs
    assert pair.agreements == [5 / 6] and pair.disagreeing == 1
    assert parity.largest_cells(pair.difference) == [(4, 4, 1), (4, 9, -1)]
    assert group.spread == pytest.approx(1 / 6)
    assert result.single == 1 and result.unlabelled == 1
    assert len(result.notes) == 2
    assert identity.same_except(records[0].job, records[1].job, "backend")
    assert not identity.same_except(records[0].job, records[3].job, "backend")
    assert identity.same_except(records[0].job, records[3].job, "backend", "epochs")
    with pytest.raises(ValueError, match="unknown field"):
        identity.key_except(records[0].job, "colour")


@needs_two
def test_html_report_draws_the_confusion_difference(fake_run_file, tmp_path):
    run_file = fake_run_file
    page = tmp_path / "report.html"
    out = run_cli("report", str(run_file), "--format", "html", "-o", str(page))
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert "<h2>Parity across backends</h2>" in html
    alts = re.findall(r'alt="(confusion difference: [^"]*)"', html)
    assert len(alts) == 1 and "jax − torch" in alts[0]
    labels = labels_of(run_file)
    by_hand = np.mean([np.mean(labels["jax", s] == labels["torch", s]) for s in (0, 1)])
    assert f"agreement {by_hand:.4f}" in alts[0]


# ------------------------------------------------------------------- files without labels
def _without_labels(source: Path, target: Path) -> Path:
    """An older run of the same jobs: its own run id (a copy of one run is read once)."""
    data = json.loads(source.read_text())
    data["run_id"] = data["run_id"][:-4] + "0ld0"
    for record in data["records"]:
        record.pop("predicted_labels", None)
    target.write_text(json.dumps(data))
    return target


@needs_two
def test_files_without_labels_say_so_in_one_line(fake_run_file, tmp_path):
    run_file = fake_run_file
    old = _without_labels(run_file, tmp_path / "old.json")
    out = run_cli("parity", str(old))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "no record has predicted labels" in out.stderr and "Traceback" not in out.stderr
    schema1 = ROOT / "tests" / "fixtures" / "schema1" / "ci.json"
    out = run_cli("parity", str(schema1))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr

    mixed = run_cli("parity", str(run_file), str(old), "--format", "markdown")
    assert mixed.returncode == 0, mixed.stderr
    assert "have no predicted labels" in mixed.stdout and len(markdown_tables(mixed.stdout)) == 1

    page = tmp_path / "old.html"
    out = run_cli("report", str(old), "--format", "html", "-o", str(page))
    assert out.returncode == 0, out.stderr
    assert "Parity across backends" not in page.read_text()


def test_bad_input_is_one_line(tmp_path):
    out = run_cli("parity", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    one = tmp_path / "one.json"
    shutil.copy(ROOT / "tests" / "fixtures" / "report" / "intel-jax.json", one)
    data = json.loads(one.read_text())
    for record in data["records"]:
        if record.get("status") == "ok" and record.get("confusion_matrix"):
            cm = record["confusion_matrix"]
            predicted = [j for row in cm for j, n in enumerate(row) for _ in range(n)]
            record["predicted_labels"] = pack_labels(predicted)
    one.write_text(json.dumps(data))
    out = run_cli("parity", str(one))  # one backend only
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no job ran on two backends" in out.stderr


def test_labels_that_disagree_with_the_matrix_are_refused(tmp_path):
    from mnist_bench.runfile.collect import LoadedRun
    from mnist_bench.runfile.records import SCHEMA_VERSION, RunFile

    truth = [0, 1, 2, 3]
    good = _labelled_record("jax", 0, [0, 1, 2, 3], truth)
    bad = _labelled_record("torch", 0, [0, 1, 2, 3], truth)
    bad.predicted_labels = pack_labels([3, 3, 3, 3])
    run = RunFile("r", "2026-01-01T00:00:00Z", {}, {}, [good, bad], schema_version=SCHEMA_VERSION)
    with pytest.raises(UserError, match="disagree with the confusion matrix"):
        parity.compare([LoadedRun(tmp_path / "r.json", run)])


def test_a_label_field_of_the_wrong_length_is_inconsistent(tmp_path):
    source = ROOT / "tests" / "fixtures" / "report" / "intel-jax.json"
    data = json.loads(source.read_text())
    record = next(r for r in data["records"] if r.get("test_samples"))
    record["predicted_labels"] = "AAAA"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="predicted_labels"):
        load_run(path)


# ------------------------------------------------------------------------ determinism cost
def test_determinism_cost_by_hand():
    def pair(backend, variant, off, on):
        return [
            make_record(variant, backend, steady_epoch_seconds=off, status="ok"),
            make_record(variant, backend, steady_epoch_seconds=on, op_determinism=True),
        ]

    records = [
        *pair("tensorflow", "two-dense", 1.0, 1.5),  # the switches-on record contended below
        *pair("tensorflow", "single-dense", 2.0, 2.4),
        *pair("jax", "two-dense", 1.0, 1.0),
        make_record("two-dense", "torch", steady_epoch_seconds=3.0),  # no partner
        make_record(
            "two-dense", "tensorflow", steady_epoch_seconds=9.0, repeat=1, op_determinism=True
        ),  # fmt: skip
    ]
    records[1].contended = True
    cost = runner.determinism_cost(records)
    assert set(cost) == {"tensorflow", "jax"}
    tf = cost["tensorflow"]
    assert (tf.steady_seconds_off, tf.steady_seconds_on, tf.pairs) == (1.5, 1.95, 2)
    assert tf.ratio == pytest.approx(math.sqrt(1.5 * 1.2))
    assert (tf.noisy_pairs, cost["jax"].noisy_pairs) == (1, 0)
    assert cost["jax"].ratio == 1.0
    line = runner.cost_summary(cost)
    assert "tensorflow 1.5 -> 1.95 s (x1.34, 2 pairs, 1 contended or unstable)" in line
    assert "jax 1 -> 1 s (x1.00, 1 pair)" in line


@pytest.mark.slow  # a --check-determinism run: in .ci/run's slow step
@pytest.mark.skipif("jax" not in INSTALLED, reason="jax not installed")
def test_check_determinism_records_and_reports_the_cost(tmp_path):
    out = run_cli(
        "run", "-b", "jax", "-v", "single-dense", *TINY, "--epochs", "2", "--check-determinism",
        "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    on = [r for r in run.records if r.settings.op_determinism]
    off = [r for r in run.records if not r.settings.op_determinism]
    assert sorted(r.repeat for r in on) == [0, 1] and [r.repeat for r in off] == [0]
    (base,) = off
    first = next(r for r in on if r.repeat == 0)
    cost = run.determinism_cost["jax"]
    assert cost.pairs == 1
    assert cost.steady_seconds_off == base.steady_epoch_seconds
    assert cost.steady_seconds_on == first.steady_epoch_seconds
    assert cost.ratio == pytest.approx(first.steady_epoch_seconds / base.steady_epoch_seconds)
    noisy = any(r.contended or r.unstable for r in (base, first))
    assert cost.noisy_pairs == int(noisy)
    assert f"jax {cost.steady_seconds_off:.3g} -> {cost.steady_seconds_on:.3g} s" in out.stdout
    assert "determinism cost (steady epoch, op determinism off -> on)" in out.stdout
    assert first.deterministic is True  # the bit-for-bit check still pairs the two "on" runs
    assert base.deterministic is None
