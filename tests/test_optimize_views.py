"""What the optimizer sees and how its replies become templates (`optimize/views.py`), end to end
through the engine against the scripted server, plus the view's own rules on real templates."""

from __future__ import annotations

import json
import textwrap

import pytest

from gpo_action.llm.client import LLMClient
from gpo_action.llm.providers import PROVIDERS, LiteLLMProvider, register
from gpo_action.llm.types import ModelConfig
from gpo_action.optimize.candidates import END, START, read_reply, reply_form
from gpo_action.optimize.views import Style, View, split_code
from gpo_action.templates import load_template, parse_template
from tests.test_optimize_world import Optimizer, World, add_hint, current_prompt, is_meta, wrap
from tests.test_optimize_world import world  # noqa: F401  (the fixture)

BLOCKS = ("{# gpo:freeze #}Reply as: Category: <one word>{# gpo:end #}\n"
          "Classify this support ticket as billing, bug or other.\n"
          "{% if true %}Ticket: {{ ticket }}{% endif %}\n")
BLOCKS_VIEW = "### user\n[1]\nClassify this support ticket as billing, bug or other.\n[2]Ticket: [3][4]"


def blocks_world(tmp_path, server, script) -> World:
    world = World(tmp_path, server, Optimizer(script))
    path = tmp_path / "prompts" / "triage.j2"
    path.write_text(BLOCKS, encoding="utf-8")
    world.template = load_template(path)
    return world


def trajectory(root) -> list[dict]:
    path = root / ".gpo" / "optimize" / "triage" / "trajectory.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_placeholders_are_put_back_and_a_broken_one_is_rejected_by_what_it_breaks(tmp_path, openai_server):
    replies = [
        BLOCKS_VIEW.replace("[2]Ticket: [3]", "Note: HINT-BILLING.\n[2]Ticket: [ 3 ]"),  # safe (spaced token)
        BLOCKS_VIEW.replace("Ticket: [3]", "Ticket"),          # the variable's placeholder left out
        BLOCKS_VIEW + "\nSee also [5].",                       # a placeholder that names nothing
        BLOCKS_VIEW.replace("[4]", ""),                        # {% endif %} left out
        BLOCKS_VIEW.replace("[2]", "[2][2]"),                  # {% if %} repeated
        BLOCKS_VIEW.replace("[2]Ticket: [3][4]", "[4]Ticket: [3][2]"),  # block tags swapped
        BLOCKS_VIEW.replace("[1]\n", ""),                      # the frozen region left out
        BLOCKS_VIEW.replace("### user", "### system"),         # another role
    ]
    world = blocks_world(tmp_path, openai_server, lambda request, index, meta: wrap(replies[index]))
    with world.client() as client:
        result = world.run(client, steps=1, candidates=len(replies))
    meta = world.meta_requests()[0]
    assert current_prompt(meta) == BLOCKS_VIEW and "{%" not in meta and "gpo:freeze" not in meta
    assert "\n  [3]: " in meta and "\n  ticket: " not in meta   # exemplars name the variable by its placeholder
    assert result.rejected == {"variables": 2, "syntax": 3, "frozen": 1, "roles-changed": 1}
    [candidate] = [r for r in trajectory(tmp_path) if r["kind"] == "prompt" and r["step"] == 1]
    assert candidate["prompt"] == BLOCKS.replace("{% if", "Note: HINT-BILLING.\n{% if")  # the code back verbatim
    sent = world.task_requests()
    assert any("Note: HINT-BILLING.\nTicket: I was charged twice" in t for t in sent)
    assert not any(marker in t for t in sent for marker in ("[1]", "[2]", "{%", "gpo:"))


def test_a_reply_without_markers_is_read_whole_and_kept_only_when_it_passes_every_check(tmp_path, openai_server):
    view = "### user\nClassify this support ticket as billing, bug or other.\nTicket: [1]\nAnswer: Category: <one word>"
    replies = [add_hint(view, "Note: HINT-BUG."), "A better prompt, without the ticket.",
               f"{START}\n{add_hint(view, 'Note: HINT-BILLING.')}"]   # only <START>: the text after it
    world = World(tmp_path, openai_server, Optimizer(lambda request, index, meta: replies[index]))
    with world.client() as client:
        result = world.run(client, steps=1, candidates=len(replies))
    assert result.rejected == {"no-markers": 1}     # the unmarked reply that fails a check, by that reason
    prompts = [r["prompt"] for r in trajectory(tmp_path) if r["kind"] == "prompt" and r["step"] == 1]
    assert sorted(prompts) == sorted([
        "Classify this support ticket as billing, bug or other.\nNote: HINT-BUG.\nTicket: {{ ticket }}\n"
        "Answer: Category: <one word>\n",
        "Classify this support ticket as billing, bug or other.\nNote: HINT-BILLING.\nTicket: {{ ticket }}\n"
        "Answer: Category: <one word>\n"])


