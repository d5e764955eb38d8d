"""The training loop and what it measures: one record per job, in the worker's process.

Builds and compiles the variant, times whole epochs from epoch-level hooks and cuts each epoch
into windows at the start of every K-th batch (see `clock_callback`), takes test accuracy after
each epoch outside the timed region, then the confusion matrix, digests and the inference sweep.
Imported by the worker only: it imports the framework as it goes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import statistics
import sys
import time
import traceback
import typing
from collections.abc import Callable
from typing import Any

import numpy as np
from mnist_bench import models
from mnist_bench.core.config import TrainSettings
from mnist_bench.core.identity import Job, VariantSource, WorkerRequest
from mnist_bench.execute import architecture, inject, knobs, timing
from mnist_bench.plan import variants
from mnist_bench.runfile.records import Record, pack_labels
from mnist_bench.runfile.storage import utc_now


class Emitter(typing.Protocol):
    """Where the training loop sends its events (`worker.Protocol`: JSON lines to the parent)."""

    def emit(self, event: str, **payload: Any) -> None: ...


# Test hook: "KIND@VARIANT" makes the worker misbehave once that variant's record has started
# (its `start` event sent); comma-separate several. KIND is crash (SIGSEGV), kill (SIGKILL, as
# the OOM killer does), hang, or exit.
FAULT_ENV = "MNIST_BENCH_INJECT_FAULT"
# Test hook: "1" cuts the inference sweep and the latency loop to a few calls each (rough numbers),
# for tests that look at what a record holds, not at its timings.
QUICK_ENV = "MNIST_BENCH_QUICK_MEASURE"
# Share of all cores that other processes and the hypervisor (steal) may take before a record
# is marked contended.
CONTENTION_THRESHOLD = 0.25
# A record is unstable when its steady epochs (those after the first) disagree too much to be
# summed up by one number: their median absolute deviation is 10% of their median or more (the
# level at which pyperf warns "the benchmark result may be unstable", taken robustly). The
# coefficient of variation is recorded too, but with four steady epochs one slow warm-up tail
# moves it past 10% on a quiet machine (the measurements: docs/design-notes.md).
UNSTABLE_CV = 0.10  # the CV level pyperf warns at (recorded, reported)
UNSTABLE_MAD = 0.10  # MAD / median of the steady epochs at which a record is unstable
# With timing windows, a record is unstable when the 95% interval of their median (after the
# warm-up) is +-10% of it or wider (`timing.steady_windows`): the same level, on the figure.
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}  # setting -> compile()'s argument
# Timing windows a epoch: the clock is read at the start of every K-th batch, K = steps // this.
WINDOWS_PER_EPOCH = 20
# Test hook: "0" leaves the windows out (only the epoch-level hooks), to show they change nothing
# that is trained (tests/test_timing_windows.py).
WINDOWS_ENV = "MNIST_BENCH_TIMING_WINDOWS"
# Test hook: a fraction (0.1) makes every timing window, and so every epoch, that much longer by
# a busy wait inside the timed region; the record says so (`Record.injected`).
SLOWDOWN_ENV = "MNIST_BENCH_INJECT_SLOWDOWN"


def peak_rss_mib() -> float:
    """This process's peak resident memory; `resource` where the OS has it (Linux, macOS),
    else psutil's current RSS."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here


def count_flops(model) -> int:
    """Forward FLOPs per sample (2 x multiply-adds) of the Dense and Conv2D layers."""
    import keras

    macs = 0
    for layer in architecture.leaf_layers(model):
        if isinstance(layer, keras.layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            out_h, out_w = layer.output.shape[1:3]
            macs += int(out_h) * int(out_w) * int(np.prod(layer.kernel.shape))
    return 2 * macs


def make_optimizer(settings: TrainSettings, steps_per_epoch: int):
    import keras

    name, lr, schedule = settings.optimizer, settings.learning_rate, settings.schedule
    classes = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adamw": keras.optimizers.AdamW,
    }
    base_lr = lr if lr is not None else classes[name]().learning_rate.numpy().item()
    total = max(1, steps_per_epoch * settings.epochs)
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(base_lr, decay_steps=total)
    elif schedule == "one-cycle":  # linear warm-up over 30% of the steps, then cosine down
        warm = max(1, int(0.3 * total))
        rate = keras.optimizers.schedules.CosineDecay(
            base_lr / 25.0,
            decay_steps=max(1, total - warm),
            warmup_target=base_lr,
            warmup_steps=warm,
        )
    else:
        rate = base_lr
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    return classes[name](learning_rate=rate, **kwargs)


