"""The optimisation trajectory as a Mermaid `xychart-beta` block, which GitHub renders in comments.

    ```mermaid
    xychart-beta
        title "sentiment: dev score by step"
        x-axis "step" [0, 1, 2]
        y-axis "dev score" 0 --> 100
        bar [50.0, 0, 56.7]
        line [50.0, 50.0, 56.7]
    ```

x: the step (0 = the original prompt); y: the dev score, 0-100. The line is the best score so far;
a bar is the best candidate scored at that step (no bar when none was: all were rejected or the
budget ran out). Only numbers and a sanitized title go into the block, so nothing from a prompt
or a case can break out of it.
"""

from __future__ import annotations

import re
from typing import Sequence

from gpo_action.report.formats import pct

_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/()-]+")
MAX_TITLE = 60


def chart_title(text: str) -> str:
    """`text` with anything but letters, digits, spaces and `_.:/()-` removed, cut to MAX_TITLE."""
    cleaned = _UNSAFE.sub("", text).strip()
    return cleaned[:MAX_TITLE] or "trajectory"


def _axis_value(score: float | None) -> str:
    """A score on the chart's 0-100 axis: clamped, and 0 for none (Mermaid needs a number)."""
    return "0" if score is None else pct(max(0.0, min(1.0, float(score))))


def trajectory_chart(points: Sequence, title: str) -> str:
    """A fenced ```mermaid block (empty string when there is no point). `points` have `step`,
    `best` and `step_best` (scores 0..1; see `fixes.ChartPoint`)."""
    if not points:
        return ""
    steps = ", ".join(str(int(p.step)) for p in points)
    bars = ", ".join(_axis_value(p.step_best) for p in points)
    line = ", ".join(_axis_value(p.best) for p in points)
    return "\n".join([
        "```mermaid",
        "xychart-beta",
        f'    title "{chart_title(title)}"',
        f'    x-axis "step" [{steps}]',
        '    y-axis "dev score" 0 --> 100',
        f"    bar [{bars}]",
        f"    line [{line}]",
        "```",
    ])
