"""Every optimizer preset on the same suites at the same call budget: what each finds, and its cost.

    python bench/optimizers.py                  # the default size: about 15 minutes on 2 shared cores
    python bench/optimizers.py --quick          # a smoke run: sports, gpo and apo, 1 seed, 1 step
    python bench/optimizers.py --presets gpo,opro --seeds 3 --suites sentiment,sports --steps 2 --candidates 2
    python bench/optimizers.py --model openai/gpt-4o-mini   # a litellm model as task and optimizer (needs its key)
    python bench/optimizers.py --race           # racing off and on, same runs: task calls saved, same result?
    python bench/optimizers.py --scenarios      # pull requests with known harmful edits: located? proposed?

What runs: the repository's example suites (prompts/, evals/), copied into a temp project, each
optimized by each preset of `gpo_action.optimize` (the real engine, `optimize()`), once per seed.
The task and optimizer model is the bundled `local/smollm2` (SmolLM2-135M through llama.cpp), or
`--model`. Every run gets the same steps, candidates and call cap (`--max-calls`; by default room
for 2 optimizer requests per step, the scoring of half the sampled candidates on dev, and the
holdout check, so no preset is cut short by its reflection calls alone) and a fresh response cache
holding only the original prompt's answers (dev and holdout, computed once per suite and identical
for every preset), so calls, tokens and seconds are the optimisation's own and no run profits
from another's answers.

Seeds: a seed changes only the optimizer's sampling. Run s gives the optimizer model the param
`seed = s * SEED_STRIDE`; the local model samples candidate k of a request with seed `seed + k`,
and the engine numbers step t's candidates t*1000 + k, so the stride keeps every seed's samples
apart. A litellm model gets the same `seed` param when litellm lists it as supported (OpenAI's
seed is best-effort); otherwise seeds are just independent samples at temperature 1. The task
model answers at temperature 0 (the templates' params), so its answers do not depend on the seed.

Output, one figure per line: `start` per suite (the original's scores), `run` per run, then per
preset `scores` (start, best dev, final dev and holdout of the prompt the run would ship, the
holdout delta), `cost` (calls, tokens, seconds, edit words; means per run) and `candidates`
(sampled, scored, rejected by reason), and a last `summary:` line. Scores are percentages.

`--race`: the racing experiment (`OptimizerSpec.race`: score candidates on growing dev slices and
drop those a paired test finds clearly worse). First on the scripted world of the optimizer tests
(tests/test_optimize_world.py: a 48-case ticket suite whose task model answers right when the
prompt carries hints, 3 steps of 4 candidates, no cache), with harmful candidates (per step one
useful, one neutral, two sabotaging) and with plausible ones only; then on the real model, for the
chosen presets (default gpo), suites and seeds. Each pair is the same run with racing off and on;
a pair is "equal" when it ends on the same best prompt with the same dev and holdout scores.

`--scenarios`: the pull requests of bench/scenarios.json (2 to 4 edits to an example prompt, of which
the ones measured harmful on the bundled model are known; see bench/scenarios.py) through
`optimize(..., regression=Regression(base))`, per preset (default gpo,apo) and seed (default 1): culprit hunks found
(right / wrong / none), the localization's dev evaluations and bound, holdout head -> best, p, and
whether a fix was proposed (see bench/scenario_runs.py); one line per run, then a Markdown table
(also written to `--markdown FILE`). The default cap adds the localization's bound, less the head's
evaluation, in dev evaluations to the one above.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
LOCAL_MODEL = "local/smollm2"
DEFAULT_SUITES = ("sentiment", "sports")
SEED_STRIDE = 1_000_000          # > steps * SAMPLE_STRIDE (1000): seeds never share a sample seed
LOCAL_OPTIMIZER_MAX_TOKENS = 160  # room for an example template (40 to 100 tokens) and the markers
TIMEOUT = 900.0                   # the local model serializes its calls: n samples can take minutes
PROJECT_CONFIG = "suites:\n  - eval: evals/*.yaml\nconcurrency: 4\ncache:\n  enabled: false\n"

# The racing experiment's scripted world (moved here from tests/test_optimize_race.py).
RACE_CASES = {f"{category} issue {i:02d}": category for category in ("billing", "bug", "other") for i in range(16)}
RACE_USEFUL = ["Note: HINT-BILLING.", "Note: HINT-BUG.", "Be brief."]


# ---- the racing experiment on the scripted world ---------------------------------------------------


def harmful(request: int, index: int, meta: str) -> str:
    """Each step: one useful hint, one neutral line, two sabotaging lines."""
    from tests.test_optimize_world import add_hint, current_prompt, wrap

    line = [RACE_USEFUL[(request - 1) % 3], f"Neutral {request}.", f"SABOTAGE {request}a.",
            f"SABOTAGE {request}b."][index]
    return wrap(add_hint(current_prompt(meta), line))


def plausible(request: int, index: int, meta: str) -> str:
    """Each step: two useful hints, one neutral line, one harmless instruction; nothing sabotages."""
    from tests.test_optimize_world import add_hint, current_prompt, wrap

    line = [RACE_USEFUL[(request - 1) % 3], f"Neutral {request}.", RACE_USEFUL[request % 3],
            f"Be clear {request}."][index]
    return wrap(add_hint(current_prompt(meta), line))


RACE_SCRIPTS: dict[str, Callable[[int, int, str], str]] = {"harmful": harmful, "plausible": plausible}


@dataclass(frozen=True)
class RaceRun:
    result: Any          # OptimizeResult
    task_calls: int      # task requests that reached the server (or the model)


def scripted_race(root: Path, server, script: str) -> tuple[RaceRun, RaceRun]:
    """The scripted run with racing off, then on; `server` is a running ScriptedOpenAIServer."""
    from tests.test_optimize_world import Optimizer, World

    runs = []
    for race in (False, True):
        server.reset()
        world = World(root / ("raced" if race else "full"), server, Optimizer(RACE_SCRIPTS[script]),
                      cases=RACE_CASES)
        with world.client(cache=False, notes=lambda note: None) as client:  # no cache: racing repeats no call
            result = world.run(client, steps=3, candidates=4, race=race)
        runs.append(RaceRun(result, len(world.task_requests())))
    return runs[0], runs[1]


def same_outcome(a, b) -> bool:
    return (a.best, a.best_dev, a.best_holdout, a.proposed) == (b.best, b.best_dev, b.best_holdout, b.proposed)


# ---- the project and the runs on a real model ------------------------------------------------------


def show(name: str, text: str) -> None:
    print(f"{name}: {text}", flush=True)


def pct(score: float | None) -> str:
    return "-" if score is None else f"{100 * score:.1f}"


def points(delta: float | None) -> str:
    return "-" if delta is None else f"{100 * delta:+.1f}"


def write_project(root: Path) -> Path:
    """The repository's prompts/ and evals/ with a minimal gpo.yaml (no models: the bench picks them)."""
    root.mkdir(parents=True)
    shutil.copytree(ROOT / "prompts", root / "prompts")
    shutil.copytree(ROOT / "evals", root / "evals")
    (root / "gpo.yaml").write_text(PROJECT_CONFIG, encoding="utf-8")
    return root


