"""The benchmark scripts import their sibling scripts by module name (``from budget_search import ...``),
as they do when run as ``python benchmarks/NAME.py``; the tests that load a script by its file path need
the folder on ``sys.path`` as well, whatever test ran before."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
