"""The bug-injection hook (`execute.inject`): each change does what it says to the training data
and settings, a real run trained under one is marked, and a harmless one keeps accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKEND, needs_backend
from mnist_bench.execute import inject
from mnist_bench.runfile.records import Record

X = np.arange(1000 * 4, dtype=np.float32).reshape(1000, 4) / 4000.0
Y = np.arange(1000, dtype=np.uint8) % 10


def test_parse_reads_flags_and_values():
    spec = inject.parse("label_noise=0.05, no_shuffle,lr_scale=10,freeze=0,seed_offset=100")
    assert spec == {
        "label_noise": 0.05,
        "no_shuffle": True,
        "lr_scale": 10.0,
        "freeze": 0,
        "seed_offset": 100,
    }


@pytest.mark.parametrize(
    "text, words",
    [
        ("label_nois=0.1", "unknown change"),
        ("label_noise", "needs a float"),
        ("label_noise=x", "needs a float"),
        ("label_noise=1.5", "share in [0, 1)"),
        ("drop_train=-0.1", "share in [0, 1)"),
        ("unscaled=1", "takes no value"),
        ("lr_scale=0", "above 0"),
        ("freeze=-1", "layer index"),
    ],
)
def test_parse_refuses_bad_specs_in_one_line(text, words):
    with pytest.raises(ValueError, match="MNIST_BENCH_INJECT_BUG") as exc:
        inject.parse(text)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_unset_changes_nothing():
    none = inject.from_env({})
    assert none.recorded() is None and none.seed(3) == 3 and none.shuffle(True)
    x, y = none.data(X, Y, 0)
    assert x is X and y is Y
    assert inject.from_env({inject.ENV: " "}).spec == {}


def test_label_noise_flips_that_share_to_another_class():
    x, y = inject.Injection({"label_noise": 0.2}).data(X, Y, 0)
    flipped = np.mean(y != Y)
    assert 0.15 < flipped < 0.25  # a Bernoulli(0.2) draw over 1,000 labels
    assert np.array_equal(x, X) and y.min() >= 0 and y.max() <= 9
    assert np.array_equal(Y, np.arange(1000, dtype=np.uint8) % 10)  # the input is untouched
    again = inject.Injection({"label_noise": 0.2}).data(X, Y, 0)[1]
    assert np.array_equal(y, again)  # seeded: reproducible
    assert not np.array_equal(y, inject.Injection({"label_noise": 0.2}).data(X, Y, 1)[1])


def test_drop_train_keeps_a_random_share_in_order():
    x, y = inject.Injection({"drop_train": 0.5}).data(X, Y, 0)
    assert len(x) == len(y) == 500
    rows = np.rint(x[:, 0] * 1000).astype(int)  # which original rows survived
    assert np.all(np.diff(rows) > 0) and rows.max() > 900  # sorted, and not just the first half
    assert np.array_equal(y, Y[rows])


def test_permute_train_reorders_the_same_pairs():
    x, y = inject.Injection({"permute_train": True}).data(X, Y, 0)
    assert not np.array_equal(x, X)
    order = np.argsort(x[:, 0])
    assert np.array_equal(x[order], X) and np.array_equal(y[order], Y)


def test_unscaled_multiplies_the_training_inputs_by_255():
    x, y = inject.Injection({"unscaled": True}).data(X, Y, 0)
    assert np.allclose(x, X * 255) and x.dtype == X.dtype and y is Y


def test_seed_offset_and_no_shuffle():
    bug = inject.Injection({"seed_offset": 100, "no_shuffle": True})
    assert bug.seed(2) == 102 and bug.shuffle(True) is False
    assert not bug.harmless and inject.Injection({"seed_offset": 1}).harmless
    assert bug.recorded() == {"seed_offset": 100, "no_shuffle": True}


@needs_backend
def test_keras_hooks_freeze_scale_and_sum(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", BACKEND)
    import keras
    from mnist_bench import models

    model = models.get("two-dense").build()
    inject.Injection({"freeze": 0}).model(model)
    weighted = [layer for layer in model.layers if layer.weights]
    assert not weighted[0].trainable and weighted[1].trainable
    with pytest.raises(ValueError, match="freeze=9"):
        inject.Injection({"freeze": 9}).model(model)
    opt = inject.Injection({"lr_scale": 10}).optimizer(keras.optimizers.Adam(learning_rate=0.001))
    assert float(opt.learning_rate) == pytest.approx(0.01)
    cosine = keras.optimizers.schedules.CosineDecay(0.001, decay_steps=10)
    opt = inject.Injection({"lr_scale": 0.1}).optimizer(keras.optimizers.Adam(cosine))
    assert opt._learning_rate.initial_learning_rate == pytest.approx(0.0001)
    loss = inject.Injection({"loss_sum": True}).loss("sparse_categorical_crossentropy")
    assert loss.reduction == "sum"


def test_records_carry_the_injection_through_json():
    from conftest import make_record

    record = make_record()
    record.injected = {"label_noise": 0.05}
    again = Record.from_dict(record.to_dict())
    assert again.injected == {"label_noise": 0.05}
    data = make_record().to_dict()
    data.pop("injected")  # an older file, written before the field
    assert Record.from_dict(data).injected is None


@pytest.mark.slow
@needs_backend
def test_a_real_run_trains_the_bug_and_says_so(tmp_path, monkeypatch):
    import mnist_bench

    def accuracy(spec: str | None) -> tuple[float, dict | None]:
        if spec is None:
            monkeypatch.delenv(inject.ENV, raising=False)
        else:
            monkeypatch.setenv(inject.ENV, spec)
        results = mnist_bench.run(
            variants=["single-dense"],
            backends=[BACKEND],
            results_dir=tmp_path / (spec or "clean"),
            epochs=1,
            train_limit=3000,
            test_limit=1000,
        )
        (record,) = results.records
        assert record.status == "ok"
        return record.test_accuracy, record.injected

    clean, marked = accuracy(None)
    assert marked is None and clean > 0.7
    noisy, marked = accuracy("label_noise=0.85")
    assert marked == {"label_noise": 0.85} and noisy < clean - 0.05
    harmless, marked = accuracy("permute_train")
    assert marked == {"permute_train": True} and abs(harmless - clean) < 0.03
