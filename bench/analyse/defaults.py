"""The analysis stage's names and defaults that the commands' options are described with: what
rows group by (`analyse.rows`), what `history` follows over commits and its defaults
(`analyse.history`). Light on purpose (no records, no statistics), so that a command's `--help`
imports this and nothing heavier; the modules that use the values import them from here."""

from __future__ import annotations

from mnist_bench.core.metrics import METRICS

GROUP_KEYS = ("variant", "backend", "device", "machine")  # what rows can be grouped by
DEFAULT_BY = ("variant", "backend", "device")

# What `history` follows over commits: accuracy on a linear scale (a step is in points), the
# steady epoch on a log scale (a step is a ratio, whatever the epoch's length).
TRACKED = tuple(m for name in ("test_accuracy", "steady_epoch_seconds") for m in METRICS
                if m.name == name)  # fmt: skip

DEFAULT_ALPHA = 0.01  # `history`: a step is significant below this p-value

DEFAULT_RECENT = 5  # `history --fail-on-step`: the newest commits a worse step fails in
