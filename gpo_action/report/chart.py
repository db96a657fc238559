"""The optimisation trajectory as a chart: a Mermaid `xychart-beta` block, which GitHub renders in
comments (`trajectory_chart`), or inline SVG for the HTML report (`trajectory_svg`, no script, no
external resource).

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

import html
import re
from typing import Sequence

from gpo_action.report.formats import pct

_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/()-]+")
MAX_TITLE = 60
# The SVG's size and margins, in pixels.
SVG_WIDTH, SVG_HEIGHT = 520, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 10, 28, 30
MAX_X_LABELS = 20                       # past this many steps only every k-th step is labelled


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


def _clamped(score: float) -> float:
    return max(0.0, min(1.0, float(score)))


def trajectory_svg(points: Sequence, title: str) -> str:
    """The same chart as inline SVG ("" without points): a bar per step with its best candidate, a
    line through the best score so far, y 0-100. Only numbers and the sanitized, escaped title
    go into it (inline in HTML, so without an xmlns: the report names no URL)."""
    if not points:
        return ""
    width, height = SVG_WIDTH - _LEFT - _RIGHT, SVG_HEIGHT - _TOP - _BOTTOM
    slot = width / len(points)
    every = -(-len(points) // MAX_X_LABELS)

    def x(i: int) -> float:
        return _LEFT + slot * (i + 0.5)

    def y(score: float) -> float:
        return _TOP + height * (1 - _clamped(score))

    name = html.escape(chart_title(title))
    parts = [f'<svg class="trajectory" width="{SVG_WIDTH}" '
             f'height="{SVG_HEIGHT}" viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img" aria-label="{name}">',
             f"<title>{name}</title>",
             f'<text x="{_LEFT}" y="16" class="chart-title">{name}</text>']
    for tick in (0.0, 0.5, 1.0):
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                     f'{round(100 * tick)}</text>')
    for i, point in enumerate(points):
        if point.step_best is not None:
            top = y(point.step_best)
            parts.append(f'<rect class="bar" x="{x(i) - slot * 0.3:.1f}" y="{top:.1f}" width="{slot * 0.6:.1f}" '
                         f'height="{_TOP + height - top:.1f}"><title>step {int(point.step)}: best candidate '
                         f'{pct(_clamped(point.step_best))}</title></rect>')
        if i % every == 0:
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{_TOP + height + 16}" text-anchor="middle">'
                         f'{int(point.step)}</text>')
    line = " ".join(f"{x(i):.1f},{y(p.best):.1f}" for i, p in enumerate(points))
    parts.append(f'<polyline class="best" fill="none" points="{line}"/>')
    for i, point in enumerate(points):
        parts.append(f'<circle class="best" cx="{x(i):.1f}" cy="{y(point.best):.1f}" r="3"><title>step '
                     f'{int(point.step)}: best so far {pct(_clamped(point.best))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
