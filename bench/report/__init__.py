"""Rendering: every module here reads records and nothing else.

- `rows`: report rows (grouping records by configuration), the one metric list, cells as text.
- `collect`: finding and reading run files; machine labels.
- `formats`: the `report` formats by name; `table`, `markdown`, `csvout`, `html` render them.
- `figures`: the HTML report's plots (matplotlib Figures); `run_figures`: the figures `run` draws
  per record and per variant.
- `compare`: matching two sets of records and judging each change (compare and check).
- `report_cmd`, `compare_cmd`: the `report`, `compare` and `check` commands; `cli` re-exports them.
"""