@dataclass(frozen=True)
class Models:
    task: Any                        # ModelConfig
    optimizer_name: str
    optimizer_params: dict[str, Any]
    seed_param: bool                 # whether the optimizer gets a `seed` param

    def optimizer(self, seed: int):
        from gpo_action.llm.types import ModelConfig

        params = dict(self.optimizer_params)
        if self.seed_param:
            params["seed"] = seed * SEED_STRIDE
        return ModelConfig(self.optimizer_name, params)

    def describe(self) -> str:
        sampling = [f"{k} {v}" for k, v in self.optimizer_params.items()]
        sampling.append(f"seed = s * {SEED_STRIDE}" if self.seed_param else "no seed param")
        return f"task {self.task.name}, optimizer {self.optimizer_name} ({', '.join(sampling)})"


def models(args: argparse.Namespace) -> Models:
    """The task and optimizer models: `--model`, or the bundled one with short optimizer samples."""
    from gpo_action.llm.types import ModelConfig

    name = args.model or LOCAL_MODEL
    optimizer_params: dict[str, Any] = {}
    max_tokens = args.optimizer_max_tokens if args.optimizer_max_tokens is not None else (
        None if args.model else LOCAL_OPTIMIZER_MAX_TOKENS)
    if max_tokens:
        optimizer_params["max_tokens"] = max_tokens
    return Models(ModelConfig(name), name, optimizer_params, not args.model or supports_seed(args.model))


