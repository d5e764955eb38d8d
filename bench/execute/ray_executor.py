"""Runs a run's jobs on the nodes of a Ray cluster (`mnist-bench run --executor ray`).

Each job is one Ray task, and inside it the same isolated worker process the local executor
starts (`launcher.run_backend` with a one-job request): the same timing code, the same record.
The driver keeps everything else as it is for a local run (`runner.Run.execute`): records are
journaled as each task finishes, the run file is written atomically, an interrupt marks it
`interrupted` and `--resume` finishes it on either executor.

A job takes a whole node by default: every node offers one unit of the custom resource
`mnist_bench_node` (`ray start --resources '{"mnist_bench_node": 1}'`) and a task asks for all
of it, so two benchmark jobs never share a machine; `--jobs-per-node K` asks for 1/K.

This module is the only one that imports Ray, and only `--executor ray` imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job, WorkerRequest
from mnist_bench.execute.launcher import Observer
from mnist_bench.runfile.records import Machine, Record

if TYPE_CHECKING:
    from mnist_bench.execute.runner import Run

NODE_RESOURCE = "mnist_bench_node"  # one unit per node: a job asks for all of it
CONNECT_TIMEOUT = 15.0  # seconds for a cluster to answer; `ray.init` alone may wait for minutes
POLL_SECONDS = 0.5  # `ray.wait` returns this often, so that a signal is handled at once
EVERY_NODE = ("node", "kind")  # --on-every-node: each node, or one node of each kind
# Ray's runtime envs nest a few levels (env_vars, pip: {packages: [...]}, container: {...})
RUNTIME_ENV_DEPTH = 16
NO_GPU = "a node offers its GPUs to Ray with ray start --num-gpus N"


@dataclass(frozen=True)
class RayExecutor:
    """Where and how the jobs run on a cluster.

    Attributes:
        address: the head's GCS address, `HOST:PORT` (what `ray start --head` prints).
        jobs_per_node: jobs a node runs at once (1: a job has the node to itself).
        on_every_node: None (each job once, anywhere), `node` (each job on every node) or
            `kind` (each job on one node of each kind: CPU model, cores, memory, GPUs).
        runtime_env: Ray's runtime environment for the tasks (`pip`, `working_dir`, ...).
        connect_timeout: seconds the cluster has to answer.
    """

    address: str
    jobs_per_node: int = 1
    on_every_node: str | None = None
    runtime_env: dict[str, Any] | None = None
    connect_timeout: float = CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if self.jobs_per_node < 1:
            raise UserError(f"--jobs-per-node must be at least 1 (got {self.jobs_per_node})")
        if self.on_every_node not in (None, *EVERY_NODE):
            raise UserError(f"--on-every-node takes {' or '.join(EVERY_NODE)}")

    def connect(self) -> None:
        """Connect to the cluster, or raise a one-line UserError within `connect_timeout`."""
        connect(self.address, self.connect_timeout, self.runtime_env)

    def records(self, run: Run, observer: Observer) -> Iterator[Record]:
        """Run the run's jobs as tasks and yield each record as its task ends. Closing the
        iterator early (an interrupt) ends the tasks still out and disconnects from the
        cluster."""
        import ray

        nodes = _nodes(ray)
        if not nodes:
            raise UserError(
                f"no live node of the Ray cluster at {self.address} offers the resource "
                f"{NODE_RESOURCE!r}: start nodes with ray start --resources "
                f"'{{\"{NODE_RESOURCE}\": 1}}'"
            )
        every = self.on_every_node or run.file.environment.get("executor", {}).get("on_every_node")
        run.file.environment["executor"] = {
            "kind": "ray",
            "address": self.address,
            "jobs_per_node": self.jobs_per_node,
            "on_every_node": every,
            "nodes": len(nodes),
        }
        if every:
            targets = _targets(ray, nodes, every)
            done = {r.slot for r in run.file.records}
            work: list[tuple[Job, str | None]] = [
                (job, node)
                for node in targets
                for job in run.all_jobs
                if (job.key, node) not in done
            ]
        else:
            work = [(job, None) for job in run.pending]
        # A GPU job that no node can take would wait forever: it is skipped now, as a local
        # run skips it where its backend sees no GPU.
        gpus = {n["NodeID"] for n in nodes if n.get("Resources", {}).get("GPU", 0) > 0}
        runs: list[tuple[Job, str | None]] = []
        skipped: list[tuple[Job, str | None]] = []
        for job, node in work:
            takeable = job.device != "gpu" or (node in gpus if node else bool(gpus))
            (runs if takeable else skipped).append((job, node))
        for job, node in skipped:
            where = f"node {node}" if node else f"the Ray cluster at {self.address}"
            record = Record(job=job, status="skipped", error=f"no GPU on {where} ({NO_GPU})")
            record.machine = Machine(node_id=node) if node else None
            observer.on_record(job, record)
            yield record
        yield from _Tasks(ray, self, run, observer).stream(runs)


class _Tasks:
    """The tasks of one run: submitted at once, collected as they finish, cancelled on close."""

    def __init__(self, ray: Any, executor: RayExecutor, run: Run, observer: Observer) -> None:
        self.ray, self.executor, self.run, self.observer = ray, executor, run, observer
        self.remote = ray.remote(max_retries=0, num_cpus=0)(_run_job)
        self.out: dict[Any, tuple[Job, str | None, str | None]] = {}  # ref -> job, node, retry
        self.ready: set[str] = set()

    def submit(self, job: Job, node: str | None, retry_of: str | None = None) -> None:
        from mnist_bench.execute import runner
        from mnist_bench.plan import variants
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        c = self.run.config
        request = WorkerRequest(
            mode="train",
            backend=job.backend,
            data=c.data,
            threads=job.settings.threads,
            op_determinism=job.settings.op_determinism,
            targets=c.targets,
            infer_batch_sizes=c.infer_batch_sizes,
            jobs=(job,),
            variants=variants.sources(runner.resolve_variants(c, job.backend)),
        )
        share = 1.0 / self.executor.jobs_per_node
        options: dict[str, Any] = {
            "resources": {NODE_RESOURCE: share},
            "num_gpus": share if job.device == "gpu" else 0,
            "name": f"mnist-bench {job.label()}",
        }
        if node is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        samples = len(self.run.dataset.x_train[: job.settings.train_limit])
        ref = self.remote.options(**options).remote(request.to_json(), c.record_timeout, samples)
        self.out[ref] = (job, node, retry_of)

    def stream(self, work: list[tuple[Job, str | None]]) -> Iterator[Record]:
        for job, node in work:
            self.submit(job, node)
        try:
            while self.out:
                finished = self._wait()
                for ref in finished:
                    record = self._collect(ref)
                    if record is not None:
                        self.observer.on_record(record.job, record)
                        yield record
        finally:
            self._cancel()

    def _wait(self) -> list[Any]:
        """The tasks finished within `POLL_SECONDS`. A signal's `Interrupted`, raised by the
        runner's handler inside Ray's C++ wait, comes out as a SystemError: it is re-raised as
        itself."""
        from mnist_bench.execute.runner import Interrupted

        try:
            return self.ray.wait(list(self.out), num_returns=1, timeout=POLL_SECONDS)[0]
        except SystemError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, Interrupted):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            raise cause from None

    def _collect(self, ref: Any) -> Record | None:
        """The record of a finished task; None when its job was resubmitted elsewhere."""
        job, node, retry_of = self.out.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = _cause(exc)
            if retry_of is None and node is None and len(_nodes(self.ray)) > 0:
                self.submit(job, None, retry_of=cause)  # once, on whichever node is left
                return None
            if retry_of is not None:
                cause = f"{retry_of}; retried on another node: {cause}"
            record = Record(job=job, status="failed", error=cause)
            record.machine = Machine(retried_after=retry_of) if retry_of else None
            return record
        record = Record.from_dict(result["record"])
        record.machine = Machine(**result["machine"], retried_after=retry_of)
        if job.backend not in self.ready and result.get("ready"):
            self.ready.add(job.backend)
            self.observer.on_ready(job.backend, result["ready"])
        return record

    def _cancel(self) -> None:
        """Stop every task still out (an interrupt, or an error while collecting).

        Not by `ray.cancel(ref, force=True)`: a force-cancel that crosses a task's finishing
        reply aborts the driver inside Ray's core worker (`task_manager.cc`: "Tried to complete
        task that was not pending"; 1 in 2 interrupted runs in CI), before the run file can be
        marked interrupted. The driver disconnects instead: Ray then marks its job finished, and
        every raylet kills the job's workers, and with each its worker process (which exits with
        its parent). Disconnecting is Ray's ordinary end of a driver, with no race."""
        if self.out:
            self.out.clear()
            self.ray.shutdown()


