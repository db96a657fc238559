"""Prompt optimisation: GPO (arXiv 2402.17564) and the methods it frames, as presets of one engine.

    from gpo_action.optimize import optimize, get_preset, BudgetLimits, OptimizerModels, RunOptions
    result = optimize(job, get_preset("gpo", steps=6), BudgetLimits(max_calls=400), client,
                      OptimizerModels(ModelConfig("openai/gpt-4o")), options=RunOptions(run_dir=".gpo/optimize/triage"))

Modules: `engine` (the loop, `optimize`), `spec` (OptimizerSpec, BudgetLimits), `presets`, the parts
and their registries (`directions`, `refiners`, `schedules`, `selectors`, `similarity`, `stoppers`),
`candidates` (extraction and safety), `scoring` (budgeted evaluation, racing), `localize` (ddmin over
the change's hunks) and `locating` (the engine's search with it), `holdout` (the
guard's paired test and decision), `ledger` (spend and projections), `rundir`/`trajectory`
(state.json, trajectory.jsonl), `metaprompts` (+ the .j2 files), `diffs` (word diff), `results`,
`projection` (dry run), `plan` (from a workspace). The terminal renderables are in
`gpo_action.report.optimize`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names below load on first use (PEP 562), so that importing one submodule (`optimize.results`,
# which a merge's delivery needs) does not import the engine and everything it runs on.
_EXPORTS = {
    "word_diff": "diffs", "OptimizerModels": "engine", "RunOptions": "engine", "optimize": "engine",
    "Regression": "locating", "PRESETS": "presets", "get_preset": "presets", "OptimizeResult": "results",
    "StepReport": "results", "BudgetLimits": "spec", "OptimizerSpec": "spec",
}

__all__ = ["optimize", "OptimizerModels", "Regression", "RunOptions", "OptimizeResult", "StepReport", "OptimizerSpec",
           "BudgetLimits", "PRESETS", "get_preset", "word_diff"]

if TYPE_CHECKING:
    from gpo_action.optimize.diffs import word_diff
    from gpo_action.optimize.engine import OptimizerModels, RunOptions, optimize
    from gpo_action.optimize.locating import Regression
    from gpo_action.optimize.presets import PRESETS, get_preset
    from gpo_action.optimize.results import OptimizeResult, StepReport
    from gpo_action.optimize.spec import BudgetLimits, OptimizerSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups find it without this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
