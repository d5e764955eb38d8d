"""A stand-in for `python -m mnist_bench.execute.worker`, for tests of what happens around training.

The launcher starts this script instead of the worker when `MNIST_BENCH_WORKER` names it
(`conftest.FAKE_WORKER`). It speaks the worker's protocol (ready, start, epoch, record, done on
the original stdout; the parent-watch and the fault hook `MNIST_BENCH_INJECT_FAULT` as the worker
has them) and makes each record up from its job, deterministically: plausible accuracies,
curves, timings, a confusion matrix and digests that pass the run file's checks, in
milliseconds and without a framework. A learning rate of 1e6 or more diverges in the first
epoch, as a real one does. Real training is tested by the tests that do not use it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

import numpy as np
from mnist_bench.core.identity import Job, WorkerRequest
from mnist_bench.execute import timing
from mnist_bench.execute.training import _inject_fault, is_unstable, peak_rss_mib, steady_dispersion
from mnist_bench.execute.worker import Protocol, exit_with_parent
from mnist_bench.runfile.records import Record, pack_labels
from mnist_bench.runfile.storage import utc_now

SIZES = {"mnist": (60_000, 10_000), "fashion-mnist": (60_000, 10_000)}
EPOCH_SECONDS = 0.01  # each epoch sleeps this long, so that epochs take measurable time


def main() -> None:
    exit_with_parent()
    proto = Protocol()
    request = WorkerRequest.from_json(sys.stdin.buffer.read())
    threads = {"requested": request.threads, "intra_op": request.threads or "default"}
    determinism = ["fake worker: deterministic"] if request.op_determinism else []
    proto.emit(
        "ready",
        backend=request.backend,
        version="0.0+fake",
        keras="0.0+fake",
        devices=["cpu"],
        gpus=[],
        threads=threads,
        op_determinism=determinism,
    )
    if request.mode == "describe":
        proto.emit("describe", variants=[])
    else:
        sizes = _sizes(request.data)
        for index, job in enumerate(request.jobs):
            record = Record(
                job=job, started_utc=utc_now(), threads=threads, op_determinism=determinism
            )
            if job.device == "gpu":
                record.status, record.error = "skipped", f"no GPU visible to {job.backend}"
            else:
                _train(record, index, proto, request, sizes)
            proto.emit("record", job=index, record=record.to_dict())
    proto.emit("done")


def _sizes(data: str) -> tuple[int, int]:
    """Train and test set sizes: known for the bundled names, else read from the dataset."""
    if data in SIZES:
        return SIZES[data]
    from mnist_bench import data as datasets

    dataset = datasets.load(data)
    return len(dataset.y_train), len(dataset.y_test)


def _rng(job: Job) -> np.random.Generator:
    """The same configuration and seed draw the same numbers (a repeat too: determinism)."""
    identity = repr((job.variant, job.backend, job.seed, job.settings, job.dataset))
    return np.random.default_rng(int(hashlib.sha256(identity.encode()).hexdigest()[:15], 16))


def _train(
    record: Record, index: int, proto: Protocol, request: WorkerRequest, sizes: tuple[int, int]
) -> None:
    job, settings = record.job, record.settings
    rng = _rng(job)
    t0 = time.perf_counter()
    record.device = "cpu"
    record.train_samples = min(settings.train_limit or sizes[0], sizes[0])
    record.test_samples = min(settings.test_limit or sizes[1], sizes[1])
    record.params = 10_000 + int(rng.integers(0, 200_000))
    record.flops_per_infer_sample = 2 * record.params
    record.flops_per_train_sample = 3 * record.flops_per_infer_sample
    proto.emit("start", job=index, flops_per_train_sample=record.flops_per_train_sample)
    _inject_fault(job.variant)
    final = 0.80 + 0.15 * float(rng.random())
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        time.sleep(EPOCH_SECONDS)
        seconds = time.perf_counter() - start
        record.epoch_seconds.append(seconds)
        if (settings.learning_rate or 0.0) >= 1e6:
            record.loss_curve.append(None)
            record.status, record.diverged_at_epoch = "diverged", epoch
            record.error = f"loss became nan in epoch {epoch}"
            proto.emit("epoch", job=index, epoch=epoch, seconds=seconds, loss=None)
            break
        loss = 2.3 * (1 - final) ** (epoch / settings.epochs) + 0.05
        accuracy = round(final - 0.1 * (settings.epochs - epoch) / settings.epochs, 4)
        record.loss_curve.append(loss)
        record.accuracy_curve.append(accuracy)
        proto.emit("epoch", job=index, epoch=epoch, seconds=seconds, loss=loss, accuracy=accuracy)
    _summarize(record, tuple(request.targets))
    if record.status == "ok":
        _evaluate(record, rng, final, request.infer_batch_sizes)
    record.wall_seconds = time.perf_counter() - t0
    record.contention = {"other_cpu_share": 0.0, "loadavg_1m": round(os.getloadavg()[0], 2)}
    record.peak_rss_mib = peak_rss_mib()


def _summarize(record: Record, targets: tuple[float, ...]) -> None:
    secs = record.epoch_seconds
    steady = secs[1:] or secs
    record.train_seconds = float(sum(secs))
    record.first_epoch_seconds = secs[0]
    record.steady_epoch_seconds = float(np.median(steady))
    record.train_samples_per_second = record.train_samples * len(steady) / sum(steady)
    record.achieved_gflops = record.flops_per_train_sample * record.train_samples_per_second / 1e9
    record.time_to_accuracy = timing.time_to_accuracy(record.accuracy_curve, secs, targets)
    dispersion = steady_dispersion(secs)
    if dispersion is not None:
        record.steady_epoch_cv, record.steady_epoch_max_min = dispersion
        record.unstable = is_unstable(secs)


def _evaluate(
    record: Record, rng: np.random.Generator, accuracy: float, batch_sizes: tuple[int, ...]
) -> None:
    """Predictions right with probability `accuracy` over labels 0..9 in turn, and the
    measurements a real record has after training."""
    truth = np.arange(record.test_samples) % 10
    wrong = rng.random(record.test_samples) >= accuracy
    predicted = np.where(wrong, (truth + 1 + rng.integers(0, 9, record.test_samples)) % 10, truth)
    matrix = np.bincount(truth * 10 + predicted, minlength=100).reshape(10, 10)
    record.confusion_matrix = matrix.tolist()
    record.test_accuracy = float(np.trace(matrix) / matrix.sum())
    record.test_loss = record.loss_curve[-1] * 1.05
    record.misclassified = [
        [int(i), int(truth[i]), int(predicted[i])] for i in np.flatnonzero(wrong)[:25]
    ]
    record.predictions_sha256 = hashlib.sha256(predicted.astype(np.uint8)).hexdigest()
    record.predicted_labels = pack_labels(predicted)
    record.weights_sha256 = hashlib.sha256(rng.bytes(32)).hexdigest()
    per_sample = 2e-6 * (1 + record.params / 100_000)
    record.infer_samples_per_second = 1 / per_sample
    for size in batch_sizes:
        seconds = [size * per_sample * (1 + 0.02 * i) for i in range(5)]
        record.inference.append(timing.throughput_summary(size, seconds))
    record.latency_ms = timing.latency_summary([2e-4 * (1 + 0.01 * i) for i in range(20)])


if __name__ == "__main__":
    main()