def _cause(exc: BaseException) -> str:
    """A Ray error in one line: its class and the first line that says something."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Traceback", "File ", "ray::"))]
    text = (useful or lines or [""])[0]
    text = ". ".join(text.split(". ")[:2])[:300]  # NodeDiedError: what happened, which node
    return f"the Ray task was lost ({type(exc).__name__}: {text})"


def _nodes(ray: Any) -> list[dict[str, Any]]:
    """The live nodes that offer `NODE_RESOURCE`."""
    return [
        n
        for n in ray.nodes()
        if n.get("Alive") and n.get("Resources", {}).get(NODE_RESOURCE, 0) > 0
    ]


def _targets(ray: Any, nodes: list[dict[str, Any]], every: str) -> list[str]:
    """The node ids `--on-every-node` runs on: every node, or the first of each kind (as each
    node describes itself)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ids = [n["NodeID"] for n in nodes]
    if every == "node":
        return ids
    describe = ray.remote(num_cpus=0, max_retries=0)(describe_node)
    refs = [
        describe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(i, soft=False)).remote()
        for i in ids
    ]
    kinds: dict[tuple, str] = {}
    for node, machine in zip(ids, ray.get(refs, timeout=120), strict=True):
        kind = (machine["machine_id"], tuple(machine["gpus"]))
        kinds.setdefault(kind, node)
    return list(kinds.values())


