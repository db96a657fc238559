"""The scenarios of bench/scenarios.json through the real `optimize(..., regression=Regression(base))`, once per preset:
did the localization name the known culprits, at what cost, and what was proposed.

Used by `python bench/optimizers.py --scenarios`. Each scenario's head is scored once on every case
(its answers seed a fresh response cache for every run, as in the preset comparison), then each run
locates the regression against the base (ddmin over the hunks, `optimize.localize`), refines with
what the call cap leaves, and checks the best prompt on the holdout cases.

Per run: culprits found, `right` (the known set), `wrong` (another set) or `none` (no part of the
change was named: the status says why); the dev evaluations the localization made, against its bound
2·h·⌈log2 h⌉ + 2; dev base / head / located fix; holdout head -> best prompt, its one-sided p, and
whether it was proposed, and which prompt was best (`fix`: the located revert, `llm`: a refinement
candidate, `head`: nothing beat the head on dev).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import copy_cache, show

from scenarios import Scenario

TIMEOUT = 900.0


@dataclass(frozen=True)
class ScenarioRun:
    scenario: Scenario
    preset: str
    seed: int
    result: Any          # OptimizeResult
    wall: float
    sampled: int         # refinement candidates the optimizer returned, over all steps

    @property
    def location(self) -> dict[str, Any]:
        return dict(self.result.location or {})

    @property
    def found(self) -> tuple[int, ...]:
        """The culprit hunks the localization named (empty when it named none)."""
        loc = self.location
        return tuple(loc.get("culprits") or ()) if loc.get("status") in ("located", "not-minimal") else ()

    @property
    def verdict(self) -> str:
        if not self.found:
            return "none"
        return "right" if set(self.found) == set(self.scenario.culprit_hunks) else "wrong"

    @property
    def best_kind(self) -> str:
        from gpo_action.optimize.trajectory import prompt_id

        if self.result.best == self.result.original:
            return "head"
        return "fix" if prompt_id(self.result.best) == self.location.get("fix_id") else "llm"


def culprit_names(scenario: Scenario, hunks: Sequence[int]) -> str:
    return "+".join(scenario.edits[i].name for i in hunks) or "-"


def run_scenarios(chosen: Sequence[Scenario], presets: Sequence[str], seeds: int, root: Path, work: Path, *,
                  task_model, optimizer: Callable[[int], Any], steps: int, candidates: int,
                  cap: Callable[[int, int, int], int], max_drop: float) -> list[ScenarioRun]:
    """Every scenario x preset x seed; `cap(dev, holdout, hunks)` is a run's max_calls."""
    from gpo_action.evaluate import EvalJob, evaluate_jobs
    from gpo_action.llm.cache import ResponseCache
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.optimize import BudgetLimits, OptimizerModels, Regression, RunOptions, get_preset, optimize
    from gpo_action.suites import split_cases
    from gpo_action.templates import parse_template
    from gpo_action.workspace import Workspace

    suites = {s.name: s for s in Workspace.open(root / "gpo.yaml").suites()}
    runs = []
    for scenario in chosen:
        suite = suites[scenario.suite]
        path = root / suite.prompt
        base = path.read_text(encoding="utf-8")
        job = EvalJob(suite, parse_template(scenario.head(base), str(path)), task_model)
        place = work / "scenarios" / scenario.name
        started = time.perf_counter()
        with ResponseCache(place / "head-cache.sqlite") as cache, \
                LLMClient(ClientSettings(timeout=TIMEOUT), cache=cache, notes=lambda note: None) as client:
            evaluate_jobs([job], client)
        dev, holdout = split_cases(suite)
        calls = cap(len(dev), len(holdout), len(scenario.edits))
        show(f"scenario {scenario.name}", f"{len(scenario.edits)} edits ({', '.join(e.name for e in scenario.edits)}), "
                                          f"culprits {'+'.join(scenario.culprits)}; head scored in "
                                          f"{time.perf_counter() - started:.0f}s; max_calls per run {calls}")
        for seed in range(seeds):
            for preset in presets:
                run_dir = place / f"{preset}-seed{seed}"
                copy_cache(place / "head-cache.sqlite", run_dir / "cache.sqlite")
                sampled = []
                started = time.perf_counter()
                with ResponseCache(run_dir / "cache.sqlite") as cache, \
                        LLMClient(ClientSettings(timeout=TIMEOUT), cache=cache, notes=lambda note: None) as client:
                    result = optimize(job, get_preset(preset, steps=steps, candidates=candidates),
                                      BudgetLimits(max_calls=calls), client, OptimizerModels(optimizer(seed)),
                                      options=RunOptions(run_dir=run_dir / "run",
                                                         on_step=lambda report: sampled.append(report.candidates)),
                                      regression=Regression(base, max_drop))
                run = ScenarioRun(scenario, preset, seed, result, time.perf_counter() - started, sum(sampled))
                runs.append(run)
                show(f"run {scenario.name} {preset} seed={seed}", run_line(run))
    return runs


