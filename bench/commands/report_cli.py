"""Options and handlers of `report`, `compare` and `check` (framework-free).

`report` lives in `report_cmd.py`; `compare` and `check` in `compare_cmd.py`.
"""

from mnist_bench.commands.compare import add_check, add_compare, cmd_check, cmd_compare
from mnist_bench.commands.report import add_report, cmd_report

__all__ = ["add_check", "add_compare", "add_report", "cmd_check", "cmd_compare", "cmd_report"]
