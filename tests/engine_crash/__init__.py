"""Run-engine acceptance tests: SIGKILL crashes, several workers on PostgreSQL, and a smoke
test of the engine benchmark's harness.

The harness lives in ``benchmarks/_workload.py`` (shared with ``benchmarks/engine_bench.py``,
which runs as a script and imports it as the top-level module ``_workload``); putting
``benchmarks/`` on ``sys.path`` here lets these tests import it under that same name.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCHMARKS not in sys.path:
    sys.path.insert(0, _BENCHMARKS)
