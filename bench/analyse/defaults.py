"""The analysis stage's names and defaults that the commands' options are described with: what
rows group by (`analyse.rows`), what `history` follows over commits and its defaults
(`analyse.history`). Light on purpose (no records, no statistics), so that a command's `--help`
imports this and nothing heavier; the modules that use the values import them from here."""

from __future__ import annotations

from mnist_bench.core.metrics import TRACKED  # noqa: F401  (history's, from the metrics table)

GROUP_KEYS = ("variant", "backend", "device", "machine")  # what rows can be grouped by
DEFAULT_BY = ("variant", "backend", "device")

DEFAULT_ALPHA = 0.01  # `history`: a step is significant below this p-value

DEFAULT_RECENT = 5  # `history --fail-on-step`: the newest commits a worse step fails in
