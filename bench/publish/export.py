"""Exports of run files into the tools users already look at (`mnist_bench.export`,
`mnist-bench export`).

- `github-action-benchmark`: its custom-tool JSON, a list of `{name, unit, value, range, extra}`.
  The action takes one direction per file (`customBiggerIsBetter` or `customSmallerIsBetter`),
  so one export holds the metrics of one `--direction`: bigger (accuracy, throughput; the
  default) or smaller (times, loss).
- `bencher`: Bencher Metric Format, `{benchmark: {measure: {value, lower_value, upper_value}}}`;
  both directions in one file (Bencher sets a measure's direction in its thresholds).
- `mlflow`: one MLflow run per record on a tracking server (`to_mlflow`).

The JSON formats hold one entry per configuration: the mean over its seeds, with the 95%
confidence interval where there are two seeds or more. Records that did not finish ok have no
value and are left out with a note. Imports no framework; MLflow and matplotlib only for
`--to mlflow`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_bench.analyse.rows import Row
from mnist_bench.core import identity, stats
from mnist_bench.core.config import TrainSettings
from mnist_bench.core.errors import UserError
from mnist_bench.core.metrics import HEADLINE, METRICS, Metric
from mnist_bench.publish.targets import DEFAULT_EXPERIMENT, DIRECTIONS, TARGETS  # noqa: F401
from mnist_bench.runfile.machine import Environment, machine_label
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    import pandas
    from mnist_bench.analyse.report import Report
    from mnist_bench.runfile.collect import LoadedRun


# Each metric's unit and the factor its mean is exported with (fractions as percentages).
UNITS: dict[str, tuple[str, float]] = {m.name: (m.unit, m.export_scale) for m in METRICS}


@dataclass
class Export:
    """A benchmark-JSON export: what `mnist_bench.export` returns and `mnist-bench export`
    writes.

    Attributes:
        to: the format (github-action-benchmark or bencher).
        metrics: the metrics exported.
        data: the JSON value: a list of entries (github-action-benchmark) or benchmark ->
            measure -> value (bencher).
        report: the runs and rows it was made from.
        notes: what was left out (records that did not finish ok), a line each.
        warnings: configurations averaged over several machines or commits, a line each.
    """

    to: str
    metrics: tuple[Metric, ...]
    data: Any
    report: Report
    notes: list[str]
    warnings: list[str]

    @property
    def count(self) -> int:
        """The values exported."""
        return _count(self.data)

    def to_json(self) -> str:
        """The file's text: indented JSON, one newline at the end."""
        return json.dumps(self.data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame, one row per configuration and metric: `name` (the configuration's),
        `metric`, `unit`, `value` (the mean over seeds, in the unit exported), `low`, `high`
        (its 95% CI; None with one seed).

        Raises:
            UserError: pandas is not installed.
        """
        from mnist_bench.runfile.frame import data_frame

        rows = _exportable(self.report.rows)[0]
        out = []
        for row, name in zip(rows, row_names(rows), strict=True):
            for metric in self.metrics:
                summary = row.summary(metric.name)
                if summary is not None:
                    value = Value.of(summary, metric)
                    out.append(
                        {
                            "name": name,
                            "metric": metric.name,
                            "unit": value.unit,
                            "value": value.mean,
                            "low": value.low,
                            "high": value.high,
                        }
                    )
        return data_frame(out, ["name", "metric", "unit", "value", "low", "high"])


def build(report: Report, to: str, metrics: tuple[Metric, ...]) -> Export:
    """The export of `report`'s ok rows to the JSON format `to`.

    Raises:
        UserError: no record finished ok with a value of `metrics`.
    """
    rows, notes = _exportable(report.rows)
    if to == "github-action-benchmark":
        data: Any = github_action_benchmark(rows, metrics, report)
    else:
        data = bencher(rows, metrics)
    if not data:
        raise UserError(
            "nothing to export: no record finished ok with a value of "
            + ", ".join(m.name for m in metrics)
            + "".join(f" ({note})" for note in notes)
        )
    return Export(to, metrics, data, report, notes, mixing_warnings(rows, report))


def _count(data: Any) -> int:
    return len(data) if isinstance(data, list) else sum(len(v) for v in data.values())


def select_metrics(
    given: list[str] | None,
    target: str,
    direction: str = "bigger",
    flag: Callable[[str], str] = lambda name: {"metrics": "--metric"}.get(name, f"--{name}"),
) -> tuple[Metric, ...]:
    """The metrics `--metric` names (comma-separated, repeatable, `all`), or the defaults.

    For github-action-benchmark only those of `direction`: a file holds one direction.
    `flag` names an option in messages (`metrics`, `direction`).

    Raises:
        UserError: an unknown metric, or one of the other direction.
    """
    bigger = direction == "bigger"
    one_way = target == "github-action-benchmark"
    if not given:
        return tuple(m for m in HEADLINE if not one_way or m.higher_is_better == bigger)
    names = [part.strip() for item in given for part in item.split(",") if part.strip()]
    by_name = {m.name: m for m in METRICS}
    if "all" in names:
        return tuple(m for m in METRICS if not one_way or m.higher_is_better == bigger)
    chosen = []
    for name in dict.fromkeys(names):
        if name not in by_name:
            raise UserError(f"unknown metric {name!r}; valid: all, {', '.join(by_name)}")
        metric = by_name[name]
        if one_way and metric.higher_is_better != bigger:
            other = "bigger" if metric.higher_is_better else "smaller"
            raise UserError(
                f"{name} is {other}-is-better: export it with {flag('direction')} {other} (the "
                "action takes one direction per file)"
            )
        chosen.append(metric)
    if not chosen:
        raise UserError(f"{flag('metrics')} names no metric")
    return tuple(chosen)


# ----------------------------------------------------------------------------------- names
_DEFAULTS = TrainSettings().to_dict()


def configuration_name(record: Record) -> str:
    """A configuration's stable name: variant, backend, where it ran, the dataset unless MNIST,
    and each setting that differs from `TrainSettings`' defaults: `two-dense · jax · cpu ·
    epochs=2`. It depends on the configuration alone, never on what else is exported, so a
    dashboard's series keeps its name from one commit to the next."""
    job = record.job
    parts = [job.variant, job.backend, record.where]
    if job.dataset != "mnist":
        parts.append(job.dataset)
    for name, value in job.settings.to_dict().items():
        if value != _DEFAULTS[name]:
            parts.append(f"{name}={identity.format_value(value)}")
    return " · ".join(parts)


def row_names(rows: list[Row]) -> list[str]:
    """`configuration_name` of each row; where two rows share one (the same settings on two
    datasets of the same name), the dataset digest tells them apart."""
    names = [configuration_name(row.records[0]) for row in rows]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            names[i] = f"{name} · digest={rows[i].records[0].job.dataset_digest or 'none'}"
    return names


# ------------------------------------------------------------------------------ JSON formats
@dataclass(frozen=True)
class Value:
    """One configuration's value of one metric, in the unit it is exported in."""

    mean: float
    low: float | None  # the 95% CI; None with one seed
    high: float | None
    unit: str

    @classmethod
    def of(cls, summary: stats.Summary, metric: Metric) -> Value:
        unit, scale = metric.unit, metric.export_scale
        low = None if summary.ci_low is None else _tidy(summary.ci_low * scale)
        high = None if summary.ci_high is None else _tidy(summary.ci_high * scale)
        return cls(_tidy(summary.mean * scale), low, high, unit)


def _tidy(value: float) -> float:
    """12 significant digits: 70.1, not 70.10000000000001 (a fraction times 100)."""
    return float(f"{value:.12g}")


def _exportable(rows: list[Row]) -> tuple[list[Row], list[str]]:
    """The rows that finished ok, and a note on those left out."""
    bad = [row for row in rows if row.status != "ok"]
    notes = []
    if bad:
        r = bad[0].records[0]
        notes.append(
            f"left out {len(bad)} record(s) that did not finish ok, e.g. {r.job.label()}: "
            f"{r.status}" + (f" ({r.error})" if r.error else "")
        )
    return [row for row in rows if row.status == "ok"], notes


def _extra(row: Row, report: Report) -> str:
    """The tooltip of github-action-benchmark: seeds, machine, commit, run ids, flags."""
    seeds = sorted({r.seed for r in row.records})
    runs = list(dict.fromkeys(report.run_id(r) for r in row.records))
    machines = list(dict.fromkeys(report.machine_of(r) for r in row.records))
    lines = [
        f"seeds: {len(seeds)} ({', '.join(map(str, seeds))})",
        f"machine: {'; '.join(machines)}",
        f"commit: {', '.join(_commits(row, report)) or 'unknown'}",
        f"run: {', '.join(runs)}",
    ]
    flags = [name for name in ("contended", "unstable") if getattr(row, name)]
    if flags:
        lines.append(f"timings: {', '.join(flags)}")
    return "\n".join(lines)


def _commits(row: Row, report: Report) -> list[str]:
    out = []
    for r in row.records:
        env = report.run_of[id(r)].env
        commit = (env.git_commit or "")[:12]
        if commit:
            out.append(commit + (" (dirty)" if env.git_dirty else ""))
    return list(dict.fromkeys(out))


def github_action_benchmark(
    rows: list[Row], metrics: tuple[Metric, ...], report: Report
) -> list[dict[str, Any]]:
    """The custom-tool JSON of github-action-benchmark: one entry per configuration and metric,
    named `<configuration> · <metric>`; `range` is the 95% CI half-width (two seeds or more)."""
    out = []
    for row, name in zip(rows, row_names(rows), strict=True):
        for metric in metrics:
            summary = row.summary(metric.name)
            if summary is None:
                continue
            value = Value.of(summary, metric)
            entry: dict[str, Any] = {
                "name": f"{name} · {metric.name}",
                "unit": value.unit,
                "value": value.mean,
            }
            if value.high is not None:
                entry["range"] = f"± {value.high - value.mean:.6g}"
            entry["extra"] = _extra(row, report)
            out.append(entry)
    return out


def bencher(rows: list[Row], metrics: tuple[Metric, ...]) -> dict[str, dict[str, Any]]:
    """Bencher Metric Format: benchmark (the configuration) -> measure (the metric's name in
    kebab case, e.g. `test-accuracy`) -> value, with the 95% CI as lower_value / upper_value."""
    out: dict[str, dict[str, Any]] = {}
    for row, name in zip(rows, row_names(rows), strict=True):
        measures = {}
        for metric in metrics:
            summary = row.summary(metric.name)
            if summary is None:
                continue
            value = Value.of(summary, metric)
            measure: dict[str, float] = {"value": value.mean}
            if value.low is not None and value.high is not None:
                measure["lower_value"] = value.low
                measure["upper_value"] = value.high
            measures[metric.name.replace("_", "-")] = measure
        if measures:
            out[name] = measures
    return out


def mixing_warnings(rows: list[Row], report: Report) -> list[str]:
    """A configuration whose seeds come from several machines or commits is averaged over them:
    say so, since a dashboard's point stands for one commit on one machine."""
    out = []
    for row, name in zip(rows, row_names(rows), strict=True):
        machines = {report.machine_of(r) for r in row.records}
        commits = _commits(row, report)
        if len(machines) > 1 or len(commits) > 1:
            what = "machines" if len(machines) > 1 else "commits"
            out.append(
                f"{name}: averaged over {len(machines) if what == 'machines' else len(commits)} "
                f"{what}; export one commit's runs from one machine at a time for a time series"
            )
    return out


# ------------------------------------------------------------------------------------ MLflow
KEY_TAG = "mnist_bench.key"  # one record of one run file: what makes a second export add nothing
# Set unless the user has set them: no usage report leaves this machine, and a server that
# stops answering fails the export within seconds, not after minutes of retries. The timeout
# bounds each whole request too, retries included (`network.bounded`).
_MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout is ours
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",  # a search or a batch of metrics takes well under 1 s
}
_CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the server before giving up
_MAX_METRICS = 1000  # per log_batch call (MLflow's limit)
_RUN_STATUS = {"ok": "FINISHED", "failed": "FAILED", "diverged": "FAILED"}  # others: left out


@dataclass
class MlflowExport:
    """What `to_mlflow` did: runs created, found already exported, remade, left out."""

    uri: str
    experiment: str
    created: int = 0
    present: int = 0
    remade: int = 0  # left unfinished by an export that was cut short: deleted and made again
    left_out: int = 0  # never started: nothing to log

    def summary(self) -> str:
        parts = [f"{self.created} run(s) created", f"{self.present} already there"]
        if self.remade:
            parts.append(f"{self.remade} left unfinished by an earlier export made again")
        if self.left_out:
            parts.append(f"{self.left_out} never-started record(s) left out")
        return f"mlflow: {', '.join(parts)} (experiment {self.experiment!r} at {self.uri})"


def record_key(run_id: str, record: Record, occurrence: int = 0) -> str:
    """The record's MLflow tag value: a digest of its run, its job and which occurrence of the
    job in the run it is (a job recorded twice is two records). Hex only, so it is safe inside
    a search filter."""
    import hashlib

    job = json.dumps(record.job.to_dict(), sort_keys=True)
    return hashlib.sha256(f"{run_id}\n{job}\n{occurrence}".encode()).hexdigest()[:32]


def to_mlflow(report: Report, uri: str, experiment: str) -> MlflowExport:
    """Log every record of `report.runs` as one MLflow run in `experiment` (created if missing)
    on the tracking server at `uri`, unless a run tagged with its `record_key` is there already.

    Raises:
        UserError: MLflow is not installed, or the server is unreachable or refuses a request.
    """
    import tempfile

    from mnist_bench.publish import network

    seconds = _request_seconds()
    client = _connect(uri)
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    done = MlflowExport(uri, experiment)
    try:
        with network.bounded(seconds):
            experiment_id = _experiment(client, uri, experiment)
        with (
            tempfile.TemporaryDirectory(prefix="mnist-bench-export-") as tmp,
            network.bounded(seconds),
        ):
            for loaded in report.runs:
                seen: dict[tuple, int] = {}
                for record in loaded.run.records:
                    occurrence = seen[record.key] = seen.get(record.key, -1) + 1
                    if record.status not in _RUN_STATUS:
                        done.left_out += 1
                        continue
                    key = record_key(loaded.run.run_id, record, occurrence)
                    found = client.search_runs(
                        [experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'"
                    )
                    if any(run.info.status != "RUNNING" for run in found):
                        done.present += 1
                        continue
                    for run in found:  # an export cut short left it unfinished
                        client.delete_run(run.info.run_id)
                    _log_record(client, experiment_id, loaded, record, key, Path(tmp))
                    done.remade += bool(found)
                    done.created += not found
    except (MlflowException, RequestException, OSError, network.NetworkBound) as exc:
        raise UserError(f"MLflow at {uri}: {_first_line(exc)}") from None
    return done


def _request_seconds() -> float:
    """The whole time one request may take: MLFLOW_HTTP_REQUEST_TIMEOUT (MLflow's own timeout
    on each socket operation), 10 s unless the user set it."""
    import math

    name = "MLFLOW_HTTP_REQUEST_TIMEOUT"
    text = os.environ.get(name, _MLFLOW_ENV[name])
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise UserError(f"{name} must be seconds > 0 (got {text!r})")
    return seconds


def _first_line(exc: BaseException) -> str:
    """MLflow's message on one line, without the HTML page a wrong URL answers with."""
    text = " ".join(str(exc).split()).split(" Response body:")[0] or exc.__class__.__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _connect(uri: str) -> Any:
    for name, value in _MLFLOW_ENV.items():
        os.environ.setdefault(name, value)
    _check_reachable(uri)  # before MLflow's import, which takes seconds
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise UserError(
            "--to mlflow needs MLflow's client: pip install 'mnist-bench[mlflow]'"
        ) from None
    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as exc:  # MLflow raises several types for a URI it cannot use
        raise UserError(f"--tracking-uri {uri}: {_first_line(exc)}") from None


def _check_reachable(uri: str) -> None:
    """For an http(s) URI, open a connection to the server within `_CONNECT_TIMEOUT` seconds
    (MLflow's own client would retry for minutes). Skipped where a proxy serves the host."""
    import socket
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UserError(f"--tracking-uri {uri}: {exc}") from None
    if not host:
        raise UserError(f"--tracking-uri {uri}: no host")
    if parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT).close()
    except TimeoutError:
        raise UserError(
            f"cannot reach the MLflow tracking server at {uri} "
            f"(no answer within {_CONNECT_TIMEOUT:g} s)"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        raise UserError(f"cannot reach the MLflow tracking server at {uri} ({reason})") from None


def _experiment(client: Any, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name)
    if found.lifecycle_stage != "active":
        raise UserError(
            f"experiment {name!r} on {uri} is deleted; restore it or pass another --experiment"
        )
    return found.experiment_id


def _ms(utc: str | None) -> int | None:
    from datetime import datetime

    try:
        return round(datetime.fromisoformat(utc).timestamp() * 1000) if utc else None
    except ValueError:
        return None


def _log_record(
    client: Any, experiment_id: str, loaded: LoadedRun, record: Record, key: str, tmp: Path
) -> None:
    """One MLflow run: params, tags and metrics in batches, then the artifacts, then its end."""
    import time

    from mlflow.entities import Param

    start = _ms(record.started_utc) or _ms(loaded.run.started_utc) or round(time.time() * 1000)
    end = start + round((record.wall_seconds or 0.0) * 1000)
    tags = _tags(loaded, record, key)
    run_id = client.create_run(
        experiment_id, start_time=start, tags=tags, run_name=record.job.label()
    ).info.run_id
    params = [Param(k, v) for k, v in _params(record).items()]
    metrics = _metrics(record, start, end)
    client.log_batch(run_id, metrics=metrics[:_MAX_METRICS], params=params)
    for i in range(_MAX_METRICS, len(metrics), _MAX_METRICS):
        client.log_batch(run_id, metrics=metrics[i : i + _MAX_METRICS])
    for png in _figures(loaded.path, record, tmp, loaded.env):
        client.log_artifact(run_id, str(png), "figures")
    client.log_artifact(run_id, str(loaded.path), "run")
    from mnist_bench.runfile.records import journal_path

    if journal_path(loaded.path).is_file():
        client.log_artifact(run_id, str(journal_path(loaded.path)), "run")
    client.set_terminated(run_id, status=_RUN_STATUS[record.status], end_time=end)


def _figures(run_path: Path, record: Record, tmp: Path, env: Environment) -> list[Path]:
    """The record's confusion-matrix heatmap and misclassified-digit grid as `run` saved them
    beside its run file (`RUN/<stem>-confusion.png`); the heatmap drawn anew where it is not
    there (a run file copied without its folder, or run with figures off)."""
    from mnist_bench.render import run_figures

    if not record.confusion_matrix or record.test_accuracy is None:
        return []
    saved = run_path.with_suffix("")
    stem = run_figures.stem(record)
    heatmap, grid = saved / f"{stem}-confusion.png", saved / f"{stem}-errors.png"
    if not heatmap.is_file():
        heatmap = tmp / heatmap.name
        run_figures.save_confusion_heatmap(record, env.class_names or (), heatmap)
    return [heatmap, grid] if grid.is_file() else [heatmap]


def _params(record: Record) -> dict[str, str]:
    """The job (configuration, settings, seed, repeat) and the model's size."""
    job = record.job
    values: dict[str, Any] = {**job.fields(), "seed": job.seed, "repeat": job.repeat}
    for name in ("params", "flops_per_train_sample", "flops_per_infer_sample"):
        values["model_" + name if name == "params" else name] = getattr(record, name)
    for name in ("train_samples", "test_samples"):
        values[name] = getattr(record, name)
    return {k: identity.format_value(v) for k, v in values.items()}


def _tags(loaded: LoadedRun, record: Record, key: str) -> dict[str, str]:
    """Provenance: run id, status, machine, commit, versions, timing flags."""
    env = loaded.env
    backend = record.backend
    version = env.backend_versions.get(backend)
    tags: dict[str, Any] = {
        KEY_TAG: key,
        "mnist_bench.run_id": loaded.run.run_id,
        "mnist_bench.run_file": loaded.path.name,
        "mnist_bench.status": record.status,
        "mnist_bench.error": record.error,
        "mnist_bench.device": record.where,
        "mnist_bench.machine": machine_label(env),
        "mnist_bench.machine_id": env.machine_id,
        "mnist_bench.version": env.mnist_bench,
        "mnist_bench.python": env.python,
        "mnist_bench.os": env.os,
        "mnist_bench.keras": env.packages.get("keras"),
        f"mnist_bench.{backend}": version or env.packages.get(backend),
        "mnist_bench.started_utc": record.started_utc,
        "mnist_bench.contended": record.contended,
        "mnist_bench.unstable": record.unstable,
        "mnist_bench.deterministic": record.deterministic,
        "mlflow.source.git.commit": env.git_commit,
        "mnist_bench.git_dirty": env.git_dirty,
    }
    out = {}
    for name, value in tags.items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out[name] = text[:5000]  # MLflow's limit on a tag's value is 8,000 characters
    return out


def _metrics(record: Record, start: int, end: int) -> list[Any]:
    """Per epoch (step = epoch, from 1): its seconds, training loss and test accuracy, each at
    the time its epoch ended; then the final values (step 0) at the record's end."""
    import math

    from mlflow.entities import Metric as MlflowMetric

    out = []
    now = start
    for epoch, seconds in enumerate(record.epoch_seconds, 1):
        now += round(seconds * 1000)
        per_epoch = {
            "epoch_seconds": seconds,
            "epoch_train_loss": _at(record.loss_curve, epoch - 1),
            "epoch_test_accuracy": _at(record.accuracy_curve, epoch - 1),
        }
        out += [
            MlflowMetric(k, float(v), now, epoch) for k, v in per_epoch.items() if v is not None
        ]
    final: dict[str, Any] = {m.name: getattr(record, m.name) for m in METRICS}
    final["wall_seconds"] = record.wall_seconds
    final["steady_epoch_cv"] = record.steady_epoch_cv
    for name, value in (record.latency_ms or {}).items():
        if name != "queries":
            final[f"latency_ms_{name}"] = value
    for item in record.inference:
        final[f"infer_samples_per_second_batch_{item.get('batch_size')}"] = item.get(
            "samples_per_second"
        )
    for item in record.time_to_accuracy:
        final[f"seconds_to_accuracy_{item.get('target')}"] = item.get("seconds")
    for name, value in final.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and math.isfinite(value):
            out.append(MlflowMetric(name, float(value), end, 0))
    return out


def _at(values: list, index: int) -> Any:
    return values[index] if index < len(values) else None
