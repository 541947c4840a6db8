"""Smoke tests of the scripts in ``benchmarks/`` (they assert no performance targets).

The scripts run as ``python benchmarks/<name>.py``, i.e. as top-level modules; putting
``benchmarks/`` on ``sys.path`` lets these tests import them under the same names (as
``tests/engine_crash`` does for ``_workload``), which is also how mypy maps them when it is
given ``benchmarks/emulator_bench.py`` and this package together.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCHMARKS not in sys.path:
    sys.path.insert(0, _BENCHMARKS)
