"""Meta-prompts: the Jinja2 files that ask the optimizer model for new prompts.

Built-ins ship in `gpo_action/optimize/metaprompts/` (`generation.j2`, `editing.j2`,
`reflection.j2`). A spec's `metaprompts` directory overrides them by file name; a `.j2` file there
that matches no built-in is an error (a typo would otherwise be ignored). Meta-prompts render in
the same sandbox as prompt templates, with StrictUndefined, from plain values built here:

    kind           "text" | "chat"
    task           the suite's description ("" if none)
    trajectory     [{prompt, score}]  (score: "0.0".."100.0"), in the order to show
    current        {prompt, score}
    exemplars      [{vars: [(name, value)], expected}]  fixed for the whole run
    feedback       the reflection text, or None
    variables      ["{{ name }}", ...]   the template's variables, as written in a template
    frozen         [text of each frozen region]
    freeze_marker, end_marker
    budget_words   int, or None for no budget
    failures       (reflection.j2 only) [{vars, expected, output, reason}]
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from gpo_action.errors import InputError, TemplateError
from gpo_action.results import CaseResult
from gpo_action.suites import Case
from gpo_action.templates import render_text, template_variables

BUILTIN_NAMES = ("generation.j2", "editing.j2", "reflection.j2")
FREEZE_MARKER, END_MARKER = "{# gpo:freeze #}", "{# gpo:end #}"
MAX_SHOWN_CHARS = 2_000          # a variable value or an output longer than this is cut in a meta-prompt


def load_metaprompts(directory: str | Path | None = None) -> dict[str, str]:
    """Built-in meta-prompt sources by file name, with those in `directory` replacing them."""
    package = resources.files("gpo_action.optimize") / "metaprompts"
    sources = {name: (package / name).read_text(encoding="utf-8") for name in BUILTIN_NAMES}
    if directory is None:
        return sources
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError("meta-prompt directory not found", path=str(folder),
                         hint=f"a directory holding any of {', '.join(BUILTIN_NAMES)}")
    for file in sorted(folder.glob("*.j2")):
        if file.name not in sources:
            raise InputError(f"unknown meta-prompt {file.name!r}", path=str(file),
                             hint=f"overrides replace built-ins by name: {', '.join(BUILTIN_NAMES)}")
        text = file.read_text(encoding="utf-8")
        try:
            template_variables(text)  # parses: a syntax error is reported now, with the file
        except TemplateError as exc:
            raise TemplateError(exc.message, path=str(file), line=exc.line) from None
        sources[file.name] = text
    return sources


def render_metaprompt(sources: Mapping[str, str], name: str, context: Mapping[str, Any]) -> str:
    """Render meta-prompt `name` with `context` (plus the marker constants)."""
    return render_text(sources[name], {"freeze_marker": FREEZE_MARKER, "end_marker": END_MARKER, **context}, name)


def score_text(score: float | None) -> str:
    """A 0..1 score on the paper's 0..100 scale, one decimal."""
    return "0.0" if score is None else f"{100 * score:.1f}"


def shown(value: Any) -> str:
    """A value as the optimizer sees it: strings as they are, anything else as JSON; long ones cut."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + " [...]"


def expected_text(case: Case) -> str:
    """The case's expected output, or what its assertions ask for when it has none."""
    if case.expected is not None:
        return shown(case.expected)
    asks = [f"{a.type} {shown(a.value)}" if a.value is not None else a.type for a in case.asserts]
    return "an output that passes: " + "; ".join(asks) if asks else "(not given)"


def exemplar_view(case: Case) -> dict[str, Any]:
    return {"vars": [(name, shown(value)) for name, value in case.vars.items()], "expected": expected_text(case)}


def failure_view(case: Case, result: CaseResult) -> dict[str, Any]:
    sample = result.samples[0] if result.samples else None
    reasons = [c.reason for c in (sample.checks if sample else ()) if not c.passed and c.reason]
    output = sample.output if sample is not None and sample.output is not None else f"(error: {result.error})"
    return {**exemplar_view(case), "output": shown(output), "reason": "; ".join(reasons)}


def variable_list(names: Sequence[str]) -> list[str]:
    return ["{{ " + name + " }}" for name in sorted(names)]
