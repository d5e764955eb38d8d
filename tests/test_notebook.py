"""examples/seed.ipynb, executed by a real Jupyter kernel (nbclient) with small limits in place of
its parameters, papermill's way; then what its cells printed and drew is checked against the
run files it wrote."""

from __future__ import annotations

import re

import mnist_bench
import nbformat
import pytest
from conftest import INSTALLED, ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "examples" / "seed.ipynb"
SMALL = {"EPOCHS": 1, "TRAIN_LIMIT": 2000, "TEST_LIMIT": 500}
NETWORKS = ("single-dense", "two-dense", "flatten-dense")
BACKENDS = ("tensorflow", "jax", "torch")
ACCURACY_LINE = re.compile(r"^(\S+)\s+(\S+)\s+accuracy (\S+)$", re.MULTILINE)


def inject(nb: nbformat.NotebookNode, values: dict[str, object]) -> None:
    """A cell setting `values` right after the one tagged `parameters` (as papermill does)."""
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged `parameters`"
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, cell)


def text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def has(cell: nbformat.NotebookNode, mime: str) -> bool:
    return any(mime in o.get("data", {}) for o in cell.outputs)


def cell_running(nb: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and code in c.source]
    return cell


def test_committed_notebook_is_clean():
    """Committed without outputs: its results come from the machine that runs it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.skipif(
    not set(BACKENDS) <= set(INSTALLED),
    reason="the notebook tells its story on all three backends (the default env, tox -e tests)",
)
@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
def test_seed_notebook_runs_and_shows_its_results(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    runs = tmp_path / "runs"
    inject(nb, {**SMALL, "RESULTS_DIR": str(runs)})
    client = NotebookClient(
        nb,
        timeout=300,  # per cell; the whole notebook takes about a minute here
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    try:
        client.execute()  # a cell that raises fails the test here, with its traceback
    finally:
        nbformat.write(nb, tmp_path / "executed.ipynb")  # to look at when it fails

    # The accuracies it printed are those of the run files it wrote, each above chance.
    printed = {
        (variant, backend): accuracy
        for variant, backend, accuracy in ACCURACY_LINE.findall(text(cell_running(nb, "pivot")))
    }
    assert set(printed) == {(v, b) for v in NETWORKS for b in BACKENDS}
    written = mnist_bench.load(runs)
    assert len(written.runs) == 2
    for record in written.records:
        shown = printed[record.variant, record.backend]
        if record.backend in INSTALLED:
            assert record.status == "ok" and record.test_samples == 500
            assert record.settings.epochs == 1 and record.settings.optimizer == "adam"
            assert shown == f"{record.test_accuracy:.4f}"
            assert float(shown) > 0.5  # ten classes: chance is 0.1
        else:
            assert record.status == "skipped" and shown == "nan"

    # The tables show as HTML, the confusion matrix and predictions as images.
    assert has(cell_running(nb, "seed = mnist_bench.run("), "text/html")
    assert has(cell_running(nb, "seed.confusion_matrix("), "image/png")
    for cell in (c for c in nb.cells if "seed.predictions(" in c.source):
        assert has(cell, "image/png")

    # One comparison, JAX against TensorFlow, a verdict per network.
    comparison = cell_running(nb, "mnist_bench.compare(")
    assert has(comparison, "text/html")
    if {"tensorflow", "jax"} <= set(INSTALLED):
        verdicts = re.findall(r"^(\S+)\s+tensorflow → jax: (.+)$", text(comparison), re.MULTILINE)
        assert [v for v, _ in verdicts] == list(NETWORKS)
        assert all(v in ("better", "worse", "no significant change") for _, v in verdicts)
