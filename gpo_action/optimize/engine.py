"""The one entry point: `optimize(job, spec, budget, client, models, *, options=RunOptions(), regression=None)`.

The loop (gpo-method.md, section 2), with gpo-action's guards:
0. Score the original on every case (dev and holdout, one batch); H = [original].
   With `base` (the prompt before the pull request), first locate the regression (`localize`):
   ddmin over the hunks of the base -> head change, each probe (the head with some hunks put back,
   checked like a candidate) scored on dev and written to the trajectory as a step-0 record with
   the hunks it reverts; the located fix, when found, becomes the current prompt, so the
   refinement starts from it with what the budget has left, and it competes for best like any
   candidate (the same holdout decision applies to it).
1. For t = 1..T, while no cap is reached: retrieve the trajectory to show (direction), reflect
   on failed dev cases (if on), build the meta-prompt (refiner) with the step's word budget
   (schedule), every prompt in it shown as the optimizer sees it (`views`: message text under role
   headers, template code as placeholders), sample n candidates in one request (`complete_n`,
   sample indexes fixed per step so a resumed run reads them from the cache; the reply pre-filled
   with `<START>` and stopped at `<END>` where the provider can), read them back into templates
   and reject unsafe ones (`candidates`), reuse the scores of
   prompts seen before, score the new ones on dev (`Scorer`, optionally racing), and let the
   selection rule pick the next current prompt.
2. The result is the best dev prompt; it is proposed only if it beats the original on dev and
   passes the holdout guard: it beats the original on the holdout cases by the paired test the
   verdicts use (`compare`: exact McNemar for pass/fail cases, sign-flip for graded ones),
   one-sided, at `spec.alpha` (the gate's alpha). A tie or a gain within noise is not proposed,
   and neither is anything on a suite too small to hold cases out. A located revert must also not
   be significantly worse than the base prompt there (`holdout`: the same test, base against it).

Every dispatch is admitted by the ledger first, keeping a reserve for the final holdout check;
the run stops cleanly at the first cap, at an optimizer failure, or on Ctrl-C (state saved, then
KeyboardInterrupt re-raised), and can resume from its run directory.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob
from gpo_action.llm.client import CallLimit
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.llm.types import ModelConfig
from gpo_action.optimize import metaprompts as M
from gpo_action.optimize.asking import OptimizerAsk
from gpo_action.optimize.candidates import allowed_words, edit_words, reply_form, sort_replies
from gpo_action.optimize.directions import get_direction
from gpo_action.optimize.holdout import decide, holdout_test
from gpo_action.optimize.ledger import Ledger
from gpo_action.optimize.locating import Regression, RegressionSearch
from gpo_action.optimize.refiners import get_refiner
from gpo_action.optimize.results import OptimizeResult, StepReport, pct as _pct
from gpo_action.optimize.rundir import RunDir, RunState, fingerprint
from gpo_action.optimize.schedules import get_schedule, scaled_words
from gpo_action.optimize.scoring import Evaluation, Scorer, mean_score
from gpo_action.optimize.selectors import get_selector
from gpo_action.optimize.similarity import get_similarity
from gpo_action.optimize.spec import BudgetLimits, OptimizerSpec, stoppers_for
from gpo_action.optimize.stoppers import Dispatch, Spend
from gpo_action.optimize.trajectory import FinalRecord, PromptRecord, StepRecord, prompt_id
from gpo_action.optimize.views import View
from gpo_action.results import SuiteResult
from gpo_action.suites import MIN_SPLIT_CASES, split_cases
from gpo_action.templates import PromptTemplate, parse_template

StepFn = Callable[[StepReport], None]
SAMPLE_STRIDE = 1000   # step t samples candidates t*1000 .. t*1000+n-1 (reflection: t*1000)


@dataclass(frozen=True)
class OptimizerModels:
    """The models of a run besides the task model (the job's): the optimizer that writes the
    candidates, the judge of llm-rubric assertions, and the embedding model of relevance retrieval
    (models.embedding: the `embedding` similarity, with a fallback to tfidf and a warning if its
    calls fail; None: the spec's similarity)."""

    optimizer: ModelConfig
    judge: ModelConfig | None = None
    embedding: ModelConfig | None = None


@dataclass(frozen=True)
class RunOptions:
    """Where and how a run goes: `run_dir` keeps state.json and trajectory.jsonl (None: nothing
    kept); `resume` continues the run found there when its fingerprint matches; `on_step` gets a
    `StepReport` after each step; `clock` is read for max_seconds (injectable for tests)."""

    run_dir: str | Path | None = None
    resume: bool = False
    on_step: StepFn | None = None
    clock: Callable[[], float] = time.monotonic


def optimize(job: EvalJob, spec: OptimizerSpec, budget: BudgetLimits, client: BudgetedCompleter,
             models: OptimizerModels, *, options: RunOptions = RunOptions(),
             regression: Regression | None = None) -> OptimizeResult:
    """Optimize `job.template` on `job.suite` with `job.model` as the task model; see the module
    docstring. `regression` (the prompt before the change) turns on the location of the regression."""
    if job.model is None:
        raise InputError("no task model to optimize with", hint="give the EvalJob its task model")
    return _Run(job, spec, budget, client, models, options, regression).execute(options.resume)


class _Run:
    def __init__(self, job: EvalJob, spec: OptimizerSpec, budget: BudgetLimits, client: BudgetedCompleter,
                 models: OptimizerModels, options: RunOptions, regression: Regression | None):
        template, suite, model = job.template, job.suite, job.model
        optimizer_model, judge, embedding, clock = models.optimizer, models.judge, models.embedding, options.clock
        base, max_drop = (regression.base, regression.max_drop) if regression is not None else (None, 0.02)
        self.search = RegressionSearch(template, regression, suite.cases) if regression is not None else None
        self.template, self.suite, self.spec, self.client = template, suite, spec, client
        self.optimizer_model, self.on_step = optimizer_model, options.on_step
        self.rundir = RunDir(options.run_dir) if options.run_dir is not None else None
        self.dev, self.holdout = split_cases(suite)
        self.warnings: list[str] = []
        if len(suite.cases) < MIN_SPLIT_CASES:
            self.warnings.append(f"suite {suite.name!r} has {len(suite.cases)} cases (fewer than {MIN_SPLIT_CASES}): "
                                 "optimizing on all of them with no holdout guard; with no case to confirm a gain, "
                                 "nothing is proposed")
        words = len(template.source.split())
        start = scaled_words(spec.budget_start, words, spec.scale_words)
        self.schedule = get_schedule(spec.schedule)(start, scaled_words(spec.budget_end, words, spec.scale_words),
                                                    spec.warmup)
        self.direction = get_direction(spec.direction)()
        self.refiner, self.selector = get_refiner(spec.refiner)(), get_selector(spec.selector)()
        measure = "embedding" if embedding is not None else spec.similarity
        try:
            self.similarity = get_similarity(measure)(client=client, model=embedding,
                                                      on_fallback=self._similarity_failed)
        except ValueError as exc:
            raise InputError(str(exc), hint="set models.embedding in gpo.yaml") from None
        self.sources = M.load_metaprompts(spec.metaprompts)
        label = View(template).label  # a variable named by its placeholder beside its value
        self.exemplars = [M.exemplar_view(c, label) for c in self.dev[:spec.exemplars]]
        self.base, self.max_drop = base, max_drop
        self.fingerprint = fingerprint({
            "template": [template.kind, template.source],      # not the path: checkouts move
            "cases": [c.to_dict() for c in suite.cases],
            "suite": [suite.repeats, suite.threshold, suite.split.dev, suite.split.seed],
            "models": [[m.name, m.public_params()] if m else None
                       for m in (model, optimizer_model, judge, *([embedding] if embedding else []))],
            "spec": spec.fingerprint_data(), "metaprompts": self.sources,
            **({"locate": [base, max_drop]} if base is not None else {}),
        })
        self.ledger = Ledger(client, stoppers_for(spec, budget), clock=clock)
        self.ask = OptimizerAsk(client, self.ledger, optimizer_model, spec.temperature, suite.name)
        self.scorer = Scorer(client, self.ledger, suite, model, judge, embedding)
        self.state = RunState(self.fingerprint, similarity=self._similarity_name())
        self.records: dict[str, PromptRecord] = {}
        self.results: dict[str, Any] = {}          # id -> SuiteResult on dev (this session only)
        self.original_held: SuiteResult | None = None   # the original on holdout (this session only)
        self.rejected: Counter[str] = Counter()
        self._pending: dict[str, Any] = {}         # the finished step's figures, for on_step

    def _similarity_name(self) -> str | None:
        return self.similarity.name if self.direction.uses_similarity else None

    def _similarity_failed(self, note: str) -> None:
        self.warnings.append(note)
        self.state.similarity = self._similarity_name()

    # ---- lifecycle -------------------------------------------------------------------------
    def execute(self, resume: bool) -> OptimizeResult:
        if resume and self.client.cache is None:
            self.warnings.append("resuming without a response cache: the unfinished step's calls are made again")
        resumed = resume and self.rundir is not None and self._load()
        if self.rundir is not None and not resumed:
            self.rundir.reset(self.state)
        try:
            reason = self._start() if self.state.step_done < 0 else None
            if reason is None and self.base is not None and self.state.location is None:
                reason = self._localize()
            t = self.state.step_done + 1
            while reason is None and t <= self.spec.steps:
                reason = self.ledger.stop_reason() or self._step(t)
                if reason is None:
                    self.state.step_done = self.ledger.spend.steps = t
                    self._save("running")
                    self._report_step(t)
                t += 1
            return self._finish(reason)
        except KeyboardInterrupt:
            self._save("interrupted")
            raise

    def _load(self) -> bool:
        state = self.rundir.load_state()
        if state is None:
            self.warnings.append(f"nothing to resume in {self.rundir.path}: started afresh")
            return False
        if state.fingerprint != self.fingerprint:
            raise InputError("the run to resume was made with other inputs (template, cases, models or optimizer "
                             "settings changed)", path=str(self.rundir.state_path), hint="run again without --resume")
        found = self.rundir.read()
        note = found.note(self.rundir.trajectory_path)
        if note is not None:
            self.warnings.append(note)
        keep = [r for r in found.records if r.kind != "final" and r.step <= state.step_done
                and not (state.location is None and getattr(r, "reverted", None) is not None)]  # unfinished location
        self.rundir.rewrite(keep)
        fix = (state.location or {}).get("fix_id")
        for record in keep:
            if isinstance(record, PromptRecord) and record.reverted is not None and record.id != fix:
                continue                 # a probe of the location, not a candidate
            if isinstance(record, PromptRecord):
                self.records.setdefault(record.id, record)
            else:
                self.rejected.update(record.rejected)
        self.state = state
        self.ledger.restore(Spend.from_dict(state.spend))
        return True

    def _save(self, status: str, reason: str | None = None) -> None:
        self.state.status, self.state.stop_reason = status, reason
        self.state.spend = self.ledger.now().to_dict()
        if self.rundir is not None:
            self.rundir.save_state(self.state)

    def _write(self, record) -> None:
        if self.rundir is not None:
            self.rundir.append(record)

    def _report(self, step: int, **fields: Any) -> None:
        if self.on_step is None:
            return
        done = [r.dev for r in self.records.values() if r.complete]
        current = self.records[self.state.history[-1]].dev if self.state.history else None
        self.on_step(StepReport(step, self.spec.steps, current=current, best=max(done, default=None),
                                spent=self.ledger.now().to_dict(), **fields))

    def _spent_fields(self) -> dict[str, Any]:
        spend = self.ledger.now()
        return {"calls": spend.calls, "tokens": spend.tokens, "cost": spend.cost}

    # ---- step 0 ----------------------------------------------------------------------------
    def _start(self) -> str | None:
        reserve = [self.scorer.reserve_for(self.holdout, self.template)]
        [evaluation], reason = self.scorer.evaluate([self.template], self.dev + self.holdout, reserve)
        if evaluation is None:
            return reason or "max_calls"
        dev_ids = {c.id for c in self.dev}
        dev_cases = tuple(c for c in evaluation.result.cases if c.case_id in dev_ids)
        held_cases = tuple(c for c in evaluation.result.cases if c.case_id not in dev_ids)
        held = [c.score or 0.0 for c in held_cases]
        if all(c.error is not None for c in dev_cases):
            return f"task-errors: every dev case failed ({dev_cases[0].error})"
        dev_result = replace(evaluation.result, cases=dev_cases)
        record = PromptRecord(id=prompt_id(self.template.source), step=0, prompt=self.template.source,
                              dev=mean_score(dev_result), cases=len(dev_cases), errors=dev_result.errors,
                              **self._spent_fields())
        self.records[record.id] = record
        self.results[record.id] = dev_result
        self.original_held = replace(evaluation.result, cases=held_cases)
        self._write(record)
        self.state.history = [record.id]
        self.state.original_holdout = sum(held) / len(held) if held else None
        self.state.step_done = 0
        self._save("running")
        self._report(0)
        return None

    def _reserve(self, locating: bool = False) -> list[Dispatch]:
        """Kept free for the final holdout check: the best prompt on holdout, and, while locating or
        once a revert was located, the base prompt's holdout calls the cache cannot answer (a
        located revert is checked against the base; in a pull request the cache has them)."""
        reserve = [self.scorer.reserve_for(self.holdout, self.template)]
        if locating or (self.state.location or {}).get("fix_id"):
            reserve.append(self.scorer.reserve_uncached(self.holdout, self._base_template()))
        return reserve

    def _base_template(self) -> PromptTemplate:
        return self.search.base_template()

    # ---- locating the regression in the change ---------------------------------------------
    def _localize(self) -> str | None:
        """The search of `locating` (probes written as step-0 records); the located fix becomes
        current. Returns the stop reason of a cap reached while locating (None: go on refining)."""
        original = self.records[self.state.history[-1]]
        reserve = self._reserve(locating=self.search.searching)

        def probed(record: PromptRecord, result: SuiteResult) -> None:
            self._write(record)
            self.results[record.id] = result

        found = self.search.run(original, self.scorer, self.dev, reserve, on_probe=probed, spent=self._spent_fields)
        if found.fix is not None:
            self.records[found.fix.id] = found.fix
            self.state.history.append(found.fix.id)
        self.state.location = found.info
        self._save("running")
        return found.stopped

    # ---- one step --------------------------------------------------------------------------
    def _step(self, t: int) -> str | None:
        current = self.records[self.state.history[-1]]
        budget_words = self.schedule.budget(t, self.spec.steps)
        reserve = self._reserve()
        if hasattr(self.similarity, "limit"):  # embedding calls are admitted like any other call
            limit, refused = self.ledger.admit("optimizer", 1, reserve=reserve)
            self.similarity.limit = CallLimit(0) if refused else limit
        with self.ledger.charge("optimizer"):  # embedding calls, if any, count as optimizer spend
            shown = self.direction.retrieve([self.records[i] for i in self.state.history], self.spec.k, self.similarity)
        feedback, reason = self._reflect(t, current, reserve) if self.spec.reflection else (None, None)
        if reason is not None:
            return reason
        view = View(self.template, [r.prompt for r in shown] + [current.prompt])
        context = {"task": self.suite.description, "exemplars": self.exemplars, "feedback": feedback,
                   "budget_words": budget_words,
                   **M.view_context(view, [(r.prompt, r.dev) for r in shown], (current.prompt, current.dev))}
        meta = self.refiner.build(self.sources, context)
        form = reply_form(view, prefill=self.client.supports(self.optimizer_model, "prefill"),
                          stop=self.client.supports(self.optimizer_model, "stop"))
        replies, reason = self.ask(meta, t * SAMPLE_STRIDE, self.spec.candidates, reserve, f"step {t}", form)
        if reason is not None:
            return reason
        max_words = (allowed_words(budget_words, self.spec.budget_slack)
                     if self.spec.enforce_budget and budget_words is not None else None)
        found = sort_replies(replies, current.prompt, view, form, original=self.template, cases=self.suite.cases,
                             records=self.records, max_chars=self.spec.max_candidate_chars, max_words=max_words)
        new, pool, rejected, duplicates = found.new, found.known, found.rejected, found.duplicates
        evals, complete, reason = self._score([p for _, p, _ in new], reserve)
        raced_out = 0
        for (source, _, distance), evaluation, full in zip(new, evals, complete):
            if evaluation is None:
                continue
            raced_out += not full
            record = PromptRecord(id=prompt_id(source), step=t, prompt=source, dev=evaluation.score,
                                  cases=evaluation.cases, complete=full, parent=current.id, budget_words=budget_words,
                                  edit_words=distance, errors=evaluation.errors, rejected=dict(rejected),
                                  **self._spent_fields())
            self.records[record.id] = record
            self.results[record.id] = evaluation.result
            self._write(record)
            pool.append(record)
        if reason is not None:
            return reason
        chosen = self.selector.select(pool, current, set(self.state.history))
        if chosen is not None:
            self.state.history.append(chosen.id)
        self.rejected.update(rejected)
        scored = [r.dev for r in pool if r.complete]
        self._write(StepRecord(step=t, budget_words=budget_words, current=current.id, shown=tuple(r.id for r in shown),
                               similarity=self._similarity_name(), candidates=len(replies),
                               evaluated=len(new) - evals.count(None), duplicates=duplicates, raced_out=raced_out,
                               rejected=dict(rejected), selected=chosen.id if chosen else None, feedback=feedback,
                               spent=self.ledger.now().to_dict()))
        self._pending = dict(budget_words=budget_words, candidates=len(replies), evaluated=len(new),
                             duplicates=duplicates, raced_out=raced_out, rejected=dict(rejected),
                             step_best=max(scored, default=None))
        return None

    def _report_step(self, t: int) -> None:
        self._report(t, **self._pending)

    def _score(self, templates: list[PromptTemplate], reserve) -> tuple[list[Evaluation | None], list[bool], str | None]:
        if self.spec.race:
            return self.scorer.race(templates, self.dev, self.spec.race_slices, self.spec.race_z, reserve)
        evals, reason = self.scorer.evaluate(templates, self.dev, reserve)
        return evals, [e is not None for e in evals], reason

    def _reflect(self, t: int, current: PromptRecord, reserve) -> tuple[str | None, str | None]:
        """The optimizer's analysis of the current prompt's failed dev cases (None when none failed)."""
        result = self.results.get(current.id)
        if result is None:  # resumed: score it again (answered by the cache)
            parsed = parse_template(current.prompt, self.template.path, self.template.kind)
            [evaluation], reason = self.scorer.evaluate([parsed], self.dev, reserve)
            if evaluation is None:
                return None, reason or "max_calls"
            result = self.results[current.id] = evaluation.result
        cases = {c.id: c for c in self.dev}
        failed = [c for c in result.cases if not c.passed][: self.spec.reflection_cases]
        if not failed:
            return None, None
        view = View(self.template, [current.prompt])
        context = {"task": self.suite.description, "current": {"prompt": view.show(current.prompt)},
                   "failures": [M.failure_view(cases[c.case_id], c, view.label) for c in failed]}
        text = M.render_metaprompt(self.sources, "reflection.j2", context)
        replies, reason = self.ask(text, t * SAMPLE_STRIDE, 1, reserve, f"step {t} reflection")
        return (replies[0].text if replies and replies[0].ok else None), reason

    # ---- the end ---------------------------------------------------------------------------
    def _finish(self, reason: str | None) -> OptimizeResult:
        original = self.records.get(prompt_id(self.template.source))
        best = original
        for record in self.records.values():
            if record.complete and (best is None or record.dev > best.dev):
                best = record
        best_holdout, original_holdout = None, self.state.original_holdout
        guard, test, against, base_holdout = bool(self.holdout), None, None, None
        if original is None:
            proposed, message = False, f"no improvement found: the original could not be scored ({reason})"
        elif best.id == original.id:
            proposed = False
            message = f"no improvement found: no candidate beat the original on dev ({_pct(original.dev)})"
        elif not guard:
            proposed = False
            message = (f"not proposed: dev {_pct(original.dev)} -> {_pct(best.dev)}, but there are no holdout cases "
                       f"to confirm it (the suite is too small to hold cases out)")
        else:
            parsed = parse_template(best.prompt, self.template.path, self.template.kind)
            again = [] if self.original_held is not None else [self.template]  # resumed: the cache answers
            base_check = best.id == (self.state.location or {}).get("fix_id")   # a located revert
            versus = [self._base_template()] if base_check else []
            evaluations, why = self.scorer.evaluate([parsed, *again, *versus], self.holdout)
            if again and evaluations[1] is not None:
                self.original_held = evaluations[1].result
            evaluation = evaluations[0] if self.original_held is not None else None
            best_holdout = evaluation.score if evaluation is not None else None
            test = holdout_test(self.original_held, evaluation, self.spec.alpha)
            if base_check and evaluations[-1] is not None:
                base_holdout = evaluations[-1].score
                against = holdout_test(evaluation.result if evaluation else None, evaluations[-1], self.spec.alpha)
            proposed, message = decide(original, best, test, self.spec.alpha, why, base_check=base_check,
                                       against_base=against)
        final = best or PromptRecord(id=prompt_id(self.template.source), step=0, prompt=self.template.source, dev=0.0,
                                     cases=0)
        distance = edit_words(self.template.source, final.prompt)
        spent = self.ledger.now().to_dict()
        self._write(FinalRecord(best=final.id, prompt=final.prompt, original_dev=original.dev if original else 0.0,
                                best_dev=final.dev, original_holdout=original_holdout, best_holdout=best_holdout,
                                edit_words=distance, proposed=proposed, message=message, stop_reason=reason,
                                spent=spent))
        self._save("finished" if reason is None else "stopped", reason)
        return OptimizeResult(
            suite=self.suite.name, template_path=self.template.path, kind=self.template.kind,
            original=self.template.source, best=final.prompt,
            original_dev=original.dev if original else None, best_dev=final.dev if original else None,
            original_holdout=original_holdout, best_holdout=best_holdout, proposed=proposed, message=message,
            edit_words=distance, steps_done=max(self.state.step_done, 0), steps=self.spec.steps,
            stop_reason=reason, holdout_guard=guard, holdout_policy=self.spec.holdout_policy,
            dev_cases=len(self.dev), holdout_cases=len(self.holdout), evaluated=len(self.records),
            rejected=dict(self.rejected), spent=spent, similarity=self.state.similarity, warnings=tuple(self.warnings),
            run_dir=str(self.rundir.path) if self.rundir else None,
            trajectory=str(self.rundir.trajectory_path) if self.rundir else None, location=self.state.location,
            holdout_p=test.p if test else None, holdout_test=test.name if test else None,
            holdout_paired=test.cases if test else 0, alpha=self.spec.alpha, base_holdout=base_holdout,
            base_p=against.p if against else None, base_paired=against.cases if against else 0)