@dataclass
class Setup:
    root: Path
    models: Models
    jobs: dict[str, Any]             # suite name -> EvalJob
    base_cache: Path
    caps: dict[str, int]             # suite name -> max_calls
    start: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    preset: str
    suite: str
    seed: int
    race: bool
    result: Any                      # OptimizeResult
    sampled: int                     # candidates returned by the optimizer, over all steps
    scored: int                      # new safe candidates sent to the task model
    duplicates: int
    raced_out: int
    wall: float

    @property
    def final_dev(self) -> float | None:
        return self.result.best_dev if self.result.proposed else self.result.original_dev

    @property
    def final_holdout(self) -> float | None:
        return self.result.best_holdout if self.result.proposed else self.result.original_holdout

    @property
    def holdout_delta(self) -> float | None:
        if self.final_holdout is None or self.result.original_holdout is None:
            return None
        return self.final_holdout - self.result.original_holdout

    @property
    def edit_words(self) -> int:
        """Words changed in the prompt the run would ship (0 when nothing is proposed)."""
        return self.result.edit_words if self.result.proposed else 0


def default_cap(dev: int, holdout: int, steps: int, candidates: int) -> int:
    return 2 * steps + math.ceil(steps * candidates / 2) * dev + holdout


def prepare(args: argparse.Namespace, work: Path) -> Setup:
    """The project, the models, the per-suite caps, and the original's answers in a base cache."""
    from harness import BenchError

    from gpo_action.evaluate import EvalJob, evaluate_jobs
    from gpo_action.llm.cache import ResponseCache
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.suites import split_cases
    from gpo_action.templates import load_template
    from gpo_action.workspace import Workspace

    root = write_project(work / "project")
    ws = Workspace.open(root / "gpo.yaml")
    suites = ws.suites(args.suites)
    chosen = models(args)
    jobs = {s.name: EvalJob(s, load_template(root / s.prompt), chosen.task) for s in suites}
    caps = {}
    for suite in suites:
        dev, holdout = split_cases(suite)
        caps[suite.name] = args.max_calls if args.max_calls is not None else default_cap(
            len(dev), len(holdout), args.steps, args.candidates)
    base = work / "base-cache.sqlite"
    setup = Setup(root, chosen, jobs, base, caps)
    started = time.perf_counter()
    with ResponseCache(base) as cache, LLMClient(ClientSettings(timeout=TIMEOUT), cache=cache, notes=lambda note: None) as client:
        results = evaluate_jobs(list(jobs.values()), client)
        calls = client.usage.calls
    seconds = time.perf_counter() - started
    for suite, result in zip(suites, results):
        if result.errors:
            first = next(c.error for c in result.cases if c.error)
            raise BenchError(f"{suite.name}: {result.errors} of {len(result.cases)} cases of the original failed "
                             f"on {chosen.task.name}: {first}")
        dev, holdout = split_cases(suite)
        dev_ids = {c.id for c in dev}
        scores = [[c.score or 0.0 for c in result.cases if (c.case_id in dev_ids) == on_dev]
                  for on_dev in (True, False)]
        setup.start[suite.name] = tuple(sum(s) / len(s) if s else None for s in scores)
        show(f"start {suite.name}", f"dev {pct(setup.start[suite.name][0])} ({len(dev)} cases), holdout "
                                    f"{pct(setup.start[suite.name][1])} ({len(holdout)} cases)")
    show("start cost", f"{calls} task calls, {seconds:.1f}s (once; every run starts from these answers, cached)")
    return setup