def p_cell(p: float | None) -> str:
    from gpo_action.optimize.results import p_text

    return "-" if p is None else p_text(p).removeprefix("p = ").removeprefix("p ")  # "0.031", "< 0.001"


def run_line(run: ScenarioRun) -> str:
    from gpo_action.optimize.results import pct

    r, loc = run.result, run.location
    known = culprit_names(run.scenario, run.scenario.culprit_hunks)
    return (f"culprits {run.verdict} (found {culprit_names(run.scenario, run.found)}, known {known}; status "
            f"{loc.get('status', '-')}); dev evaluations {loc.get('evaluations', 0)} (bound {loc.get('bound', '-')}); "
            f"dev base {pct(loc.get('base_score'))} head {pct(loc.get('head_score'))} fix "
            f"{pct(loc.get('fixed_score'))}; holdout head {pct(r.original_holdout)} -> best {pct(r.best_holdout)} "
            f"(best: {run.best_kind}), p {p_cell(r.holdout_p)}; proposed {'yes' if r.proposed else 'no'}; calls "
            f"{r.spent.get('calls', 0)} (optimizer {r.spent.get('optimizer_calls', 0)}); refinement candidates "
            f"{run.sampled}, rejected {', '.join(f'{k} {v}' for k, v in sorted(r.rejected.items())) or 'none'}; "
            f"seconds {run.wall:.0f}; "
            f"stop {r.stop_reason or '-'}; {r.message}")


def markdown(runs: Sequence[ScenarioRun]) -> str:
    from gpo_action.optimize.results import pct

    lines = ["| scenario | edits (culprits in bold) | preset | culprits found | dev evals (bound) | dev base / head / fix "
             "| holdout head → best | p | best | proposed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        r, loc, s = run.result, run.location, run.scenario
        edits = ", ".join(f"**{e.name}**" if e.name in s.culprits else e.name for e in s.edits)
        found = run.verdict if run.verdict != "wrong" else f"wrong ({culprit_names(s, run.found)})"
        if run.verdict == "none":
            found = f"none ({loc.get('status', 'not run')})"
        lines.append(f"| {s.name} | {edits} | {run.preset}{f' s{run.seed}' if run.seed else ''} | {found} | "
                     f"{loc.get('evaluations', 0)} ({loc.get('bound', '-')}) | {pct(loc.get('base_score'))} / "
                     f"{pct(loc.get('head_score'))} / {pct(loc.get('fixed_score'))} | {pct(r.original_holdout)} → "
                     f"{pct(r.best_holdout)} | {p_cell(r.holdout_p)} | {run.best_kind} | "
                     f"{'yes' if r.proposed else 'no'} |")
    return "\n".join(lines) + "\n"


def summary(runs: Sequence[ScenarioRun]) -> list[str]:
    verdicts = {v: sum(r.verdict == v for r in runs) for v in ("right", "wrong", "none")}
    spent = [r.location.get("evaluations", 0) for r in runs]
    over = sum(r.location.get("evaluations", 0) > r.location.get("bound", math.inf) for r in runs)
    return [f"culprits right {verdicts['right']}, wrong {verdicts['wrong']}, none {verdicts['none']} of {len(runs)}",
            f"dev evaluations {sum(spent)} in all ({over} runs over the bound)",
            f"proposed {sum(r.result.proposed for r in runs)}/{len(runs)}"]
