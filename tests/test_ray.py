"""`run --executor ray` against a real local Ray cluster: a head and one worker node.

Ray advertises the machine's routable address whatever `--node-ip-address` says, so the cluster
lives in a loopback-only network namespace, with its own PID and mount namespaces (`unshare`,
as root): killing the namespace's first process takes every Ray process down with it, whatever
state a failed test left it in. The worker node has namespaces of its own inside (a host name
of its own; a node killed at once by killing its first process), and drivers join the cluster's
with `nsenter`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import BACKEND, FAKE_WORKER, ROOT, needs_backend, run_cli
from mnist_bench.execute.ray_executor import _share
from mnist_bench.runfile.records import load_run

PORT = 6390  # the namespace has its own loopback: no other process can hold it
ADDRESS = f"127.0.0.1:{PORT}"
HEAD, WORKER = "mnb-head", "mnb-worker"
BIN = Path(sys.executable).parent
ENV = {
    "RAY_AUTH_MODE": "disabled",  # Ray 2.60 turns token auth on by default
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
    # A dead node is noticed within seconds, not Ray's default half a minute.
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
# What every node of a test cluster is started with: the namespace's loopback, a small store.
LOCAL = [
    "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
    "--object-store-memory", str(80 * 2**20),
]  # fmt: skip
NODE = ["--num-cpus", "1", "--resources", '{"mnist_bench_node": 1}', *LOCAL]
# The tiny suite: one variant on JAX (the quickest to start), one epoch on 1,000 samples.
TINY = [
    "-v", "single-dense", "-b", "jax", "--epochs", "1", "--train-limit", "1000",
    "--test-limit", "300", "--infer-batch-sizes", "32",
]  # fmt: skip

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"),
    reason="a loopback-only cluster needs root, unshare and nsenter (CI has them)",
)
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="pip install 'mnist-bench[ray]'"
)


class Cluster:
    """A head and a worker node in their own network, PID and mount namespaces, each started
    with `ray start` and these arguments."""

    def __init__(self, head: list[str] = NODE, worker: list[str] = NODE) -> None:
        self.head_args, self.worker_args = head, worker
        self.temp = Path(tempfile.mkdtemp(prefix="mnb-ray-", dir="/tmp"))  # sockets: short path
        self.ns = subprocess.Popen(
            ["unshare", "-n", "-p", "-u", "-f", "--mount-proc", "--kill-child", "sh", "-c",
             f"ip link set lo up && hostname {HEAD} && exec sleep 3600"],
            start_new_session=True,
        )  # fmt: skip
        self.inner = self._child(self.ns.pid)
        self.worker: subprocess.Popen | None = None

    @staticmethod
    def _child(pid: int, within: float = 10.0) -> int:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError(f"process {pid} started no namespace")

    def enter(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.inner), "-n", "-p", "-m", "-u", "--", *argv]

    def sh(self, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.enter(*argv), capture_output=True, text=True, timeout=timeout, env=self.env
        )

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **ENV}

    def start(self) -> None:
        head = self.sh(
            str(BIN / "ray"), "start", "--head", "--port", str(PORT), *self.head_args,
            "--include-dashboard=false", "--temp-dir", str(self.temp),
        )  # fmt: skip
        assert head.returncode == 0, head.stderr[-2000:]
        self.start_worker()

    def start_worker(self) -> None:
        """The worker node: its own host name and PID namespace; `--block` keeps it in front."""
        ray = shlex.join([str(BIN / "ray"), "start", "--block", "--address", ADDRESS,
                          *self.worker_args])  # fmt: skip
        self.worker = subprocess.Popen(
            self.enter("unshare", "-p", "-u", "-f", "--mount-proc", "--kill-child", "sh", "-c",
                       f"hostname {WORKER} && exec {ray}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env,
            start_new_session=True,
        )  # fmt: skip
        self.wait_nodes(2)

    def kill_worker(self) -> None:
        """The worker node dies at once: its namespace's first process is killed, and every
        process of the node with it."""
        assert self.worker is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=30)
        self.worker = None

    def nodes(self) -> list[dict]:
        out = self.sh(
            sys.executable, "-c",
            "import json, ray; ray.init(address='auto', logging_level='ERROR');"
            "print(json.dumps([n for n in ray.nodes() if n['Alive']]))",
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else []

    def wait_nodes(self, count: int, within: float = 90) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if len(self.nodes()) == count:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {count} live nodes in {within:.0f} s")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`mnist-bench run --executor ray` as a driver inside the cluster's namespace."""
        return self.sh(
            sys.executable, "-m", "mnist_bench", "run", "--executor", "ray",
            "--address", ADDRESS, *args, timeout=timeout,
        )  # fmt: skip

    def start_run(self, *args: str) -> subprocess.Popen:
        """`run` as `self.run` starts it, but in the background, its output piped."""
        return subprocess.Popen(
            self.enter(sys.executable, "-m", "mnist_bench", "run", "--executor", "ray",
                       "--address", ADDRESS, *args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
        )  # fmt: skip

    def processes(self, pattern: str) -> list[str]:
        """Command lines of the cluster's processes that hold `pattern`."""
        out = self.sh("ps", "-eo", "args")
        return [line for line in out.stdout.splitlines() if pattern in line]

    def close(self) -> None:
        """Kill the namespace's first process: the kernel kills every process inside."""
        for proc in (self.worker, self.ns):
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.close()


def _check_node_ids(records, nodes: list[dict]) -> None:
    ids = {n["NodeID"] for n in nodes}
    for r in records:
        assert r.machine is not None and r.machine.node_id in ids
        assert r.machine.cpu and r.machine.cores and r.machine.packages["jax"]


def _spans(records) -> dict[str, list[tuple[float, float]]]:
    """Each node's records as (start, end) in seconds, in order."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        start = datetime.fromisoformat(r.started_utc).timestamp()
        spans.setdefault(r.machine.node_id, []).append((start, start + r.wall_seconds))
    return {node: sorted(s) for node, s in spans.items()}


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_a_cluster_started_plainly_runs_one_record_per_node_at_a_time(tmp_path):
    """Nodes as `ray start` makes them, with no custom resource, and CPU counts of their own: a
    record asks for all of its node's CPUs, so two runs at once share the nodes, both nodes take
    records, and no node ever runs two at once."""
    plain = Cluster(head=LOCAL, worker=["--num-cpus", "5", *LOCAL])
    try:
        plain.start()
        drivers = [
            plain.start_run(*TINY, "--seeds", seeds, "--results-dir", str(tmp_path / "plain"))
            for seeds in ("0,1", "2,3")
        ]
        for driver in drivers:
            _, err = driver.communicate(timeout=400)
            assert driver.returncode == 0, err[-3000:]
        runs = [load_run(path) for path in (tmp_path / "plain").glob("*.json")]
        assert len(runs) == 2 and all(run.status == "complete" for run in runs)
        assert all(run.environment["executor"]["node_resource"] == "CPU" for run in runs)
        records = [r for run in runs for r in run.records]
        assert sorted(r.seed for r in records) == [0, 1, 2, 3]
        assert all(r.status == "ok" for r in records)
        assert {r.machine.hostname for r in records} == {HEAD, WORKER}
        _check_node_ids(records, plain.nodes())
        spans = _spans(records)
        assert len(spans) == 2 and sum(len(s) for s in spans.values()) == 4
        for node in spans.values():  # each record ended before the next on its node began
            assert all(a[1] <= b[0] for a, b in zip(node, node[1:], strict=False)), spans
        # Asked for a custom resource that no node offers: one clear line, exit 2.
        marked = plain.run(*TINY, "--node-resource", "mnist_bench_node",
                           "--results-dir", str(tmp_path / "marked"), timeout=120)  # fmt: skip
        assert marked.returncode == 2, marked.stderr[-3000:]
        assert "no live node of the Ray cluster at" in marked.stderr
        assert "offers the resource 'mnist_bench_node'" in marked.stderr
    finally:
        plain.close()


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_on_a_mixed_cluster_only_the_marked_node_runs_records_unless_told(tmp_path):
    """The head offers `mnist_bench_node`, the worker does not: records go to the head alone;
    `--node-resource CPU` takes every node again."""
    mixed = Cluster(head=NODE, worker=LOCAL)
    try:
        mixed.start()
        done = mixed.run(*TINY, "--seeds", "0,1", "--results-dir", str(tmp_path / "marked"))
        assert done.returncode == 0, done.stderr[-3000:]
        run = load_run(next((tmp_path / "marked").glob("*.json")))
        assert [r.status for r in run.records] == ["ok", "ok"]
        assert {r.machine.hostname for r in run.records} == {HEAD}
        assert run.environment["executor"]["node_resource"] == "mnist_bench_node"
        assert run.environment["executor"]["nodes"] == 1
        every = ["--node-resource", "CPU", "--on-every-node"]
        done = mixed.run(*TINY, *every, "--results-dir", str(tmp_path / "all"))
        assert done.returncode == 0, done.stderr[-3000:]
        run = load_run(next((tmp_path / "all").glob("*.json")))
        assert [r.status for r in run.records] == ["ok", "ok"]
        assert {r.machine.hostname for r in run.records} == {HEAD, WORKER}
        assert run.environment["executor"]["node_resource"] == "CPU"
    finally:
        mixed.close()


def test_a_share_of_a_node_is_in_rays_unit_and_k_shares_fit():
    for offered, k, share in ((5, 1, 5.0), (1, 1, 1.0), (1, 3, 0.3333), (8, 3, 2.6666)):
        assert _share(offered, k) == share and k * share <= offered


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_a_tiny_suite_spreads_over_both_nodes(cluster, tmp_path):
    done = cluster.run(*TINY, "--seeds", "0,1", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = tmp_path.glob("*.json")
    run = load_run(path)
    assert run.status == "complete" and [r.status for r in run.records] == ["ok", "ok"]
    assert {r.seed for r in run.records} == {0, 1}
    # Each node took one: both node ids, both host names, each record its own node's.
    assert len({r.machine.node_id for r in run.records}) == 2
    assert {r.machine.hostname for r in run.records} == {HEAD, WORKER}
    _check_node_ids(run.records, cluster.nodes())
    assert all(r.test_accuracy > 0.5 and r.train_samples == 1000 for r in run.records)
    assert run.environment["executor"]["kind"] == "ray"
    # Every node offers the custom resource: it is what a record asks for, unasked.
    assert run.environment["executor"]["node_resource"] == "mnist_bench_node"
    # The report tells the machines apart by node.
    report = run_cli("report", str(path), "--group-by", "variant,backend,machine", "--format",
                     "csv")  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert HEAD in report.stdout and WORKER in report.stdout


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_on_every_node_runs_the_suite_on_each_node(cluster, tmp_path):
    done = cluster.run(*TINY, "--on-every-node", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = tmp_path.glob("*.json")
    run = load_run(path)
    # One job, two nodes: two records of the same job, told apart by their node.
    assert [r.status for r in run.records] == ["ok", "ok"]
    assert len({r.key for r in run.records}) == 1
    assert {r.machine.hostname for r in run.records} == {HEAD, WORKER}
    report = run_cli("report", str(path), "--group-by", "variant,backend,machine")
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("single-dense") == 2  # a row per machine


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_a_gpu_job_that_no_node_can_take_is_skipped_not_left_waiting(cluster, tmp_path):
    """Neither node offers a GPU: Ray would keep a num_gpus task pending for ever."""
    done = cluster.run(*TINY, "--device", "cpu", "--device", "gpu",
                       "--results-dir", str(tmp_path / "mixed"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]  # the CPU record ran
    run = load_run(next((tmp_path / "mixed").glob("*.json")))
    by_device = {r.requested_device: r for r in run.records}
    assert by_device["cpu"].status == "ok" and by_device["gpu"].status == "skipped"
    assert by_device["gpu"].error.startswith(f"no GPU on the Ray cluster at {ADDRESS}")
    assert "ray start --num-gpus" in by_device["gpu"].error
    # On every node: a skipped record per node, and nothing ran at all (exit 1, one line).
    every = ["--device", "gpu", "--on-every-node", "--results-dir", str(tmp_path / "every")]
    done = cluster.run(*TINY, *every, timeout=120)  # nothing to wait for
    assert done.returncode == 1 and "error: no record ran: no GPU on node" in done.stderr
    run = load_run(next((tmp_path / "every").glob("*.json")))
    assert [r.status for r in run.records] == ["skipped", "skipped"]
    assert {r.machine.node_id for r in run.records} == {n["NodeID"] for n in cluster.nodes()}


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_an_interrupted_driver_cancels_its_tasks_and_resume_finishes(cluster, tmp_path):
    driver = subprocess.Popen(
        cluster.enter(sys.executable, "-m", "mnist_bench", "run", "--executor", "ray",
                      "--address", ADDRESS, *TINY, "--seeds", "0,1,2",
                      "--results-dir", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("*.json.journal")):  # the first record landed
            assert driver.poll() is None and time.monotonic() < deadline, "no record landed"
            time.sleep(0.2)
        # nsenter forks the driver: signal the driver itself, as a terminal's Ctrl-C does.
        pid = int(Path(f"/proc/{driver.pid}/task/{driver.pid}/children").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        _, err = driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 130, err[-3000:]
    [path] = tmp_path.glob("*.json")
    run = load_run(path)
    assert run.status == "interrupted" and run.stop_reason == "interrupted by SIGINT"
    assert 1 <= len(run.records) <= 2 and len(run.pending) == 3 - len(run.records)
    assert f"--resume {path}" in err
    # The cancelled tasks' worker processes are gone (they exit with their Ray worker).
    deadline = time.monotonic() + 30
    while cluster.processes("mnist_bench.execute.worker") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.processes("mnist_bench.execute.worker") == []
    # Resumed on the other executor: here, in local worker processes.
    resumed = run_cli("run", "--resume", str(path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = load_run(path)
    assert run.status == "complete" and run.pending == []
    assert sorted(r.seed for r in run.records) == [0, 1, 2]
    assert any(r.machine is None for r in run.records)  # the local one: the run's machine
    assert all(r.status == "ok" for r in run.records)


@pytest.mark.slow  # a real two-node cluster: run by .ci/run after the default tests
@needs_namespaces
@needs_ray
def test_a_node_that_dies_mid_record_costs_a_retry_on_another(cluster, tmp_path):
    driver = subprocess.Popen(
        cluster.enter(sys.executable, "-m", "mnist_bench", "run", "--executor", "ray",
                      "--address", ADDRESS, *TINY, "--seeds", "0,1",
                      "--results-dir", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while len(cluster.processes("mnist_bench.execute.worker")) < 2:  # a record on each node
            assert driver.poll() is None and time.monotonic() < deadline, "records did not start"
            time.sleep(0.2)
        cluster.kill_worker()
        _, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
        if cluster.worker is None:
            cluster.start_worker()  # for the tests after this one
    [path] = tmp_path.glob("*.json")
    run = load_run(path)
    assert run.status == "complete", err[-3000:]
    assert sorted(r.seed for r in run.records) == [0, 1]
    [lost] = [r for r in run.records if r.machine and r.machine.retried_after]
    print(f"lost record: {lost.status}; {lost.machine.retried_after}; {lost.error}")
    assert "Ray task was lost" in lost.machine.retried_after
    if lost.status == "ok":  # retried once, on the node that was left
        assert lost.machine.hostname == HEAD and driver.returncode == 0
    else:
        assert lost.status == "failed" and "retried on another node" in lost.error
    assert all(r.machine.hostname == HEAD for r in run.records if r.status == "ok")


@needs_ray
def test_an_unreachable_cluster_is_one_line_within_seconds(tmp_path):
    for address, within in (("127.0.0.1:9", 10), ("no-such-host.invalid:6379", 10)):
        started = time.monotonic()
        done = run_cli("run", "--executor", "ray", "--address", address, *TINY,
                       "--results-dir", str(tmp_path))  # fmt: skip
        assert time.monotonic() - started < within
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "no Ray cluster at" in done.stderr
    bad = run_cli("run", "--executor", "ray", "--address", "head-without-port")
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    bad = run_cli("run", "--address", ADDRESS)
    assert bad.returncode == 2 and "only with --executor ray" in bad.stderr
    assert not list(tmp_path.iterdir())  # no run file for a run that never started


@needs_ray
def test_a_node_resource_that_is_not_a_custom_one_is_one_line(tmp_path):
    for name, says in (("GPU", "takes CPU or the name of a custom resource"),
                       ("memory", "takes CPU or the name of a custom resource"),
                       (" ", "an empty value")):  # fmt: skip
        done = run_cli("run", "--executor", "ray", "--address", ADDRESS, "--node-resource", name,
                       *TINY, "--results-dir", str(tmp_path))  # fmt: skip
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "--node-resource" in done.stderr and says in done.stderr
    done = run_cli("run", "--node-resource", "mnist_bench_node", *TINY)
    assert done.returncode == 2 and "only with --executor ray" in done.stderr
    assert not list(tmp_path.iterdir())


@needs_backend
def test_nothing_imports_ray_without_the_ray_executor(tmp_path):
    """The driver's imports: a run, report and compare import no Ray. Its worker is the fake
    one (a real worker is another process, whose imports the driver's `sys.modules` never
    shows)."""
    tiny = [BACKEND if arg == "jax" else arg for arg in TINY]  # whichever backend is installed
    code = f"""
import sys
from mnist_bench import cli
for argv in (["--help"], ["run", "--help"]):
    try:
        cli.main(argv)
    except SystemExit:
        pass
assert cli.main(["run", *{tiny!r}, "--results-dir", {str(tmp_path)!r}]) == 0
assert cli.main(["report", {str(tmp_path)!r}]) == 0
assert cli.main(["compare", {str(tmp_path)!r}, {str(tmp_path)!r}]) in (0, 1)
assert "ray" not in sys.modules, "ray imported"
print("no ray")
"""
    env = {**os.environ, **FAKE_WORKER}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )
    assert done.returncode == 0 and "no ray" in done.stdout, done.stderr[-3000:]