def test_a_litellm_optimizer_is_asked_to_stop_at_end_and_never_pre_filled(tmp_path, world):
    with world.client() as client:
        world.run(client, steps=1, candidates=2)
        assert client.supports(world.optimizer_model, "stop") and not client.supports(world.optimizer_model, "prefill")
    [request] = [b for b in world.server.requests if is_meta(b) and b["model"] == "optimizer"]
    assert request["stop"] == [END] and [m["role"] for m in request["messages"]] == ["user"]


class _PrefillingOpenAI(LiteLLMProvider):
    """An OpenAI-compatible endpoint that continues a last assistant message (as Anthropic's API
    does), registered like any provider: `prefilling/<model>` is `openai/<model>` with that capability."""

    supports_prefill = True

    def __init__(self, model: ModelConfig, base_dir):
        super().__init__(ModelConfig("openai/" + model.name.split("/", 1)[1], model.params), base_dir)


@pytest.fixture
def prefilling_provider():
    register("prefilling/")(_PrefillingOpenAI)
    try:
        yield
    finally:
        PROVIDERS.unregister("prefilling/")


def test_a_provider_that_continues_the_reply_gets_it_pre_filled_and_a_header_stop(tmp_path, openai_server,
                                                                                  prefilling_provider):
    def continuation(request, index, meta):  # what follows the pre-filled "<START>\n### system\n"
        return ("You sort support tickets.\n### user\nNote: HINT-BUG.\n"
                "Classify this support ticket as billing, bug or other.\nTicket: [1]\nAnswer: Category: <one word>\n")

    world = World(tmp_path, openai_server, Optimizer(continuation), kind="chat")
    world.optimizer_model = ModelConfig("prefilling/optimizer", world.optimizer_model.params)
    with world.client() as client:
        result = world.run(client, steps=1, candidates=2)
    [request] = [b for b in openai_server.requests if is_meta(b)]
    assert request["messages"][-1] == {"role": "assistant", "content": f"{START}\n### system\n"}
    assert request["stop"] == [END, "\n### system"]   # a second system header: the model started over
    assert result.rejected == {} and "HINT-BUG" in result.best
    best = parse_template(result.best, "triage.yaml")
    assert [m.role for m in best.messages] == ["system", "user"] and dict(best.params) == {"temperature": 0}


# ---- the view's own rules ---------------------------------------------------------------------

CHAT = textwrap.dedent("""\
    # routing prompt, owned by support
    params: {temperature: 0, max_tokens: 8}
    messages:
      - role: system
        content: 'You sort: tickets.'   # quoted, with a comment
      - role: user
        content: |
          Ticket: {{ ticket }}
          Say {{ "billing" | upper }} or BUG.
    """)


def test_a_chat_file_is_rebuilt_around_new_message_text_byte_for_byte_elsewhere():
    original = parse_template(CHAT, "p.yaml")
    view = View(original)
    assert view.show(CHAT) == "### system\nYou sort: tickets.\n### user\nTicket: [1]\nSay [2] or BUG."
    assert view.read(view.show(CHAT)).source == CHAT
    edited = view.read("### system\nYou sort: tickets, #carefully.\n### user\nTicket: [1]\n\nSay [2] or 'BUG'.").source
    rebuilt = parse_template(edited, "p.yaml")
    assert [m.source for m in rebuilt.messages] == ["You sort: tickets, #carefully.",
                                                    "Ticket: {{ ticket }}\n\nSay {{ \"billing\" | upper }} or 'BUG'.\n"]
    assert edited.startswith("# routing prompt, owned by support\nparams: {temperature: 0, max_tokens: 8}\n")
    assert view.read("### user\nTicket: [1]").reason == "roles-changed"          # a message left out
    assert view.read("Intro.\n### system\nA.\n### user\n[1] [2]").reason == "roles-changed"
    past = view.read("### system\nA.\n### user\nTicket: [1] [2]\n### system\nagain\n### END").source
    assert [m.source for m in parse_template(past, "p.yaml").messages] == [
        "A.", "Ticket: {{ ticket }} {{ \"billing\" | upper }}\n"]


