"""What `export` writes to: its targets, github-action-benchmark's two directions and MLflow's
default experiment. Light on purpose (no records), so that `mnist-bench export --help` names
them without importing the exports themselves (`publish.export`)."""

from __future__ import annotations

TARGETS = ("github-action-benchmark", "bencher", "mlflow")
DIRECTIONS = ("bigger", "smaller")
DEFAULT_EXPERIMENT = "mnist-bench"
