"""A scripted world for the optimizer tests: a support-ticket suite, a task model that answers
better when the prompt carries hints, and an optimizer whose replies are scripted per request.

The task model (the scripted server's reply function) reads the whole rendered prompt: a ticket
of category c is answered correctly when the prompt contains HINTS[c] (tickets of category
"other" are always right), otherwise "other". "OVERFIT" makes it right on dev tickets and wrong
on the others; "DEVONLY" makes it right on dev tickets and unchanged on the others; "SABOTAGE"
makes every answer wrong. Optimizer requests (meta-prompts) are answered by `Optimizer.reply`.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.types import ModelConfig
from gpo_action.evaluate import EvalJob
from gpo_action.optimize import BudgetLimits, OptimizerModels, Regression, RunOptions, get_preset, optimize
from gpo_action.suites import load_suite, split_cases
from gpo_action.templates import load_template
from tests.support import RecordedSleep
from tests.support.openai_server import ScriptedOpenAIServer

TICKETS = {
    "I was charged twice this month": "billing",
    "Refund my last invoice please": "billing",
    "My card was billed after I cancelled": "billing",
    "Why is my bill higher than last time": "billing",
    "The app crashes when I open settings": "bug",
    "Error 500 after clicking save": "bug",
    "The export button does nothing": "bug",
    "Login page freezes on mobile": "bug",
    "How do I change my avatar?": "other",
    "Can you add a dark mode?": "other",
    "Where can I download the user guide?": "other",
    "Do you have an office in Berlin?": "other",
}
HINTS = {"billing": "HINT-BILLING", "bug": "HINT-BUG"}
TEXT_TEMPLATE = "Classify this support ticket as billing, bug or other.\nTicket: {{ ticket }}\nAnswer: Category: <one word>\n"
CHAT_TEMPLATE = textwrap.dedent("""\
    params:
      temperature: 0
    messages:
      - role: system
        content: You sort support tickets.
      - role: user
        content: |-
          Classify this support ticket as billing, bug or other.
          Ticket: {{ ticket }}
          Answer: Category: <one word>
    """)
META_MARK = "Wrap the "           # every candidate meta-prompt ends "Wrap the new/edited prompt with <START> and <END>."
REFLECTION_MARK = "gets the following examples wrong"


def is_meta(body: dict) -> bool:
    text = all_text(body)
    return META_MARK in text or REFLECTION_MARK in text


def all_text(body: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict))


def budget_of(meta: str) -> int | None:
    found = re.search(r"You are allowed to change up to (\d+) words", meta)
    return int(found[1]) if found else None


def shown_prompts(meta: str) -> list[str]:
    """The prompts of the meta-prompt's trajectory section, in order, as the optimizer sees them."""
    section = meta.split("The current prompt is:")[0]
    return re.findall(r"Prompt:\n<START>\n(.*?)\n<END>\nScore: ", section, re.DOTALL)


def current_prompt(meta: str) -> str:
    """The current prompt as the optimizer sees it (`views`: a header line, placeholders)."""
    return meta.split("The current prompt is:\n<START>\n", 1)[1].split("\n<END>", 1)[0]


def source_view(source: str, kind: str = "text") -> str:
    """A template source of this world as the optimizer is shown it."""
    from gpo_action.optimize.views import View
    from gpo_action.templates import parse_template

    name = "triage.j2" if kind == "text" else "triage.yaml"
    template = parse_template(TEXT_TEMPLATE if kind == "text" else CHAT_TEMPLATE, name)
    return View(template, [source]).show(source)


class Optimizer:
    """Scripted optimizer replies: `script(request_number, choice_index, meta) -> reply text`,
    request numbers counting from 1 over the meta-prompts the server actually receives."""

    def __init__(self, script: Callable[[int, int, str], str]):
        self.script = script
        self.requests = 0
        self.metas: list[str] = []

    def reply(self, body: dict, index: int) -> str:
        meta = all_text(body)
        if index == 0:
            self.requests += 1
            self.metas.append(meta)
        if REFLECTION_MARK in meta:
            return "The prompt gives no hint about billing or bugs."
        return self.script(self.requests, index, meta)


def add_hint(prompt: str, line: str) -> str:
    """The prompt with one more line after its first line of text: works for text and chat sources
    and for what the optimizer is shown of them (a chat file's hint goes into its user message)."""
    if prompt.lstrip().startswith("params:"):
        return prompt.replace("Classify this support ticket", f"{line}\n      Classify this support ticket", 1)
    if prompt.startswith("### system"):
        return prompt.replace("Classify this support ticket", f"{line}\nClassify this support ticket", 1)
    header, rest = prompt.split("\n", 1) if prompt.startswith("### ") else ("", prompt)
    first, _, tail = rest.partition("\n")
    return f"{header}{chr(10) if header else ''}{first}\n{line}\n{tail}"


def wrap(text: str) -> str:
    return f"Here is my proposal.\n<START>\n{text}\n<END>\nDone."


