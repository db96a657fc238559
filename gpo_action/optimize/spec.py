"""What an optimisation run is: the spec (which parts, with which params) and the budget.

`OptimizerSpec` names its parts; each name is checked against its registry when the spec is
validated, so a bad preset or override fails before any call. `BudgetLimits` holds the caps;
`stoppers_for(spec, limits)` turns them into any-of stoppers (`max_steps` is always present).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gpo_action.optimize.directions import DIRECTIONS
from gpo_action.optimize.refiners import REFINERS
from gpo_action.optimize.schedules import SCHEDULES
from gpo_action.optimize.selectors import SELECTORS
from gpo_action.optimize.similarity import SIMILARITIES
from gpo_action.optimize.stoppers import STOPPERS, AnyStopper

_FROZEN = ConfigDict(extra="forbid", frozen=True)
HOLDOUT_POLICIES = ("significant",)  # the paired test of the verdicts, one-sided, at `alpha`
_PART_REGISTRIES = {"direction": DIRECTIONS, "refiner": REFINERS, "schedule": SCHEDULES, "selector": SELECTORS,
                    "similarity": SIMILARITIES}  # spec field -> the registry its name must be in


class OptimizerSpec(BaseModel):
    """One configuration of the GPO frame. Presets are rows of these (`presets.PRESETS`)."""

    model_config = _FROZEN

    direction: str = Field(default="relevance", description="trajectory retrieval: none, recency, relevance, importance")
    k: int = Field(default=3, ge=1, le=50, description="prompts shown as the trajectory (relevance: k-1 earlier + current)")
    reflection: bool = Field(default=False, description="ask the optimizer why failed dev cases failed, and show its answer")
    refiner: str = Field(default="generation", description="generation (write a new prompt) or editing (modify the current one)")
    schedule: str = Field(default="cosine", description="step-size schedule: none, fixed, linear, cosine")
    budget_start: int = Field(default=50, ge=0, description="word budget of the first step (fixed: every step)")
    budget_end: int = Field(default=10, ge=0, description="word budget of the last step")
    warmup: int = Field(default=0, ge=0, description="steps rising linearly from budget_end to budget_start")
    scale_words: int | None = Field(default=200, ge=1,
                                    description="budgets grow by max(1, template words / scale_words); null = absolute")
    enforce_budget: bool = Field(default=True, description="reject candidates whose edit distance exceeds the budget (off = the paper)")
    budget_slack: float = Field(default=0.2, ge=0, description="allowed distance = floor(budget * (1 + slack))")
    steps: int = Field(default=6, ge=1, le=1000, description="optimisation steps T (also the schedule's horizon)")
    candidates: int = Field(default=8, ge=1, le=64, description="candidates sampled per step, in one request where possible")
    temperature: float = Field(default=1.0, ge=0, le=2, description="optimizer sampling temperature")
    selector: str = Field(default="paper", description="selection rule for the next current prompt: paper, greedy")
    similarity: str = Field(default="tfidf", description="similarity measure for relevance retrieval")
    exemplars: int = Field(default=3, ge=0, le=20, description="dev cases shown to the optimizer, fixed for the run")
    reflection_cases: int = Field(default=3, ge=1, le=20, description="failed dev cases shown for reflection")
    holdout_policy: Literal["significant"] = Field(
        default="significant", description="the best prompt must beat the original on holdout by the verdicts' "
                                           "paired test, one-sided (a tie or a gain within noise is not proposed)")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the holdout test (the gate's alpha)")
    race: bool = Field(default=False, description="evaluate candidates on growing dev slices, dropping clearly worse ones")
    race_slices: tuple[float, ...] = Field(default=(0.25, 0.5), description="dev fractions of the racing rounds before the full split")
    race_z: float = Field(default=2.0, gt=0,
                          description="drop a candidate when mean(leader - it) > z * sd / sqrt(n) on the cases so far")
    max_candidate_chars: int = Field(default=50_000, ge=100, description="longer candidates are rejected unread")
    metaprompts: str | None = Field(default=None, description="directory whose .j2 files replace built-in meta-prompts by name")

    @field_validator(*_PART_REGISTRIES)
    @classmethod
    def _known_part(cls, v: str, info: ValidationInfo) -> str:
        _PART_REGISTRIES[info.field_name].lookup(v)  # ValueError: "unknown <part> 'x' (known: ...)"
        return v

    @field_validator("race_slices")
    @classmethod
    def _slices(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < f < 1 for f in v) or list(v) != sorted(set(v)):
            raise ValueError("race_slices must be increasing fractions between 0 and 1")
        return v

    @model_validator(mode="after")
    def _budgets(self) -> "OptimizerSpec":
        if self.schedule != "none" and self.budget_end > self.budget_start:
            raise ValueError(f"budget_end ({self.budget_end}) is above budget_start ({self.budget_start})")
        return self

    def fingerprint_data(self) -> dict[str, Any]:
        """What decides a run's calls: everything (a resumed run must ask the same questions)."""
        return self.model_dump(mode="json")


class BudgetLimits(BaseModel):
    """Caps of one optimisation; None = no cap. Steps are capped by the spec's `steps`."""

    model_config = _FROZEN

    max_calls: int | None = Field(default=None, ge=0, description="model calls, task and optimizer together")
    max_task_calls: int | None = Field(default=None, ge=0, description="task (and judge) model calls")
    max_optimizer_calls: int | None = Field(default=None, ge=0, description="optimizer model calls")
    max_tokens: int | None = Field(default=None, ge=0, description="prompt plus completion tokens")
    max_usd: float | None = Field(default=None, ge=0, description="US dollars")
    max_seconds: float | None = Field(default=None, ge=0, description="wall-clock seconds, summed over resumes")

    @classmethod
    def from_config(cls, budget: Any, **overrides: Any) -> "BudgetLimits":
        """From gpo.yaml's `optimize.budget` section; `overrides` that are not None win."""
        values = {name: getattr(budget, name, None) for name in cls.model_fields}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def caps(self) -> dict[str, float]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


def stoppers_for(spec: OptimizerSpec, limits: BudgetLimits) -> AnyStopper:
    """Every cap as a registered stopper, joined by "any"."""
    caps = {"max_steps": spec.steps, **limits.caps()}
    return AnyStopper([STOPPERS[name](value) for name, value in caps.items()])
