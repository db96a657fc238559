"""A fix's figures in words, plain text shared by the comment, the terminal and the demo: the
holdout figures, what locating the regression found, what the refinement after it found."""

from __future__ import annotations

from typing import Any, Mapping

from gpo_action.optimize.results import holdout_figures
from gpo_action.report.formats import pct


def holdout_text(result) -> str:
    """The holdout figures of an optimisation, in words: "holdout 53.3 → 86.7, p = 0.004, 15 cases"."""
    if not result.holdout_guard:
        return "no holdout cases (suite too small)"
    if result.best == result.original:
        return f"holdout {pct(result.original_holdout)}"
    if result.best_holdout is None:
        return f"holdout {pct(result.original_holdout)} (the best candidate was not checked on it)"
    return holdout_figures(result.original_holdout, result.best_holdout, result.holdout_p, result.holdout_paired,
                           arrow="→")


def location_text(location: Mapping[str, Any] | None, show) -> str:
    """What locating the regression found, in one line ("" when it did not run); `show` quotes an edit."""
    if not location:
        return ""
    from gpo_action.optimize.localize import Location, location_sentence

    found = Location.from_dict(location)
    count = f"{found.evaluations} dev evaluations, at most {found.bound} for {found.hunks} edits"
    return f"{location_sentence(found, location.get('edits') or (), show)} ({count})."


def refinement_text(result, show=str) -> str:
    """What the GPO refinement after a located revert found, in one line ("" when no revert was
    located); `show` escapes the parts that are not ours (rejection reasons, a stop reason)."""
    location = result.location or {}
    if not location.get("fix_id"):
        return ""
    if not result.steps_done:
        return f"no GPO step ran after the located revert ({show(result.stop_reason or 'no budget left')})."
    scored = max(0, result.evaluated - 2)          # the head prompt and the located revert are not candidates
    rejected = sum(result.rejected.values())
    why = (" (" + ", ".join(f"{show(k)} {v}" for k, v in sorted(result.rejected.items())) + ")") if rejected else ""
    found = (f"none beat it on dev ({pct(location.get('fixed_score'))})" if result.located_fix
             else f"the best beat it on dev: {pct(location.get('fixed_score'))} → {pct(result.best_dev)}")
    return (f"{result.steps_done} GPO step{'s' * (result.steps_done != 1)} from the located revert: {scored} "
            f"candidate{'s' * (scored != 1)} scored, {rejected} rejected{why}; {found}.")