def supports_seed(model: str) -> bool:
    try:
        from gpo_action.llm.providers import import_litellm

        return "seed" in (import_litellm().get_supported_openai_params(model=model) or [])
    except Exception:  # noqa: BLE001  (unknown provider: no seed)
        return False


def key_problem(model: str) -> str | None:
    """Why `model` cannot run here (its provider key is not set), or None."""
    from gpo_action.llm.providers import import_litellm

    try:
        found = import_litellm().validate_environment(model=model)
    except Exception as error:  # noqa: BLE001
        return f"litellm does not know {model!r}: {error}"
    if not found.get("keys_in_environment", False):
        return f"{model} needs {', '.join(found.get('missing_keys') or ['a provider key'])} in the environment"
    return None


def run_one(setup: Setup, work: Path, preset: str, suite: str, seed: int, steps: int, candidates: int,
            race: bool = False) -> Run:
    from harness import copy_cache

    from gpo_action.llm.cache import ResponseCache
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.optimize import BudgetLimits, OptimizerModels, RunOptions, get_preset, optimize

    place = work / "runs" / f"{preset}-{suite}-seed{seed}{'-race' if race else ''}"
    copy_cache(setup.base_cache, place / "cache.sqlite")
    job = setup.jobs[suite]
    totals = Counter()

    def on_step(report) -> None:
        totals.update(sampled=report.candidates, scored=report.evaluated, duplicates=report.duplicates,
                      raced_out=report.raced_out)

    spec = get_preset(preset, steps=steps, candidates=candidates, race=race)
    started = time.perf_counter()
    with ResponseCache(place / "cache.sqlite") as cache, \
            LLMClient(ClientSettings(timeout=TIMEOUT), cache=cache, notes=lambda note: None) as client:
        result = optimize(job, spec, BudgetLimits(max_calls=setup.caps[suite]), client,
                          OptimizerModels(setup.models.optimizer(seed)),
                          options=RunOptions(run_dir=place / "run", on_step=on_step))
    return Run(preset, suite, seed, race, result, totals["sampled"], totals["scored"], totals["duplicates"],
               totals["raced_out"], time.perf_counter() - started)


