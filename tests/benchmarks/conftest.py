"""The benchmark scripts import their helpers (``provenance``, ``bench_solver``) as top-level modules,
which works when a script runs (``python benchmarks/bench_x.py`` puts benchmarks/ on sys.path). The
tests load the scripts as modules by file path, so they put benchmarks/ on the path themselves; the
packages (solver, flexcouple, coupling) come from the editable install."""
import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
