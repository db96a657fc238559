"""Why the bundled model's sampled candidates are rejected: before and after candidates became safe
by construction (issue 13, point 2: views with placeholders, message text only, prefill and stop).

    python bench/candidate_safety.py                                  # this checkout (the "after")
    PYTHONPATH=/tmp/gpo-main python bench/candidate_safety.py         # another checkout (the "before")
    python bench/candidate_safety.py --suites sentiment --samples 24 --seeds 1
    python bench/candidate_safety.py --styles                         # placeholder styles (this checkout)

Default mode: each suite runs through the real engine (`optimize()`, preset gpo, 1 step of
`--samples` candidates, the word budget enforced as by default), once per seed, with the bundled
`local/smollm2` (SmolLM2-135M) as task and optimizer model (optimizer samples capped at 160
tokens, temperature 1, the optimizer param `seed = s * 1,000,000`). It uses only the engine's
public entry point, so the same script measures any checkout put first on PYTHONPATH: export one
with `git archive <commit> | tar -x -C /tmp/gpo-main` and run it from this checkout's root.
Prints the `gpo_action` it imported, then one `suite` line per suite (sampled, scored,
duplicates, rejected by reason, and `syntax+variables` as a share of the sampled), then `total:`.

Suites: the repository's example suites (prompts/, evals/) copied into a temp project, plus
`sports-text`, the sports suite with its one user message as a text template (prompts/sports.j2),
as every example prompt is a chat file. Default: sentiment (chat, two messages) and sports-text.

`--styles`: placeholder styles compared on the same suites with the same meta-prompt, prefill and
stop (this checkout only: it builds the step-1 meta-prompt with `views.View(style=...)` and reads
the replies as the engine does, without scoring them). Prints one `style` line per style and suite.

Size: 48 samples per suite (2 seeds x 24) took 7 to 9 minutes per suite on 2 shared cores
(2026-12-02, load 2 to 4): the optimizer samples one after another, and new safe candidates are
scored on the 15 dev cases. The table and the --styles figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness import machine_line, run_guarded, show

ROOT = Path(__file__).resolve().parent.parent
LOCAL_MODEL = "local/smollm2"
SEED_STRIDE = 1_000_000
OPTIMIZER_MAX_TOKENS = 160
TIMEOUT = 1800.0                 # n samples in one request, one after another
STRUCTURE = ("syntax", "variables")
PROJECT_CONFIG = "suites:\n  - eval: evals/*.yaml\nconcurrency: 4\ncache:\n  enabled: false\n"


def write_project(root: Path) -> Path:
    """The example suites, plus sports-text (the sports prompt as a text template)."""
    for folder in ("prompts", "evals"):
        shutil.copytree(ROOT / folder, root / folder)
    (root / "gpo.yaml").write_text(PROJECT_CONFIG, encoding="utf-8")
    import yaml

    chat = yaml.safe_load((ROOT / "prompts" / "sports.yaml").read_text(encoding="utf-8"))
    (root / "prompts" / "sports.j2").write_text(chat["messages"][0]["content"] + "\n", encoding="utf-8")
    suite = (ROOT / "evals" / "sports.yaml").read_text(encoding="utf-8")
    suite = suite.replace("name: sports", "name: sports-text").replace("prompts/sports.yaml", "prompts/sports.j2")
    (root / "evals" / "sports-text.yaml").write_text(suite, encoding="utf-8")
    return root


def job_of(ws, suite):
    from gpo_action.evaluate import EvalJob
    from gpo_action.llm.types import ModelConfig
    from gpo_action.templates import load_template

    return EvalJob(suite, load_template(ws.root / suite.prompt), ModelConfig(LOCAL_MODEL))


def optimizer_model(seed: int):
    from gpo_action.llm.types import ModelConfig

    return ModelConfig(LOCAL_MODEL, {"max_tokens": OPTIMIZER_MAX_TOKENS, "seed": seed * SEED_STRIDE})


def engine_runs(args: argparse.Namespace, ws, work: Path) -> Counter:
    """The default mode: one step of the real engine per suite and seed."""
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.optimize import BudgetLimits, OptimizerModels, RunOptions, get_preset, optimize

    total: Counter = Counter()
    for suite in ws.suites(args.suites):
        job = job_of(ws, suite)
        counts: Counter = Counter()
        started = time.perf_counter()
        for seed in range(args.seeds):
            def on_step(report) -> None:
                counts.update(sampled=report.candidates, scored=report.evaluated, duplicates=report.duplicates)

            with LLMClient(ClientSettings(timeout=TIMEOUT), notes=lambda note: None) as client:
                result = optimize(job, get_preset("gpo", steps=1, candidates=args.samples), BudgetLimits(),
                                  client, OptimizerModels(optimizer_model(seed)),
                                  options=RunOptions(run_dir=work / "runs" / f"{suite.name}-{seed}", on_step=on_step))
            counts.update({f"rejected:{k}": v for k, v in result.rejected.items()})
            counts["best_dev_above_start"] += int(result.best_dev is not None and result.original_dev is not None
                                                  and result.best_dev > result.original_dev)
        show(f"suite {suite.name}", line(counts, time.perf_counter() - started, job.template.kind))
        total.update(counts)
    return total


def line(counts: Counter, seconds: float, kind: str = "") -> str:
    sampled = counts["sampled"]
    reasons = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("rejected:") and v}
    rejected = sum(reasons.values())
    structural = sum(reasons.get(r, 0) for r in STRUCTURE)
    share = f"{100 * structural / sampled:.1f}%" if sampled else "-"
    listed = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
    return (f"{f'{kind}; ' if kind else ''}sampled {sampled}, scored {counts['scored']}, duplicates "
            f"{counts['duplicates']}, rejected {rejected} ({listed}); syntax+variables {structural}/{sampled} "
            f"({share}); {seconds:.0f}s")


def style_runs(args: argparse.Namespace, ws) -> None:
    """--styles: the step-1 meta-prompt in each placeholder style, replies read as the engine reads them."""
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.llm.types import LLMRequest
    from gpo_action.optimize import get_preset
    from gpo_action.optimize import metaprompts as M
    from gpo_action.optimize.candidates import allowed_words, check_candidate, edit_words, read_reply, reply_form
    from gpo_action.optimize.refiners import get_refiner
    from gpo_action.optimize.schedules import get_schedule, scaled_words
    from gpo_action.optimize.views import Style, View
    from gpo_action.suites import split_cases

    styles = {"[1]": Style(), "[name]": Style(named=True), "[[name]]": Style("[[", "]]", named=True),
              "{name}": Style("{", "}", named=True)}
    spec = get_preset("gpo", steps=1, candidates=args.samples)
    for suite in ws.suites(args.suites):
        job = job_of(ws, suite)
        template, (dev, _) = job.template, split_cases(suite)
        words = len(template.source.split())
        budget = get_schedule(spec.schedule)(scaled_words(spec.budget_start, words, spec.scale_words),
                                             scaled_words(spec.budget_end, words, spec.scale_words),
                                             spec.warmup).budget(1, spec.steps)
        for name, style in styles.items():
            view = View(template, style=style)
            context = {"task": suite.description, "feedback": None, "budget_words": budget,
                       "exemplars": [M.exemplar_view(c, view.label) for c in dev[:spec.exemplars]],
                       **M.view_context(view, [(template.source, None)], (template.source, None))}
            meta = get_refiner(spec.refiner)().build(M.load_metaprompts(), context)
            form = reply_form(view, prefill=True, stop=True)  # as the engine asks the local model
            counts: Counter = Counter()
            started = time.perf_counter()
            for seed in range(args.seeds):
                model = optimizer_model(seed)
                messages = ({"role": "user", "content": meta}, {"role": "assistant", "content": form.prefill})
                request = LLMRequest(model, messages, {"temperature": spec.temperature, "stop": list(form.stop)}, 1000)
                with LLMClient(ClientSettings(timeout=TIMEOUT), notes=lambda note: None) as client:
                    replies = client.complete_n(request, args.samples)
                for reply in replies:
                    counts["sampled"] += 1
                    reading = read_reply(reply.text or "", view, spec.max_candidate_chars, form)
                    why = reading.reason if reply.ok else "optimizer-error"
                    if why is None:
                        _, why = check_candidate(reading.source, template, suite.cases)
                    if why is None and edit_words(template.source, reading.source) > allowed_words(
                            budget, spec.budget_slack):
                        why = "over-budget"
                    counts[f"rejected:{why}" if why else "scored"] += 1
            show(f"style {name} {suite.name}", line(counts, time.perf_counter() - started))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default="sentiment,sports-text", help="comma-separated suite names")
    parser.add_argument("--samples", type=int, default=24, help="candidates sampled per run (one request)")
    parser.add_argument("--seeds", type=int, default=2, help="runs per suite, each with its own optimizer seed")
    parser.add_argument("--styles", action="store_true", help="compare placeholder styles instead")
    args = parser.parse_args()
    args.suites = [s for s in args.suites.split(",") if s]

    import gpo_action
    from gpo_action.workspace import Workspace

    show("gpo_action", str(Path(gpo_action.__file__).parent))
    print(machine_line(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpo-candidate-safety-"))
    try:
        ws = Workspace.open(write_project(work / "project") / "gpo.yaml")
        started = time.perf_counter()
        if args.styles:
            style_runs(args, ws)
        else:
            show("total", line(engine_runs(args, ws, work), time.perf_counter() - started))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