def run_line(run: Run) -> str:
    r, spent = run.result, run.result.spent
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(r.rejected.items())) or "none"
    held = f"; best candidate's holdout {pct(r.best_holdout)}" if r.best_holdout is not None and not r.proposed else ""
    return (f"start dev {pct(r.original_dev)} holdout {pct(r.original_holdout)}; best dev {pct(r.best_dev)}; "
            f"final dev {pct(run.final_dev)} holdout {pct(run.final_holdout)} ({points(run.holdout_delta)}); "
            f"proposed {'yes' if r.proposed else 'no'}{held}; calls {spent.get('calls', 0)} (task "
            f"{spent.get('task_calls', 0)}, optimizer {spent.get('optimizer_calls', 0)}); tokens "
            f"{spent.get('tokens', 0):,}; seconds {spent.get('seconds', 0.0):.1f}; edit words {run.edit_words}"
            f" (best {r.edit_words}); steps {r.steps_done}/{r.steps}; candidates {run.sampled}, scored {run.scored}"
            f"{f', raced out {run.raced_out}' if run.raced_out else ''}; rejected {rejected}; "
            f"stop {r.stop_reason or '-'}")


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def preset_lines(preset: str, runs: list[Run]) -> None:
    n = len(runs)
    spent = [r.result.spent for r in runs]
    deltas = [r.holdout_delta for r in runs if r.holdout_delta is not None]
    spread = f" (min {points(min(deltas))}, max {points(max(deltas))})" if deltas else ""
    show(f"{preset} scores",
         f"start dev {pct(mean(r.result.original_dev for r in runs))} holdout "
         f"{pct(mean(r.result.original_holdout for r in runs))}; "
         f"best dev {pct(mean(r.result.best_dev for r in runs))}; "
         f"final dev {pct(mean(r.final_dev for r in runs))} holdout {pct(mean(r.final_holdout for r in runs))}; "
         f"holdout delta {points(mean(deltas))}{spread}; proposed {sum(r.result.proposed for r in runs)}/{n} "
         f"(means over {n} runs)")
    show(f"{preset} cost",
         f"calls {mean(s.get('calls', 0) for s in spent):.1f} (task {mean(s.get('task_calls', 0) for s in spent):.1f}, "
         f"optimizer {mean(s.get('optimizer_calls', 0) for s in spent):.1f}); tokens "
         f"{mean(s.get('tokens', 0) for s in spent):,.0f}; seconds {mean(s.get('seconds', 0.0) for s in spent):.1f}; "
         f"edit words {mean(r.edit_words for r in runs):.1f} "
         f"(best candidate {mean(r.result.edit_words for r in runs):.1f})"
         f"; stopped early {sum(r.result.stop_reason is not None for r in runs)}/{n} (means per run)")
    rejected = Counter()
    for r in runs:
        rejected.update(r.result.rejected)
    sampled = sum(r.sampled for r in runs)
    total = sum(rejected.values())
    reasons = ", ".join(f"{k} {v}" for k, v in rejected.most_common()) or "none"
    share = f" ({100 * total / sampled:.0f}% of sampled)" if sampled else ""
    show(f"{preset} candidates",
         f"sampled {sampled}, scored {sum(r.scored for r in runs)}, seen before {sum(r.duplicates for r in runs)}, "
         f"rejected {total}{share}: {reasons}")


def compare(args: argparse.Namespace, setup: Setup, work: Path) -> list[str]:
    runs: dict[str, list[Run]] = {p: [] for p in args.presets}
    for suite in setup.jobs:
        for seed in range(args.seeds):
            for preset in args.presets:
                run = run_one(setup, work, preset, suite, seed, args.steps, args.candidates)
                runs[preset].append(run)
                show(f"run {preset} {suite} seed={seed}", run_line(run))
    for preset, done in runs.items():
        preset_lines(preset, done)
    deltas = " ".join(f"{p} {points(mean(r.holdout_delta for r in done))}" for p, done in runs.items())
    proposed = " ".join(f"{p} {sum(r.result.proposed for r in done)}/{len(done)}" for p, done in runs.items())
    rejected = " ".join(
        f"{p} {sum(sum(r.result.rejected.values()) for r in done)}/{sum(r.sampled for r in done)}"
        for p, done in runs.items())
    return [f"holdout delta {deltas}", f"proposed {proposed}", f"rejected/sampled {rejected}"]


