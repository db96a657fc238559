"""Presets are data (style rule 9): one row per method of the paper's frame (its Table 4).

| preset | direction             | refiner    | step size                          |
|--------|-----------------------|------------|------------------------------------|
| gpo    | relevance, k=3        | generation | cosine 50 -> 10, scaled to length  |
| opro   | recency, k=3          | generation | none                               |
| ape    | current prompt only   | generation | none                               |
| apo    | reflection            | editing    | none                               |
| pe2    | recency + reflection  | generation | fixed 50, scaled to length         |

Every other field keeps `OptimizerSpec`'s default, so the presets differ only in these rows and
compare at equal budget. `get_preset(name, **overrides)` validates the row with its overrides.
"""

from __future__ import annotations

from typing import Any, Mapping

from gpo_action.optimize.spec import OptimizerSpec
from gpo_action.registry import Registry

PRESETS: Registry[Mapping[str, Any]] = Registry("preset")
PRESETS.register("gpo", {"direction": "relevance", "k": 3, "reflection": False, "refiner": "generation",
                         "schedule": "cosine", "budget_start": 50, "budget_end": 10, "warmup": 0})
PRESETS.register("opro", {"direction": "recency", "k": 3, "reflection": False, "refiner": "generation",
                          "schedule": "none"})
PRESETS.register("ape", {"direction": "none", "reflection": False, "refiner": "generation", "schedule": "none"})
PRESETS.register("apo", {"direction": "none", "reflection": True, "refiner": "editing", "schedule": "none"})
PRESETS.register("pe2", {"direction": "recency", "k": 3, "reflection": True, "refiner": "generation",
                         "schedule": "fixed", "budget_start": 50, "budget_end": 50})


def get_preset(name: str, **overrides: Any) -> OptimizerSpec:
    """The validated spec of preset `name`; `overrides` that are not None replace its fields."""
    row = PRESETS.lookup(name)
    return OptimizerSpec(**{**row, **{k: v for k, v in overrides.items() if v is not None}})
