"""Every registered variant builds, trains and is measured, on a tiny subset."""

from __future__ import annotations

import pytest
from conftest import INSTALLED, only_run, run_cli
from mnist_bench import models


def test_registry_names_defaults_and_errors():
    assert models.default_names() == ["single-dense", "two-dense", "flatten-dense"]
    assert {"cnn", "cnn-augmented", "cnn-strong", "cnn-fast"} <= set(models.names())
    seed = models.get("two-dense")
    assert seed.input_shape == (784,) and seed.defaults.epochs == 5
    assert seed.defaults.batch_size == 32 and seed.defaults.optimizer == "adam"
    with pytest.raises(Exception, match="unknown variant 'nope'; valid: single-dense"):
        models.get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        models.register("two-dense", input_shape=(784,), description="dup")(lambda: None)


@pytest.mark.slow  # trains for a minute or so: in .ci/run's slow step (default run under 10 min)
@pytest.mark.skipif("jax" not in INSTALLED, reason="jax not installed")
def test_every_variant_trains(tmp_path):
    out = run_cli(
        "run",
        "-b",
        "jax",
        "-v",
        "all",
        "--epochs",
        "1",
        "--train-limit",
        "512",
        "--test-limit",
        "256",
        "--infer-batch-sizes",
        "8",
        "--no-figures",
        "--results-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    records = {r.variant: r for r in only_run(tmp_path).records}
    assert set(records) == set(models.names())
    for name, record in records.items():
        assert record.status == "ok", (name, record.error)
        assert record.params > 0 and record.flops_per_train_sample > 0
        assert record.settings.epochs == 1
    # Analytical FLOPs by hand: the Keras example convnet, forward multiply-adds x 2.
    cnn_macs = 26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 1600 * 10
    assert records["cnn"].flops_per_infer_sample == 2 * cnn_macs
    assert records["cnn-fast"].settings.schedule == "one-cycle"
    # cnn-fast: 24x24 -> 5x5 stride 2 -> 10x10x16 -> 3x3 -> 8x8x32 -> pool 4x4x32 -> 128 -> 10.
    fast_macs = 10 * 10 * 25 * 16 + 8 * 8 * 9 * 16 * 32 + 512 * 128 + 128 * 10
    assert records["cnn-fast"].flops_per_infer_sample == 2 * fast_macs