def steady_dispersion(epoch_seconds: list[float]) -> tuple[float, float] | None:
    """Coefficient of variation (sample std / mean) and slowest / fastest of the steady epochs
    (all but the first); None with fewer than two of them."""
    steady = epoch_seconds[1:]
    if len(steady) < 2 or min(steady) <= 0:
        return None
    mean = math.fsum(steady) / len(steady)
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in steady) / (len(steady) - 1))
    return std / mean, max(steady) / min(steady)


def is_unstable(epoch_seconds: list[float]) -> bool:
    """The steady epochs' median absolute deviation is UNSTABLE_MAD of their median or more."""
    steady = epoch_seconds[1:]
    if len(steady) < 2 or min(steady) <= 0:
        return False
    median = statistics.median(steady)
    return statistics.median(abs(s - median) for s in steady) >= UNSTABLE_MAD * median


def injected_slowdown() -> float:
    """The fraction `SLOWDOWN_ENV` asks every timed window to be slowed by (0: none).

    Raises:
        ValueError: not a number from 0 to 10.
    """
    text = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 10.0:
        raise ValueError(
            f"{SLOWDOWN_ENV}={text!r}: expected a fraction from 0 to 10 (0.1: 10% slower)"
        )
    return value


def cpu_seconds() -> float:
    """This process's user + system CPU seconds, all its threads."""
    t = os.times()
    return t.user + t.system


def _busy_until(deadline: float, clock: Callable[[], float]) -> float:
    now = clock()
    while now < deadline:
        now = clock()
    return now


