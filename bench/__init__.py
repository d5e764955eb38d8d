"""mnist-bench: benchmark Keras 3 model variants across backends and machines.

From Python or a notebook (`mnist_bench.api`; nothing is imported until first used, so
`import mnist_bench` and `mnist-bench --help` stay quick and load no framework):

    >>> import mnist_bench
    >>> results = mnist_bench.run(variants=["two-dense"], backends=["jax"], epochs=1)
    >>> results.to_pandas()
    >>> mnist_bench.check(results, "results/baseline").passed
    >>> mnist_bench.report("results/runs", by="variant,machine").to_pandas()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, imported from `mnist_bench.api` on first use.
__all__ = [
    "Comparison",
    "Error",
    "Results",
    "Verdict",
    "__version__",
    "check",
    "compare",
    "export",
    "history",
    "load",
    "merge",
    "parity",
    "power",
    "report",
    "run",
]
_API = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:
    from mnist_bench.api import (
        Comparison,
        Error,
        Results,
        Verdict,
        check,
        compare,
        export,
        history,
        load,
        merge,
        parity,
        power,
        report,
        run,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from mnist_bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'mnist_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