def test_code_the_optimizer_writes_itself_is_structure_and_tokens_already_in_the_text_stay_text():
    original = parse_template("Rate [1] to [5]: {{ review }}{# a note #}\n", "p.j2")
    view = View(original)
    assert view.show(original.source) == "### user\nRate [1] to [5]: [2][3]"   # [1] is taken by the text
    assert view.read("Rate [1] to [5]: [2][3]").source == original.source
    assert view.read("Rate [1] to [5]: [2]{% if x %}y{% endif %}[3]").reason == "syntax"
    assert view.read("Rate [1] to [5]: {{ review }}[3]").source == original.source    # its own {{ review }} is fine
    assert view.read("Rate [1] to [5]: [2]").reason == "syntax"                       # the comment is structure


def test_an_input_slot_filled_with_text_or_another_number_gets_its_placeholder_back():
    original = parse_template(textwrap.dedent("""\
        messages:
          - {role: system, content: You label reviews.}
          - role: user
            content: |-
              Is this review positive?
              Review: {{ review }}.
              Answer with one word.
        """), "p.yaml")
    view = View(original)
    shown = view.show(original.source)
    assert "Review: [1]." in shown

    def user(reply_line: str, lead: str = "Is this review positive?") -> str | None:
        source = view.read(shown.replace("Review: [1].", reply_line).replace("Is this review positive?", lead)).source
        return None if source is None else parse_template(source, "p.yaml").messages[1].source

    kept = "Is this review positive?\nReview: {{ review }}.\nAnswer with one word."
    assert user("Review: I loved this blender, it works great.") == kept       # an example input
    assert user("Review: [2].") == kept and user("Review: [review]") == kept.replace("}}.", "}}")
    assert user("  Review:   a long one") == kept.replace("Review:", "  Review:").replace("}}.", "}}")
    assert user("Review: [1] (the customer's words)") == kept.replace(".\nAnswer", " (the customer's words)\nAnswer")
    # no placeholder put back: the label gone, or on two lines, or the placeholder still somewhere
    assert user("Text: I loved it.") == kept.replace("Review: {{ review }}.", "Text: I loved it.")
    assert user("Review: good.\nReview: bad.") == kept.replace("{{ review }}.", "good.\nReview: bad.")
    assert user("Review: good.", lead="[1] Is this review positive?") == (
        "{{ review }} " + kept.replace("{{ review }}.", "good."))
    bullet = parse_template("Reviews:\n- {{ review }}\n", "p.j2")              # a label with no letter
    assert View(bullet).read("Reviews:\n- great").source == "Reviews:\n- great\n"
    twice = parse_template("Review: {{ review }}\nAgain: {{ review }}\n", "p.j2")
    assert View(twice).read("Review: nice\nAgain: nice").source == "Review: nice\nAgain: nice\n"  # not once


def test_placeholder_styles_name_and_number_the_code():
    original = parse_template("A {{ x }} {{x}} {{ x | upper }} {% raw %}{{ y }}{% endraw %}\n", "p.j2")
    assert [k for k, _ in split_code(original.source)] == ["text", "expression", "text", "expression", "text",
                                                            "expression", "text", "statement", "text"]
    assert View(original).show(original.source) == "### user\nA [1] [1] [2] [3]"
    named = View(original, style=Style("[[", "]]", named=True))
    assert named.show(original.source) == "### user\nA [[x]] [[x]] [[value1]] [[code1]]" and named.label("x") == "[[x]]"
    assert named.read("A [[reviews]] [[x]] [[value1]] [[code1]]").reason is None          # not near any name
    assert named.read("A [[X1]] [[x]] [[value1]] [[code1]]").reason == "variables"        # a misspelt one


def test_the_reply_form_pre_fills_the_first_header_only_when_its_role_is_unique():
    chat = View(parse_template(CHAT, "p.yaml"))
    assert reply_form(chat, prefill=True, stop=True).prefill == f"{START}\n### system\n"
    assert reply_form(chat, prefill=False, stop=True).stop == (END,)
    turns = parse_template("messages:\n- {role: user, content: a}\n- {role: assistant, content: b}\n"
                           "- {role: user, content: c}\n", "t.yaml")
    form = reply_form(View(turns), prefill=True, stop=True)
    assert form == type(form)(f"{START}\n", (END,))
    read = read_reply("### user\nA\n### assistant\nB\n### user\nC", View(turns), 1000, form)
    assert read.marked and [m.source for m in parse_template(read.source, "t.yaml").messages] == ["A", "B", "C"]


def test_a_client_reports_provider_capabilities_without_calling(tmp_path):
    with LLMClient() as client:
        local = ModelConfig("local/smollm2")
        assert client.supports(local, "prefill") and client.supports(local, "stop")
        assert not client.supports(ModelConfig("openai/gpt-4o-mini"), "prefill")
        (tmp_path / "r.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
        assert not client.supports(ModelConfig(f"replay/{tmp_path / 'r.jsonl'}"), "stop")
        assert client.usage.calls == 0
