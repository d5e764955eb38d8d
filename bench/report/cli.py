"""Options and handlers of `report`, `compare` and `check` (framework-free).

`report` lives in `publish.py`; `compare` and `check` in `gate.py`.
"""

from bench.report.gate import add_check, add_compare, cmd_check, cmd_compare
from bench.report.publish import add_report, cmd_report

__all__ = ["add_check", "add_compare", "add_report", "cmd_check", "cmd_compare", "cmd_report"]
