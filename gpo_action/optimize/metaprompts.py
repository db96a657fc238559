"""Meta-prompts: the Jinja2 files that ask the optimizer model for new prompts.

Built-ins ship in `gpo_action/optimize/metaprompts/` (`generation.j2`, `editing.j2`,
`reflection.j2`). A spec's `metaprompts` directory overrides them by file name; a `.j2` file there
that matches no built-in is an error (a typo would otherwise be ignored). Meta-prompts render in
the same sandbox as prompt templates, with StrictUndefined, from plain values built here:

    kind           "text" | "chat"
    headers        ["### system", "### user"]: the header line of each message, in order (a text
                   template is one message, ["### user"])
    task           the suite's description ("" if none)
    trajectory     [{prompt, score}]  (score: "0.0".."100.0"), in the order to show
    current        {prompt, score}
    exemplars      [{vars: [(name, value)], expected}]  fixed for the whole run; a variable the
                   template reads as `{{ name }}` is named by its placeholder (`[1]`)
    feedback       the reflection text, or None
    placeholders   ["[1]", ...]  every placeholder the current prompt shows, in order
    variables      the placeholders of those that read a template variable
    frozen         the placeholders of its frozen regions
    freeze_marker, end_marker
    budget_words   int, or None for no budget
    failures       (reflection.j2 only) [{vars, expected, output, reason}]

Every prompt is shown as the optimizer sees it (`views.View`): each message's content under its
header line, template code as placeholders, never the YAML of a chat file; the built-ins wrap each
shown prompt in `<START>`/`<END>`, the form the reply is asked for, and the reply is read back
from that same form (`candidates.read_reply`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from gpo_action.errors import InputError, TemplateError
from gpo_action.optimize.views import View
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


def exemplar_view(case: Case, label: Callable[[str], str] = str) -> dict[str, Any]:
    """A case's variables and expected output; each variable named by `label` (`View.label`: its
    placeholder, which ties the value to where the prompt uses it)."""
    return {"vars": [(label(name), shown(value)) for name, value in case.vars.items()], "expected": expected_text(case)}


def failure_view(case: Case, result: CaseResult, label: Callable[[str], str] = str) -> dict[str, Any]:
    sample = result.samples[0] if result.samples else None
    reasons = [c.reason for c in (sample.checks if sample else ()) if not c.passed and c.reason]
    output = sample.output if sample is not None and sample.output is not None else f"(error: {result.error})"
    return {**exemplar_view(case, label), "output": shown(output), "reason": "; ".join(reasons)}


def view_context(view: View, shown: Sequence[tuple[str, float | None]],
                 current: tuple[str, float | None]) -> dict[str, Any]:
    """The meta-prompt values that show prompts: each (prompt, score) as the view shows it, and the
    placeholders and headers the optimizer must keep (those of the current prompt)."""
    prompt = current[0]
    return {"kind": view.original.kind, "headers": list(view.headers),
            "trajectory": [{"prompt": view.show(p), "score": score_text(s)} for p, s in shown],
            "current": {"prompt": view.show(prompt), "score": score_text(current[1])},
            "placeholders": view.tokens(prompt), "variables": view.tokens(prompt, reading=True),
            "frozen": view.tokens(prompt, ("frozen",))}
