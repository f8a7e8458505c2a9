"""Evaluation: run a policy over suites, resumably, and report metrics with CIs.

    from tirgym.eval import evaluate
    res = evaluate("solver", suite="smoke", out_dir="runs/eval-solver")
    res.results["overall"]["success"]["mean"]

The trainer's periodic eval calls the same `evaluate`; `tirgym eval` / `tirgym compare`
are thin shells over it and `compare_dirs`.
"""

from tirgym.eval.compare import Comparison, compare_dirs, render_table
from tirgym.eval.metrics import EvalEntry, compute_metrics
from tirgym.eval.report import write_outputs
from tirgym.eval.results import EvalResult, load_results
from tirgym.eval.runner import evaluate, parse_seeds, resolve_entries
from tirgym.eval.stats import (
    bootstrap_ci,
    clustered_rate,
    paired_test,
    pass_at_k,
    wilson_interval,
)

__all__ = [
    "Comparison",
    "EvalEntry",
    "EvalResult",
    "bootstrap_ci",
    "clustered_rate",
    "compare_dirs",
    "compute_metrics",
    "evaluate",
    "load_results",
    "paired_test",
    "parse_seeds",
    "pass_at_k",
    "render_table",
    "resolve_entries",
    "wilson_interval",
    "write_outputs",
]
