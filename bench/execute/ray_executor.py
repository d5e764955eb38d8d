"""Runs a run's jobs on the nodes of a Ray cluster (`mnist-bench run --executor ray`).

Each job is one Ray task, and inside it the same isolated worker process the local executor
starts (`launcher.run_backend` with a one-job request): the same timing code, the same record.
The driver keeps everything else as it is for a local run (`runner.Run.execute`): records are
journaled as each task finishes, the run file is written atomically, an interrupt marks it
`interrupted` and `--resume` finishes it on either executor.

A job takes a whole node, so two benchmark jobs never share a machine, on any Ray cluster as it
runs: the driver places each task on a node itself (`NodeAffinitySchedulingStrategy`, not soft)
and the task asks for every CPU that node offers, so Ray starts it only once nothing else holds
the node's CPUs. `--jobs-per-node K` asks for 1/K of them, K tasks at a time. On a mixed
cluster a custom resource marks the nodes meant for benchmarks (`--node-resource NAME`; nodes
started with `ray start --resources '{"NAME": 1}'`): a task then asks for all of it instead,
and only those nodes run records. Where some node offers `mnist_bench_node`, that resource is
used unless `--node-resource` says otherwise.

This module is the only one that imports Ray, and only `--executor ray` imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mnist_bench.core.errors import UserError
from mnist_bench.core.identity import Job, WorkerRequest
from mnist_bench.execute.launcher import Observer
from mnist_bench.runfile.records import Machine, Record

if TYPE_CHECKING:
    from mnist_bench.execute.runner import Run

CPU = "CPU"  # the default: a task asks for every CPU its node offers
NODE_RESOURCE = "mnist_bench_node"  # the custom resource used where some live node offers it
RAYS_OWN = ("GPU", "memory", "object_store_memory")  # asked for otherwise, or not at all
RESOURCE_UNIT = 10_000  # Ray counts a resource in ten-thousandths
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
        node_resource: what a job asks all of on its node: `CPU` (any node with CPUs) or a
            custom resource (only the nodes that offer it). None: `mnist_bench_node` where
            some live node offers it, else `CPU`.
    """

    address: str
    jobs_per_node: int = 1
    on_every_node: str | None = None
    runtime_env: dict[str, Any] | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    node_resource: str | None = None

    def __post_init__(self) -> None:
        if self.jobs_per_node < 1:
            raise UserError(f"--jobs-per-node must be at least 1 (got {self.jobs_per_node})")
        if self.on_every_node not in (None, *EVERY_NODE):
            raise UserError(f"--on-every-node takes {' or '.join(EVERY_NODE)}")
        if self.node_resource is not None and (
            not self.node_resource.strip() or self.node_resource in RAYS_OWN
        ):
            raise UserError(
                f"--node-resource takes CPU or the name of a custom resource the nodes offer "
                f"(got {self.node_resource!r}; a GPU job asks for its GPU with --device gpu)"
            )

    def connect(self) -> None:
        """Connect to the cluster, or raise a one-line UserError within `connect_timeout`."""
        connect(self.address, self.connect_timeout, self.runtime_env)

    def records(self, run: Run, observer: Observer) -> Iterator[Record]:
        """Run the run's jobs as tasks and yield each record as its task ends. Closing the
        iterator early (an interrupt) ends the tasks still out and disconnects from the
        cluster."""
        import ray

        live = [n for n in ray.nodes() if n.get("Alive")]
        resource = self.node_resource or (
            NODE_RESOURCE if any(_offers(n, NODE_RESOURCE) for n in live) else CPU
        )
        nodes = [n for n in live if _offers(n, resource)]
        if not nodes:
            raise UserError(
                f"no live node of the Ray cluster at {self.address} offers {_asked(resource)}"
            )
        every = self.on_every_node or run.file.environment.get("executor", {}).get("on_every_node")
        run.file.environment["executor"] = {
            "kind": "ray",
            "address": self.address,
            "node_resource": resource,
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
        yield from _Tasks(ray, self, run, observer, resource).stream(runs)


@dataclass(frozen=True)
class _Waiting:
    """A job waiting for a node. `node`: the one it must run on (`--on-every-node`);
    `retry_of`: why its first attempt was lost; `lost_on`: the node that attempt ran on."""

    job: Job
    node: str | None = None
    retry_of: str | None = None
    lost_on: str | None = None


class _Tasks:
    """The tasks of one run. The driver places them: a job waits until a node that can take it
    has room (`jobs_per_node` tasks), then goes there, pinned, as a task that asks for all of
    the node's `resource` (1/K of it), so Ray starts it once nothing else holds that. Tasks are
    collected as they finish and cancelled on close."""

    def __init__(
        self, ray: Any, executor: RayExecutor, run: Run, observer: Observer, resource: str
    ) -> None:
        self.ray, self.executor, self.run, self.observer = ray, executor, run, observer
        self.resource = resource
        self.remote = ray.remote(max_retries=0, num_cpus=0)(_run_job)
        self.waiting: list[_Waiting] = []
        self.out: dict[Any, tuple[_Waiting, str]] = {}  # ref -> the job, the node it runs on
        self.nodes: dict[str, dict[str, float]] = {}  # live node id -> what it offers
        self.ready: set[str] = set()

    def submit(self, item: _Waiting, node: str) -> None:
        from mnist_bench.execute import runner
        from mnist_bench.plan import variants
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        c, job = self.run.config, item.job
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
        k = self.executor.jobs_per_node
        share = _share(self.nodes[node].get(self.resource, 0), k)
        options: dict[str, Any] = {
            "num_gpus": 1.0 / k if job.device == "gpu" else 0,
            "name": f"mnist-bench {job.label()}",
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False),
        }
        if self.resource == CPU:
            options["num_cpus"] = share
        else:
            options["resources"] = {self.resource: share}
        samples = len(self.run.dataset.x_train[: job.settings.train_limit])
        ref = self.remote.options(**options).remote(request.to_json(), c.record_timeout, samples)
        self.out[ref] = (item, node)

    def stream(self, work: list[tuple[Job, str | None]]) -> Iterator[Record]:
        self.waiting = [_Waiting(job, node) for job, node in work]
        try:
            yield from self._place()
            while self.out:
                finished = self._wait()
                for ref in finished:
                    record = self._collect(ref)
                    if record is not None:
                        yield self._landed(record)
                if finished:
                    yield from self._place()
        finally:
            self._cancel()

    def _landed(self, record: Record) -> Record:
        self.observer.on_record(record.job, record)
        return record

    def _place(self) -> Iterator[Record]:
        """Submit each waiting job that a node has room for, the least busy first. A job that
        no live node can take any more (its node left the cluster, or every node did) ends as
        a failed record. Nodes are listed afresh: one that joined takes work too."""
        if not self.waiting:
            return
        self.nodes = {
            n["NodeID"]: n.get("Resources", {})
            for n in self.ray.nodes()
            if n.get("Alive") and _offers(n, self.resource)
        }
        busy = Counter(node for _, node in self.out.values())
        left: list[_Waiting] = []
        for item in self.waiting:
            able = [
                n
                for n, offers in self.nodes.items()
                if item.node in (None, n) and (item.job.device != "gpu" or offers.get("GPU", 0))
            ]
            able = [n for n in able if n != item.lost_on] or able  # elsewhere, where it can
            room = [n for n in able if busy[n] < self.executor.jobs_per_node]
            if room:
                node = min(room, key=busy.__getitem__)
                self.submit(item, node)
                busy[node] += 1
            elif able:
                left.append(item)
            else:
                yield self._landed(self._unplaceable(item))
        self.waiting = left

    def _unplaceable(self, item: _Waiting) -> Record:
        if item.node is not None:
            cause = f"node {item.node} left the Ray cluster"
        else:
            gpu = " and a GPU" if item.job.device == "gpu" else ""
            cause = f"no live node of the Ray cluster offers {_asked(self.resource)}{gpu}"
        if item.retry_of is not None:
            cause = f"{item.retry_of}; {cause}"
        return _failed(item, cause)

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
        """The record of a finished task; None when its job waits to be retried elsewhere."""
        item, node = self.out.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = _cause(exc)
            if item.retry_of is None and item.node is None:  # once, on another node if any
                self.waiting.insert(0, _Waiting(item.job, retry_of=cause, lost_on=node))
                return None
            if item.retry_of is not None:
                cause = f"{item.retry_of}; retried on another node: {cause}"
            return _failed(item, cause)
        record = Record.from_dict(result["record"])
        record.machine = Machine(**result["machine"], retried_after=item.retry_of)
        if item.job.backend not in self.ready and result.get("ready"):
            self.ready.add(item.job.backend)
            self.observer.on_ready(item.job.backend, result["ready"])
        return record

    def _cancel(self) -> None:
        """Stop every task still out (an interrupt, or an error while collecting).

        Not by `ray.cancel(ref, force=True)`: a force-cancel that crosses a task's finishing
        reply aborts the driver inside Ray's core worker (`task_manager.cc`: "Tried to complete
        task that was not pending"; 1 in 2 interrupted runs in CI), before the run file can be
        marked interrupted. The driver disconnects instead: Ray then marks its job finished, and
        every raylet kills the job's workers, and with each its worker process (which exits with
        its parent). Disconnecting is Ray's ordinary end of a driver, with no race."""
        self.waiting.clear()
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


def _offers(node: dict[str, Any], resource: str) -> bool:
    return node.get("Resources", {}).get(resource, 0) > 0


def _asked(resource: str) -> str:
    """What a node must offer to run records, and how it offers it."""
    if resource == CPU:
        return "a CPU (ray start --num-cpus N)"
    return f"the resource {resource!r} (ray start --resources '{{\"{resource}\": 1}}')"


def _share(offered: float, jobs_per_node: int) -> float:
    """1/K of what a node offers, rounded down to Ray's unit: K shares always fit."""
    return math.floor(offered * RESOURCE_UNIT / jobs_per_node) / RESOURCE_UNIT


def _failed(item: _Waiting, cause: str) -> Record:
    record = Record(job=item.job, status="failed", error=cause)
    if item.node is not None or item.retry_of is not None:
        record.machine = Machine(node_id=item.node or "", retried_after=item.retry_of)
    return record


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
    """Ray sets OMP_NUM_THREADS in a task (to the CPUs it asked for, at least 1) where the node
    left it unset; the node's own setting (the raylet's, this process's parent) is what a local
    run there would have, so the record measures the same thing."""
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
