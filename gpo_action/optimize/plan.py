"""An optimisation set up from a workspace (gpo.yaml), for the CLI and the pipeline.

    plan = plan_optimization(ws, "triage", preset="gpo", steps=4, max_calls=200)
    projection = project_plan(plan, ws.client)          # --dry-run: no calls
    result = run_plan(plan, ws.client, on_step=print)   # the run; state in .gpo/optimize/<suite>/
    write_proposal(result, ws.root)                     # --write: only a proposed prompt

Models: the task model is the suite's (`ws.task_model`), the optimizer is `models.optimizer` or
else the task model, the judge is `models.judge`. The spec is the preset's row, then gpo.yaml's
`optimize.steps`/`candidates` and `gate.alpha` (the holdout test's level), then the flags. `models.embedding`, when set, is the similarity for
relevance retrieval (else local TF-IDF); the trajectory records which one was used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from gpo_action.containment import Origin, contain
from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob
from gpo_action.files import write_atomic
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.llm.types import ModelConfig
from gpo_action.optimize.engine import OptimizerModels, RunOptions, StepFn, optimize
from gpo_action.optimize.locating import Regression
from gpo_action.optimize.presets import PRESETS, get_preset
from gpo_action.optimize.projection import Projection, litellm_price, project
from gpo_action.optimize.results import OptimizeResult
from gpo_action.optimize.rundir import STATE_FILE, TRAJECTORY_FILE
from gpo_action.optimize.spec import BudgetLimits, OptimizerSpec
from gpo_action.templates import parse_template

OPTIMIZE_RUNS_DIR = ".gpo/optimize"  # run directories of `gpo-action optimize` (the fix stage: fixes.FIX_RUNS_DIR)
PROVIDER_FAILURES = ("optimizer-error", "task-errors")


@dataclass(frozen=True)
class OptimizePlan:
    job: EvalJob
    spec: OptimizerSpec
    budget: BudgetLimits
    optimizer_model: ModelConfig
    judge: ModelConfig | None
    run_dir: Path
    embedding: ModelConfig | None = None
    base: str | None = None          # the prompt before the change: locate the regression first (`localize`)
    max_drop: float = 0.02


def plan_optimization(ws, suite: str, *, preset: str | None = None, steps: int | None = None,
                      candidates: int | None = None, max_calls: int | None = None,
                      overrides: Mapping[str, Any] | None = None, job: EvalJob | None = None) -> OptimizePlan:
    """Resolve the suite, models, spec and budget; every input error is an InputError. `job` is the
    suite's evaluation as already set up (the pipeline's head job, under the policy); else it is
    made from the workspace."""
    if job is None:
        [chosen] = ws.suites([suite])[:1]
        job = ws.jobs([chosen])[0]
    chosen = job.suite
    section = ws.config.optimize
    name = preset or section.preset
    if name not in PRESETS:
        raise InputError(f"unknown optimizer preset {name!r}", path=ws.config.display_path,
                         line=ws.config.line_of(("optimize", "preset")), hint=f"known: {', '.join(PRESETS)}")
    # the holdout test is held to the gate's level (in Actions: the base's policy, which `ws` carries)
    fields = {"steps": steps or section.steps, "candidates": candidates or section.candidates,
              "alpha": ws.config.gate.alpha, **(overrides or {})}
    if fields.get("metaprompts"):
        fields["metaprompts"] = str(ws.root / fields["metaprompts"])
    try:
        spec = get_preset(name, **fields)
        budget = BudgetLimits.from_config(section.budget, max_calls=max_calls)
    except (ValidationError, ValueError) as exc:
        raise InputError(f"invalid optimizer settings: {exc}") from None
    return OptimizePlan(job, spec, budget, ws.config.model("optimizer") or job.model, ws.config.model("judge"),
                        run_dir_for(ws, OPTIMIZE_RUNS_DIR, chosen.name), ws.config.model("embedding"))


def run_dir_for(ws, runs: str, suite: str) -> Path:
    """The run directory of `suite` under `runs` (config-root relative), named by a slug of the suite's
    name; it and its files must stay inside the tree (a committed `.gpo` symlink must not move them)."""
    slug = re.sub(r"[^\w.-]+", "_", suite)
    if not slug.strip("."):  # "." or ".." would name the runs directory or its parent
        slug = slug.replace(".", "_")
    shown = f"{runs}/{slug}"
    origin = Origin(None, None, "run directory", InputError)
    contain(shown, ws.root, ws.config.tree, origin, expect="dir")
    for name in (STATE_FILE, TRAJECTORY_FILE):
        contain(f"{shown}/{name}", ws.root, ws.config.tree, origin)
    return ws.root / runs / slug


def run_plan(plan: OptimizePlan, client: BudgetedCompleter, *, resume: bool = False, on_step: StepFn | None = None) -> OptimizeResult:
    models = OptimizerModels(plan.optimizer_model, judge=plan.judge, embedding=plan.embedding)
    regression = Regression(plan.base, plan.max_drop) if plan.base is not None else None
    return optimize(plan.job, plan.spec, plan.budget, client, models,
                    options=RunOptions(run_dir=plan.run_dir, resume=resume, on_step=on_step), regression=regression)


def project_plan(plan: OptimizePlan, client: BudgetedCompleter) -> Projection:
    return project(plan.job, plan.spec, plan.budget, client, optimizer_model=plan.optimizer_model,
                   judge=plan.judge, price=litellm_price)


def optimize_exit_code(result: OptimizeResult) -> int:
    """3 when a provider failure stopped the run, else 0 (a run without improvement is not a failure)."""
    return 3 if (result.stop_reason or "").startswith(PROVIDER_FAILURES) else 0


def write_proposal(result: OptimizeResult, root: str | Path = ".") -> Path:
    """Replace the template file with the proposed prompt, atomically. Refuses a prompt that was not
    proposed (worse, or failing the holdout guard), drops or adds a variable, or a file that changed
    since the run."""
    path = Path(root) / result.template_path
    if not result.proposed:
        raise InputError("nothing to write: no improvement was found", path=result.template_path)
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current != result.original:
        raise InputError("the template changed since the optimisation ran; not overwritten", path=result.template_path,
                         hint="run gpo-action optimize again")
    before = parse_template(result.original, result.template_path, result.kind)
    after = parse_template(result.best, result.template_path, result.kind)
    if after.variables != before.variables:
        raise InputError("the proposed prompt changes the template's variables; not written", path=result.template_path)
    write_atomic(path, result.best)
    return path