# ------------------------------------------------------------------------------ connecting
def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` as (host, port), or a one-line UserError."""
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(
            f"--address must be HOST:PORT of a Ray head, e.g. 10.0.0.5:6379 (got {address!r})"
        )
    return host, int(port)


def connect(address: str, timeout: float, runtime_env: dict[str, Any] | None = None) -> None:
    """Connect this process to the Ray cluster at `address`, or raise a one-line UserError
    within about `timeout` seconds: Ray missing, a bad address, nothing listening there, or
    something that is not a Ray head (where `ray.init` would wait for minutes)."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'mnist-bench[ray]'") from None
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UserError(f"no Ray cluster at {address}: cannot connect ({why})") from None
    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(
                address=f"{host}:{port}",
                runtime_env=runtime_env,
                logging_level=logging.ERROR,
                log_to_driver=False,
                configure_logging=True,
            )
        except BaseException as exc:  # noqa: BLE001 - reported below, in the caller's thread
            failure.append(exc)

    # `ray.init` cannot be given a deadline: it runs in a thread that is abandoned past it.
    thread = threading.Thread(target=init, daemon=True, name="ray-connect")
    with _quiet_stderr():  # Ray's C++ warnings (a GCS it keeps trying) would bury our one line
        thread.start()
        thread.join(timeout)
    if thread.is_alive():
        raise UserError(
            f"no Ray cluster answered at {address} within {timeout:g} s (is it the head's GCS "
            "port, 6379 unless ray start --port said otherwise?)"
        )
    if failure:
        text = next(
            (x for x in str(failure[0]).splitlines() if x.strip()), type(failure[0]).__name__
        )
        raise UserError(f"cannot connect to the Ray cluster at {address}: {text.strip()[:300]}")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 into a scratch file for the duration (it is where Ray's C++ logs)."""
    import tempfile

    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def runtime_env_option(text: str | None) -> dict[str, Any] | None:
    """`--runtime-env`: a JSON object, or a regular file holding one, of at most
    `files.RUNTIME_ENV_LIMIT` bytes and `RUNTIME_ENV_DEPTH` levels of nesting.

    Raises:
        UserError: unreadable, not a regular file, too large, not UTF-8 JSON, too deep, or
            not an object.
    """
    from mnist_bench.runfile import files

    if text is None:
        return None
    raw = text.encode("utf-8", "surrogateescape")
    if not text.lstrip().startswith("{"):
        try:
            raw = files.read_bytes(text, limit=files.RUNTIME_ENV_LIMIT, what="runtime env")
        except UserError as exc:
            raise UserError(f"--runtime-env {exc}") from None
        except OSError as exc:
            raise UserError(f"--runtime-env {text}: unreadable ({exc.strerror})") from None
    if len(raw) > files.RUNTIME_ENV_LIMIT:
        raise UserError(
            f"--runtime-env: too large ({files.size_text(len(raw))}; "
            f"limit {files.size_text(files.RUNTIME_ENV_LIMIT)})"
        )
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError("--runtime-env: not JSON (not UTF-8 text)") from None
    except ValueError as exc:
        raise UserError(f"--runtime-env: not JSON ({exc})") from None
    except RecursionError:  # deeper than the parser goes
        too_deep = True
    else:
        too_deep = _depth(value) > RUNTIME_ENV_DEPTH
    if too_deep:
        raise UserError(f"--runtime-env: nested more than {RUNTIME_ENV_DEPTH} levels deep")
    if not isinstance(value, dict):
        raise UserError('--runtime-env must be a JSON object, e.g. {"pip": ["mnist-bench[jax]"]}')
    return value


def _depth(value: Any) -> int:
    """Levels of nesting of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


# ------------------------------------------------------------------------------ on the node
def describe_node() -> dict[str, Any]:
    """Who and what the node running this is: the fields of `records.Machine`."""
    import mnist_bench
    from mnist_bench.core import environment

    cpu = environment.cpu_info()
    node_id = ""
    with contextlib.suppress(Exception):
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    return {
        "node_id": node_id,
        "hostname": socket.gethostname(),
        "machine_id": environment.machine_id(),
        "cpu": cpu["model"],
        "cores": cpu["logical_cores"],
        "usable_cores": cpu["usable_cores"],
        "memory_gib": environment.total_memory_gib(),
        "gpus": [g["name"] for g in environment.nvidia_gpus()],
        "python": platform.python_version(),
        "mnist_bench": mnist_bench.__version__,
        "packages": {
            name: environment.package_version(name)
            for name in ("keras", *environment.BACKEND_PACKAGES.values(), "numpy", "ray")
        },
    }


class _Collect(Observer):
    """The launcher's events inside a task: only the backend's `ready` report is kept."""

    def __init__(self) -> None:
        self.ready: dict[str, Any] = {}

    def on_ready(self, backend: str, info: dict[str, Any]) -> None:
        self.ready = info


def _undo_ray_threads() -> None:
    """Ray sets OMP_NUM_THREADS=1 in a task that asks for no CPU where the node left it unset;
    the node's own setting (the raylet's, this process's parent) is what a local run there
    would have, so the record measures the same thing."""
    import psutil

    try:
        own = psutil.Process(os.getppid()).environ().get("OMP_NUM_THREADS")
    except (psutil.Error, OSError):  # no parent to ask: "1" is most likely Ray's
        own = os.environ.get("OMP_NUM_THREADS")
        own = None if own == "1" else own
    if own is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = own


def _run_job(request: bytes, record_timeout: float | None, train_samples: int) -> dict[str, Any]:
    """The Ray task: one job in a fresh worker process on this node, as the local executor
    runs it. Returns the record, the backend's `ready` report and the node's description."""
    from mnist_bench.execute import launcher

    _undo_ray_threads()
    collect = _Collect()
    records = list(
        launcher.run_backend(
            WorkerRequest.from_json(request),
            collect,
            record_timeout=record_timeout,
            train_samples=lambda job: train_samples,
        )
    )
    return {"record": records[0].to_dict(), "ready": collect.ready, "machine": describe_node()}