def hint_script(request: int, index: int, meta: str) -> str:
    """Each step adds one line to the current prompt: choice 0 a useful hint (in turn), others noise."""
    current = current_prompt(meta)
    useful = ["Note: HINT-BILLING.", "Note: HINT-BUG.", "Be brief.", "Be precise.", "Think first.", "Answer now."]
    line = useful[(request - 1) % len(useful)] if index == 0 else f"Filler {request}-{index}."
    return wrap(add_hint(current, line))


class World:
    def __init__(self, root: Path, server: ScriptedOpenAIServer, optimizer: Optimizer,
                 optimizer_server: ScriptedOpenAIServer | None = None, kind: str = "text", cases: dict | None = None,
                 extra_assert: str = ""):
        self.root, self.server, self.optimizer = root, server, optimizer
        self.cases = cases or TICKETS
        (root / "prompts").mkdir(parents=True, exist_ok=True)
        (root / "evals").mkdir(exist_ok=True)
        name = "triage.j2" if kind == "text" else "triage.yaml"
        (root / "prompts" / name).write_text(TEXT_TEMPLATE if kind == "text" else CHAT_TEMPLATE, encoding="utf-8")
        lines = "\n".join(f"  - vars: {{ticket: {t!r}}}\n    expected: {e}" for t, e in self.cases.items())
        (root / "evals" / "triage.yaml").write_text(
            f"prompt: prompts/{name}\ndescription: route support tickets\n"
            'assert:\n  - {type: equals, value: "{{ expected }}", extract: "Category: (\\\\w+)", normalize: [lower]}\n'
            f"{extra_assert}cases:\n{lines}\n", encoding="utf-8")
        self.suite = load_suite("evals/triage.yaml", root)
        self.template = load_template(root / "prompts" / name)
        dev, _ = split_cases(self.suite)
        self.dev_tickets = {c.vars["ticket"] for c in dev}
        self.model = ModelConfig("openai/task", {"api_base": server.url + "/v1", "api_key": "k"})
        other = optimizer_server or server
        self.optimizer_model = ModelConfig("openai/optimizer", {"api_base": other.url + "/v1", "api_key": "k"})
        server.set_reply(self.reply)
        if optimizer_server is not None:
            optimizer_server.set_reply(self.reply)

    def answer(self, prompt: str) -> str:
        ticket = next((t for t in self.cases if f"Ticket: {t}" in prompt), None)
        if ticket is None:
            return "Category: other"
        truth = self.cases[ticket]
        if "SABOTAGE" in prompt:
            return "Category: nonsense"
        if "OVERFIT" in prompt:
            return f"Category: {truth if ticket in self.dev_tickets else 'nonsense'}"
        if "DEVONLY" in prompt and ticket in self.dev_tickets:
            return f"Category: {truth}"
        right = truth == "other" or HINTS[truth] in prompt
        return f"Category: {truth if right else 'other'}"

    def reply(self, body: dict, index: int) -> str:
        if is_meta(body):
            return self.optimizer.reply(body, index)
        return self.answer(all_text(body))

    def task_requests(self) -> list[str]:
        return [all_text(b) for b in self.server.requests if not is_meta(b)]

    def meta_requests(self, server: ScriptedOpenAIServer | None = None) -> list[str]:
        return [all_text(b) for b in (server or self.server).requests if is_meta(b)]

    def client(self, cache: bool = True, notes=None, **settings) -> LLMClient:
        settings.setdefault("max_retries", 2)
        settings.setdefault("retry_base", 0.01)
        store = ResponseCache(self.root / ".gpo" / "cache.sqlite") if cache else None
        return LLMClient(ClientSettings(**settings), cache=store, notes=notes, sleep=RecordedSleep())

    def run(self, client: LLMClient, budget: BudgetLimits | None = None, *, preset: str = "gpo", **kwargs):
        spec_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in type(get_preset("gpo")).model_fields}
        spec_fields.setdefault("steps", 4)
        spec_fields.setdefault("candidates", 3)
        run_dir = kwargs.pop("run_dir", self.root / ".gpo" / "optimize" / "triage")
        options = RunOptions(run_dir=run_dir, resume=kwargs.pop("resume", False), on_step=kwargs.pop("on_step", None))
        models = OptimizerModels(self.optimizer_model, embedding=kwargs.pop("embedding", None))
        base = kwargs.pop("base", None)
        regression = Regression(base, kwargs.pop("max_drop", 0.02)) if base is not None else None
        if kwargs:
            raise TypeError(f"World.run got unexpected arguments {sorted(kwargs)}")
        return optimize(EvalJob(self.suite, self.template, self.model), get_preset(preset, **spec_fields),
                        budget or BudgetLimits(), client, models, options=options, regression=regression)


@pytest.fixture
def world(tmp_path, openai_server) -> World:
    return World(tmp_path, openai_server, Optimizer(hint_script))


def test_the_world_scores_hints(world):
    with world.client() as client:
        result = world.run(client, steps=2)
    assert result.original_dev is not None and result.original_dev < 1.0
    assert result.best_dev > result.original_dev
    assert result.proposed and "HINT-" in result.best
