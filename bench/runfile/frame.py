"""Plain rows as a pandas DataFrame, for every `to_pandas` of the API's objects; pandas is
imported only here, and only when a DataFrame is asked for."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mnist_bench.core.errors import UserError
from mnist_bench.core.metrics import METRICS
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    import pandas


def data_frame(
    rows: Iterable[dict[str, Any]], columns: list[str] | None = None
) -> pandas.DataFrame:
    """A DataFrame of `rows` (one dict each); `columns` names them when there is no row.

    Raises:
        UserError: pandas is not installed.
    """
    try:
        import pandas
    except ImportError:
        raise UserError("to_pandas needs pandas: pip install 'mnist-bench[pandas]'") from None
    return pandas.DataFrame(list(rows), columns=columns)


def record_row(record: Record, run_id: str) -> dict[str, Any]:
    """One record as a flat dict: its job, status, sizes, every metric and its settings."""
    out: dict[str, Any] = {
        "run_id": run_id,
        "variant": record.variant,
        "backend": record.backend,
        "device": record.where,
        "requested_device": record.requested_device,
        "dataset": record.dataset,
        "seed": record.seed,
        "repeat": record.repeat,
        "status": record.status,
        "params": record.params,
        "train_samples": record.train_samples,
        "test_samples": record.test_samples,
    }
    out.update({m.name: getattr(record, m.name) for m in METRICS})
    out.update(error=record.error, contended=record.contended, **record.settings.to_dict())
    return out