def race(args: argparse.Namespace, setup: Setup | None, work: Path) -> list[str]:
    from tests.support.openai_server import ScriptedOpenAIServer

    summary = []
    with ScriptedOpenAIServer() as server:
        for script in RACE_SCRIPTS:
            off, on = scripted_race(work / "race" / script, server, script)
            saved = 1 - on.task_calls / off.task_calls
            equal = same_outcome(off.result, on.result)
            show(f"race scripted {script}",
                 f"off {off.task_calls} task calls, on {on.task_calls} ({100 * saved:.0f}% fewer); best dev "
                 f"{pct(off.result.best_dev)}/{pct(on.result.best_dev)}, holdout {pct(off.result.best_holdout)}/"
                 f"{pct(on.result.best_holdout)}; same outcome {'yes' if equal else 'NO'}")
            summary.append(f"scripted {script} {100 * saved:.0f}% fewer{'' if equal else ' (outcome DIFFERS)'}")
    if setup is None:
        return summary
    off_calls = on_calls = equal_pairs = pairs = 0
    for suite in setup.jobs:
        for seed in range(args.seeds):
            for preset in args.presets:
                off, on = (run_one(setup, work, preset, suite, seed, args.steps, args.candidates, race=flag)
                           for flag in (False, True))
                equal = same_outcome(off.result, on.result)
                a, b = off.result.spent.get("task_calls", 0), on.result.spent.get("task_calls", 0)
                off_calls, on_calls, pairs, equal_pairs = off_calls + a, on_calls + b, pairs + 1, equal_pairs + equal
                show(f"race {preset} {suite} seed={seed}",
                     f"off {a} task calls, on {b} ({on.raced_out} raced out of {on.scored} scored); best dev "
                     f"{pct(off.result.best_dev)}/{pct(on.result.best_dev)}, final holdout {pct(off.final_holdout)}/"
                     f"{pct(on.final_holdout)}; seconds {off.wall:.0f}/{on.wall:.0f}; same outcome "
                     f"{'yes' if equal else 'NO'}")
    saved = f"{100 * (1 - on_calls / off_calls):.0f}% fewer" if off_calls else "nothing to race"
    summary.append(f"{setup.models.task.name} {off_calls} -> {on_calls} task calls ({saved}), "
                   f"same outcome {equal_pairs}/{pairs}")
    return summary