class Windows:
    """The clock of one training run: epochs cut into windows, CPU time per epoch, and the
    injected slowdown, if any. Framework-free; `clock_callback` calls it from Keras's hooks.

    A window ends where the next starts: at the start of every `every`-th step, and at the end
    of the epoch (after its loss is on the host). A last window shorter than half of `every`
    steps is folded into the one before it. With `slowdown` f, each window busy-waits f times
    its own length before its end is read, so windows and epochs are 1 + f times as long.
    """

    def __init__(
        self, record: Record, steps: int, batch: int, samples: int, *, cut: bool, slowdown: float
    ) -> None:
        self.record, self.steps, self.batch, self.samples = record, steps, batch, samples
        self.every = max(1, steps // WINDOWS_PER_EPOCH)
        self.cut, self.slowdown = cut, slowdown
        self.clock: Callable[[], float] = time.perf_counter
        self.starts: list[int] = []  # each epoch's first window

    @property
    def first_epoch(self) -> int:
        """How many windows the first epoch has, where a later one follows (else 0)."""
        return self.starts[1] if len(self.starts) > 1 else 0

    def begin_epoch(self) -> None:
        self.cpu0 = cpu_seconds()
        self.t0 = self.mark = self.clock()
        self.step = 0
        self.first = len(self.record.window_seconds)  # this epoch's first window
        self.starts.append(self.first)

    def begin_step(self, step: int) -> None:
        if step - self.step >= self.every:
            self._close(step)

    def end_epoch(self) -> float:
        """Close the epoch's last window; returns the epoch's wall seconds."""
        short = self.steps - self.step < self.every / 2
        end = self._close(self.steps)
        windows, counts = self.record.window_seconds, self.record.window_samples
        if self.cut and short and len(windows) - self.first >= 2:
            tail, tail_samples = windows.pop(), counts.pop()
            windows[-1] += tail
            counts[-1] += tail_samples
        self.record.epoch_cpu_seconds.append(cpu_seconds() - self.cpu0)
        return end - self.t0

    def _close(self, step: int) -> float:
        now = self.clock()
        if self.slowdown:
            now = _busy_until(now + self.slowdown * (now - self.mark), self.clock)
        if self.cut:
            self.record.window_seconds.append(now - self.mark)
            done = min(step * self.batch, self.samples) - self.step * self.batch
            self.record.window_samples.append(max(0, done))
        self.mark, self.step = now, step
        return now


def clock_callback(keras, clock: Windows, epoch_done: Callable[[Any, int, float, float], None]):
    """The Keras callback that times training with `clock`, and then calls `epoch_done(model,
    epoch, loss, seconds)` after each epoch, outside the timed region.

    An epoch is timed from `on_epoch_begin` to its loss on the host (`float` brings the last
    step there). With `clock.cut` the clock is also read at the start of every K-th batch: Keras's
    CallbackList calls `on_train_batch_begin` with no logs, on the training thread, and decides
    async dispatch from the batch-*end* hooks alone (`_configure_async_dispatch`), so this
    neither brings a value to the host nor switches async dispatch off.
    `benchmarks/overhead.py --in-process` times this callback against a bare epoch timer.
    """

    class EpochHook(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock.begin_epoch()

        def on_epoch_end(self, epoch, logs=None):
            loss = float(logs["loss"])  # brings the last step to the host
            epoch_done(self.model, epoch, loss, clock.end_epoch())

    class TimingHook(EpochHook):
        def on_train_batch_begin(self, batch, logs=None):
            clock.begin_step(batch)

    return TimingHook() if clock.cut else EpochHook()


class ContentionProbe:
    """CPU time taken from a record while it runs (psutil), as shares of all cores: `share`,
    used by processes other than this one; `steal`, taken by the hypervisor for other guests
    (None where the OS does not count it, e.g. macOS)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._cores = psutil.cpu_count() or 1

    def __enter__(self) -> ContentionProbe:
        self._t0 = time.perf_counter()
        self._busy0 = self._busy()
        self._mine0 = self._mine()
        self._steal0 = self._steal()
        return self

    def __exit__(self, *exc: object) -> None:
        scale = max(time.perf_counter() - self._t0, 1e-9) * self._cores
        others = (self._busy() - self._busy0) - (self._mine() - self._mine0)
        self.share = max(0.0, others / scale)
        steal = self._steal()
        before = self._steal0
        self.steal = None if steal is None or before is None else max(0.0, (steal - before) / scale)
        self.loadavg = os.getloadavg()[0]

    @property
    def contended(self) -> bool:
        return self.share + (self.steal or 0.0) > CONTENTION_THRESHOLD

    def _steal(self) -> float | None:
        return getattr(self._psutil.cpu_times(), "steal", None)

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return (
            t.user
            + t.system
            + getattr(t, "nice", 0.0)
            + getattr(t, "irq", 0.0)
            + getattr(t, "softirq", 0.0)
        )

    def _mine(self) -> float:
        t = self._me.cpu_times()
        return t.user + t.system + t.children_user + t.children_system


def _inject_fault(variant: str) -> None:
    kinds = [
        kind
        for kind, _, target in (
            spec.partition("@") for spec in os.environ.get(FAULT_ENV, "").split(",")
        )
        if target == variant
    ]
    if not kinds:
        return
    kind = kinds[0]
    import signal

    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hang":
        time.sleep(10**6)
    elif kind == "exit":
        os._exit(3)


class Trainer:
    """Runs train jobs for one backend on data loaded once."""

    def __init__(self, request: WorkerRequest, proto: Emitter, info: dict[str, Any]) -> None:
        from mnist_bench import data

        self.request = request
        self.proto = proto
        self.info = info
        self.dataset = data.load(request.data)
        self._cache: dict[tuple, tuple[np.ndarray, ...]] = {}
        self._variants: dict[str, tuple[Callable[[], Any], VariantSource, tuple[str, ...]]] = {}

    def arrays(self, input_shape: tuple[int, ...], settings):
        """Train and test inputs (preprocessed for `input_shape`) and labels, within the job's
        train/test limits; cached, since jobs of one worker mostly share them."""
        from mnist_bench.data import preprocess

        key = (input_shape, settings.train_limit, settings.test_limit)
        if key not in self._cache:
            d = self.dataset.limit(settings.train_limit, settings.test_limit)
            self._cache[key] = (
                preprocess(d.x_train, input_shape),
                preprocess(d.x_test, input_shape),
                d.y_train,
                d.y_test,
            )
        return self._cache[key]

    def variant(self, name: str) -> tuple[Callable[[], Any], VariantSource, tuple[str, ...]]:
        """A variant's function, where it came from, and the backends it supports; a user's
        is loaded from the source the parent resolved (`variants.LoadError` if it cannot be)."""
        if name not in self._variants:
            source = self.request.variants.get(name)
            if source is None:
                found = variants.built_in(name)
                self._variants[name] = (models.get(name).build, found.source, found.backends)
            else:
                build = variants.load(source.target)
                file = variants.source_file(build)
                sha = variants.file_sha256(file) if file else ""
                here = dataclasses.replace(source, file=file, sha256=sha)
                backends = tuple(variants.metadata(build)["backends"])
                self._variants[name] = (build, here, backends)
        return self._variants[name]

    def run(self, job: Job, index: int) -> Record:
        record = Record(
            job=job,
            started_utc=utc_now(),
            threads=self.info["threads"],
            op_determinism=self.info["op_determinism"],
        )
        try:
            build, record.variant_source, supported = self.variant(job.variant)
        except variants.LoadError as exc:
            record.status, record.error = "failed", f"variant {job.variant}: {exc}"
            return record
        if job.backend not in supported:
            record.status, record.error = "skipped", variants.unsupported(job.variant, supported)
            return record
        device = job.device
        if device == "auto":
            device = "gpu" if self.info["gpus"] else "cpu"
        if device == "gpu" and not self.info["gpus"]:
            record.status = "skipped"
            record.error = f"no GPU visible to {job.backend}"
            return record
        refused = knobs.refusal(job.backend, device, job.settings)
        if refused:
            record.status, record.error = "skipped", refused
            return record
        record.device = device
        t0 = time.perf_counter()
        with ContentionProbe() as probe:
            try:
                self._train(record, build, device, index)
            except Exception as exc:  # the user's model code: this record fails, not the run
                record.status = "failed"
                cause = exc.__cause__ if isinstance(exc, VariantFailed) else exc
                record.error = str(exc) if isinstance(exc, VariantFailed) else _one_line(exc)
                if not isinstance(cause, architecture.ModelError):  # the user's code raised
                    record.traceback = "".join(traceback.format_exception(cause))[-20_000:]
        record.wall_seconds = time.perf_counter() - t0
        record.contention = {"other_cpu_share": round(probe.share, 4)}
        if probe.steal is not None:
            record.contention["steal_share"] = round(probe.steal, 4)
        record.contention["loadavg_1m"] = round(probe.loadavg, 2)
        record.contended = probe.contended
        record.peak_rss_mib = peak_rss_mib()
        return record

    def _train(self, record: Record, build: Callable[[], Any], device: str, index: int) -> None:
        import keras

        policy = keras.config.dtype_policy()  # process-wide: set back after the job
        keras.config.set_dtype_policy(record.settings.dtype_policy)
        try:
            self._fit(record, build, device, index)
        finally:
            keras.config.set_dtype_policy(policy)

    def _fit(self, record: Record, build: Callable[[], Any], device: str, index: int) -> None:
        import keras

        settings = record.settings
        bug = inject.from_env()  # test hook: a bug trained on purpose; unset, it changes nothing
        record.injected = bug.recorded()
        keras.utils.set_random_seed(bug.seed(record.seed))
        # "cpu", not "cpu:0": under the torch backend keras.device("cpu:0") makes every
        # gradient vanish ("No gradients provided for any variable", Keras 3.15).
        with keras.device("cpu" if device == "cpu" else "gpu:0"):
            model = _build(build, record.variant)
        record.job = dataclasses.replace(record.job, model_digest=architecture.model_digest(model))
        x_train, x_test, y_train, y_test = self.arrays(architecture.input_shape(model), settings)
        x_train, y_train = bug.data(x_train, y_train, bug.seed(record.seed))
        bug.model(model)
        record.train_samples, record.test_samples = len(x_train), len(x_test)
        batch = settings.batch_size
        steps = math.ceil(len(x_train) / batch)
        proto, targets = self.proto, tuple(self.request.targets)
        slowdown = injected_slowdown()
        if slowdown:
            record.injected = {**(record.injected or {}), "slowdown": slowdown}
        cut = os.environ.get(WINDOWS_ENV, "1") != "0"
        clock = Windows(record, steps, batch, len(x_train), cut=cut, slowdown=slowdown)

        def epoch_done(model, epoch: int, loss: float, seconds: float) -> None:
            record.epoch_seconds.append(seconds)
            finite = math.isfinite(loss)
            record.loss_curve.append(loss if finite else None)  # JSON has no NaN
            if not finite:
                record.status, record.diverged_at_epoch = "diverged", epoch + 1
                record.error = f"loss became {loss} in epoch {epoch + 1}"
                model.stop_training = True
                proto.emit("epoch", job=index, epoch=epoch + 1, seconds=seconds, loss=None)
                return
            # Outside the timed region: test accuracy for time-to-accuracy.
            acc = float(np.mean(_predict_classes(model, x_test) == y_test))
            record.accuracy_curve.append(acc)
            proto.emit(
                "epoch", job=index, epoch=epoch + 1, seconds=seconds, loss=loss, accuracy=acc
            )

        with keras.device("cpu" if device == "cpu" else "gpu:0"):
            model.compile(
                optimizer=bug.optimizer(make_optimizer(settings, steps)),
                loss=bug.loss("sparse_categorical_crossentropy"),
                metrics=["accuracy"],
                jit_compile=JIT_COMPILE[settings.jit_compile],
                steps_per_execution=settings.steps_per_execution,
            )
            record.knobs = {
                "jit_compile": bool(model.jit_compile),
                "dtype_policy": model.dtype_policy.name,
                "steps_per_execution": int(model.steps_per_execution),
            }
            if settings.jit_compile == "true" and not model.jit_compile:
                record.status = "skipped"
                record.error = (
                    f"jit_compile=true on {record.backend}: Keras does not compile "
                    f"{record.variant} (it turned jit_compile off)"
                )
                return
            record.params = int(model.count_params())
            record.flops_per_infer_sample = count_flops(model)
            record.flops_per_train_sample = 3 * record.flops_per_infer_sample
            proto.emit("start", job=index, flops_per_train_sample=record.flops_per_train_sample)
            _inject_fault(record.variant)
            model.fit(
                x_train,
                y_train,
                epochs=settings.epochs,
                batch_size=batch,
                shuffle=bug.shuffle(True),
                verbose=0,
                callbacks=[clock_callback(keras, clock, epoch_done)],
            )
            self._summarize_training(record, targets, clock.first_epoch)
            if record.status == "diverged":
                return
            test_loss = float(
                model.evaluate(x_test, y_test, batch_size=1024, verbose=0, return_dict=True)["loss"]
            )
            if not math.isfinite(test_loss):  # the last step broke the weights
                record.status, record.diverged_at_epoch = "diverged", len(record.epoch_seconds)
                record.error = f"test loss is {test_loss} after training"
                return
            record.test_loss = test_loss
            predicted = _predict_classes(model, x_test)
            cm = np.bincount(y_test.astype(np.int64) * 10 + predicted, minlength=100).reshape(
                10, 10
            )
            record.confusion_matrix = cm.tolist()
            record.test_accuracy = float(np.trace(cm) / cm.sum())
            wrong = np.flatnonzero(predicted != y_test)[:25]
            record.misclassified = [[int(i), int(y_test[i]), int(predicted[i])] for i in wrong]
            # numpy's stubs give ndarray the buffer protocol only from Python 3.12
            record.predictions_sha256 = hashlib.sha256(predicted.astype(np.uint8)).hexdigest()  # type: ignore[arg-type]
            record.predicted_labels = pack_labels(predicted)  # for `parity` across backends
            weights = hashlib.sha256()
            for w in model.get_weights():
                weights.update(np.ascontiguousarray(w).tobytes())
            record.weights_sha256 = weights.hexdigest()
            self._measure_inference(record, model, x_test, batch)

    def _summarize_training(
        self, record: Record, targets: tuple[float, ...], first_epoch_windows: int = 0
    ) -> None:
        secs = record.epoch_seconds
        record.train_seconds = float(sum(secs))
        record.first_epoch_seconds = secs[0] if secs else None
        steady = secs[1:] or secs
        if steady:
            assert record.train_samples is not None and record.flops_per_train_sample is not None
            record.steady_epoch_seconds = float(np.median(steady))
            record.train_samples_per_second = record.train_samples * len(steady) / sum(steady)
            record.achieved_gflops = (
                record.flops_per_train_sample * record.train_samples_per_second / 1e9
            )
        record.time_to_accuracy = timing.time_to_accuracy(record.accuracy_curve, secs, targets)
        cpu = record.epoch_cpu_seconds[1:] or record.epoch_cpu_seconds
        if cpu and record.train_samples:
            record.cpu_seconds_per_1k_samples = 1000 * sum(cpu) / (record.train_samples * len(cpu))
        dispersion = steady_dispersion(secs)
        if dispersion is not None:
            record.steady_epoch_cv, record.steady_epoch_max_min = dispersion
            record.unstable = is_unstable(record.epoch_seconds)
        steady_windows = timing.steady_windows(
            record.window_seconds,
            record.window_samples,
            skip=first_epoch_windows,
            unstable_at=UNSTABLE_MAD,
        )
        if steady_windows is not None:
            record.warmup_windows = steady_windows.warmup
            record.steady_seconds_per_1k = steady_windows.median
            record.steady_interval = list(steady_windows.interval or [])
            record.unstable = steady_windows.unstable
            record.train_samples_per_second = 1000 / steady_windows.median
            assert record.flops_per_train_sample is not None
            record.achieved_gflops = (
                record.flops_per_train_sample * record.train_samples_per_second / 1e9
            )

    def _measure_inference(self, record: Record, model, x_test: np.ndarray, batch: int) -> None:
        model.predict(x_test, batch_size=batch, verbose=0)  # warm-up
        t0 = time.perf_counter()
        np.asarray(model.predict(x_test, batch_size=batch, verbose=0))
        record.infer_samples_per_second = len(x_test) / (time.perf_counter() - t0)
        quick = os.environ.get(QUICK_ENV) == "1"
        sweep: dict[str, Any] = {"min_count": 3, "min_time": 0.0} if quick else {}
        for size in self.request.infer_batch_sizes:
            inputs = np.resize(x_test, (size, *x_test.shape[1:]))

            def predict(b: np.ndarray = inputs) -> np.ndarray:
                return np.asarray(model.predict_on_batch(b))

            seconds = timing.repeat_until(predict, **sweep)
            record.inference.append(timing.throughput_summary(size, seconds))
        singles = iter(np.resize(np.arange(len(x_test)), 10**6))
        seconds = timing.repeat_until(
            lambda: np.asarray(model.predict_on_batch(x_test[next(singles)][None])),
            min_count=20 if quick else 200,
            min_time=0.0 if quick else 0.5,
        )
        record.latency_ms = timing.latency_summary(seconds)


class VariantFailed(Exception):
    """A variant's function raised, or returned a model that cannot be trained here."""


def _build(build: Callable[[], Any], name: str):
    """The variant's model, checked (`architecture.input_shape`).

    Raises:
        VariantFailed: the function raised, or its model is not one this benchmark trains.
    """
    try:
        model = build()
    except Exception as exc:
        raise VariantFailed(f"variant {name}: building the model raised {_one_line(exc)}") from exc
    try:
        architecture.input_shape(model)
    except architecture.ModelError as exc:
        raise VariantFailed(f"variant {name}: {exc}") from exc
    return model


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _predict_classes(model, x: np.ndarray) -> np.ndarray:
    return np.argmax(np.asarray(model.predict(x, batch_size=1024, verbose=0)), axis=1)
