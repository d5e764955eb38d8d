"""The worker: one process, one Keras backend. This message loop, `execute/training.py` (the
training loop) and `execute/backends/` (one module per framework) run only in the worker, the
only process that imports a framework.

The parent starts `python -m mnist_bench.execute.worker` with KERAS_BACKEND unset; the request
(JSON on stdin) names the backend, which is set before Keras is imported. Results go back as
JSON lines on the original stdout; file descriptor 1 is pointed at stderr first, so nothing a
library prints can corrupt the protocol.

Events: ready, start, epoch, record, describe, done.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from mnist_bench.core import jsonout
from mnist_bench.core.identity import WorkerRequest
from mnist_bench.execute import backends
from mnist_bench.execute.training import Trainer, count_flops

# The parent's pid, set by the launcher: the worker exits when its parent is gone.
PARENT_ENV = "MNIST_BENCH_PARENT_PID"


class Protocol:
    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)

    def emit(self, event: str, **payload: Any) -> None:
        line = json.dumps(jsonout.finite({"event": event, **payload}), allow_nan=False)
        self._out.write(line + "\n")
        self._out.flush()


def backend_info(backend: str) -> dict[str, Any]:
    """Framework version and the devices it sees."""
    import keras

    found = backends.get(backend).info()
    return {
        "backend": backend,
        "version": found["version"],
        "keras": keras.__version__,
        "devices": ["cpu"] + [f"gpu:{i} {name}" for i, name in enumerate(found["gpus"])],
        "gpus": found["gpus"],
    }


def exit_with_parent(interval: float = 1.0) -> None:
    """Exit when the parent goes (even by SIGKILL): a worker never outlives its run."""
    import threading

    parent = int(os.environ.get(PARENT_ENV) or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def main() -> None:
    exit_with_parent()
    proto = Protocol()
    request = WorkerRequest.from_json(sys.stdin.buffer.read())
    backend = request.backend
    module = backends.get(backend)
    module.configure(request.threads)
    op_det = module.enable_determinism() if request.op_determinism else []
    info = backend_info(backend)
    info["threads"] = module.apply_threads(request.threads)
    info["op_determinism"] = op_det
    proto.emit("ready", **info)
    if request.mode == "describe":
        proto.emit("describe", variants=describe_variants())
    else:
        trainer = Trainer(request, proto, info)
        for index, job in enumerate(request.jobs):
            record = trainer.run(job, index)
            proto.emit("record", job=index, record=record.to_dict())
    proto.emit("done")


def describe_variants() -> list[dict[str, Any]]:
    import keras
    from mnist_bench import models

    out = []
    for name in models.names():
        variant = models.get(name)
        model = variant.build()
        flops = count_flops(model)
        out.append(
            {
                "name": name,
                "params": int(model.count_params()),
                "flops_per_infer_sample": flops,
                "flops_per_train_sample": 3 * flops,
            }
        )
        keras.backend.clear_session()
    return out


if __name__ == "__main__":
    main()