# ---- arguments and main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", help="comma-separated presets (default: all; with --race: gpo)")
    parser.add_argument("--seeds", type=int, help="seeds per preset and suite (default 3; --quick 1)")
    parser.add_argument("--suites", help=f"comma-separated example suites (default {','.join(DEFAULT_SUITES)})")
    parser.add_argument("--steps", type=int, help="optimisation steps per run (default 2; --quick 1)")
    parser.add_argument("--candidates", type=int, help="candidates per step (default 2)")
    parser.add_argument("--max-calls", type=int, help="call cap of every run (default: see the module docstring)")
    parser.add_argument("--model", help="a litellm model string to use as task and optimizer model instead of "
                                        f"{LOCAL_MODEL} (its provider key must be set)")
    parser.add_argument("--optimizer-max-tokens", type=int,
                        help=f"max_tokens of each optimizer sample (default {LOCAL_OPTIMIZER_MAX_TOKENS} for "
                             f"{LOCAL_MODEL}, unset for --model)")
    parser.add_argument("--race", action="store_true", help="racing off and on: task calls saved at equal outcome")
    parser.add_argument("--scripted-only", action="store_true", help="with --race: only the scripted world")
    parser.add_argument("--scenarios", action="store_true",
                        help="the pull requests of bench/scenarios.json: harmful edits located? fix proposed?")
    parser.add_argument("--markdown", help="with --scenarios: also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="a smoke run: sports, gpo and apo, 1 seed, 1 step")
    parser.add_argument("--keep", action="store_true", help="keep the temp project, caches and trajectories")
    args = parser.parse_args(argv)
    from gpo_action.optimize.presets import PRESETS

    default_presets = "gpo" if args.race else ("gpo,apo" if args.quick or args.scenarios else ",".join(PRESETS))
    args.presets = [p.strip() for p in (args.presets or default_presets).split(",") if p.strip()]
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown or not args.presets:
        parser.error(f"unknown presets {unknown} (known: {', '.join(PRESETS)})")
    args.suites = [s.strip() for s in (args.suites or ("sports" if args.quick else ",".join(DEFAULT_SUITES))).split(",")
                   if s.strip()]
    args.seeds = args.seeds if args.seeds is not None else (1 if args.quick or args.scenarios else 3)
    args.steps = args.steps if args.steps is not None else (1 if args.quick else 2)
    args.candidates = args.candidates if args.candidates is not None else 2
    if not 1 <= args.seeds <= 100 or not 1 <= args.steps <= 100 or not 1 <= args.candidates <= 64:
        parser.error("--seeds and --steps take 1 to 100, --candidates 1 to 64")
    if args.max_calls is not None and args.max_calls < 0:
        parser.error("--max-calls takes 0 or more")
    if args.scripted_only and not args.race:
        parser.error("--scripted-only goes with --race")
    if args.scenarios and args.race:
        parser.error("--scenarios and --race are separate experiments: choose one")
    if args.markdown and not args.scenarios:
        parser.error("--markdown goes with --scenarios")
    return args


def scenario_cap(args: argparse.Namespace, dev: int, holdout: int, hunks: int) -> int:
    from gpo_action.optimize.localize import evaluation_bound

    if args.max_calls is not None:
        return args.max_calls
    return default_cap(dev, holdout, args.steps, args.candidates) + (evaluation_bound(hunks) - 1) * dev


def scenario_bench(args: argparse.Namespace, work: Path) -> list[str]:
    """The scenarios of bench/scenarios.json per preset and seed: lines, then the Markdown table."""
    from scenario_runs import markdown, run_scenarios, summary
    from scenarios import load_scenarios

    data, scenarios = load_scenarios()
    chosen = [s for s in scenarios if s.suite in args.suites]
    picked = models(args)
    measured = "" if picked.task.name == data["model"] else f" (culprits were measured on {data['model']})"
    show("setup", f"{picked.describe()}{measured}; presets {','.join(args.presets)}; seeds {args.seeds}; steps "
                  f"{args.steps}, candidates {args.candidates}; scenarios {', '.join(s.name for s in chosen)}; "
                  f"max_drop {data['max_drop']}")
    runs = run_scenarios(chosen, args.presets, args.seeds, write_project(work / "project"), work,
                         task_model=picked.task, optimizer=picked.optimizer, steps=args.steps,
                         candidates=args.candidates, cap=lambda *sizes: scenario_cap(args, *sizes),
                         max_drop=data["max_drop"])
    table = markdown(runs)
    print(table, end="", flush=True)
    if args.markdown:
        target = Path(args.markdown)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(table, encoding="utf-8")
        os.replace(tmp, target)
        show("markdown", f"written to {target}")
    return summary(runs)


def bench(args: argparse.Namespace, work: Path) -> int:
    from harness import machine_line

    started = time.perf_counter()
    print(machine_line(), flush=True)
    show("load", f"{os.getloadavg()[0]:.2f} (1-minute average) at {datetime.now(timezone.utc):%H:%M} UTC, start")
    setup = None
    if args.model and not (args.race and args.scripted_only) and (problem := key_problem(args.model)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not (args.race and args.scripted_only or args.scenarios):
        setup = prepare(args, work)
        caps = ", ".join(f"{s} {c}" for s, c in setup.caps.items())
        show("setup", f"{setup.models.describe()}; presets {','.join(args.presets)}; seeds {args.seeds}; steps "
                      f"{args.steps}, candidates {args.candidates}; max_calls per run: {caps}")
    if args.scenarios:
        summary = scenario_bench(args, work)
    else:
        summary = race(args, setup, work) if args.race else compare(args, setup, work)
    summary.append(f"wall {time.perf_counter() - started:.0f}s, load {os.getloadavg()[0]:.2f} at end")
    show("summary", "; ".join(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))  # harness, imported where used: the racing test loads this file alone
    from harness import interrupt, run_guarded

    signal.signal(signal.SIGTERM, interrupt)  # unwinds like Ctrl-C, so the temp directory is removed
    work = Path(tempfile.mkdtemp(prefix="gpo-optimizers-"))
    try:
        return run_guarded(lambda: bench(args, work))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
