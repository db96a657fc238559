"""The optimizer's parts, one by one: registries against their docs, presets, schedules,
directions, similarity, candidate safety, word diffs, stoppers and meta-prompt overrides."""

from __future__ import annotations

import math
import re

import pytest
from pydantic import ValidationError

from gpo_action.errors import InputError, TemplateError
from gpo_action.optimize import candidates, directions, refiners, schedules, selectors, similarity, stoppers
from gpo_action.optimize.candidates import REJECTION_REASONS, Extracted, check_candidate, edit_words, extract_text
from gpo_action.optimize.diffs import diff_stats, new_text, old_text, render_markdown, render_plain, word_diff
from gpo_action.optimize.metaprompts import BUILTIN_NAMES, load_metaprompts
from gpo_action.optimize.presets import PRESETS, get_preset
from gpo_action.optimize.spec import BudgetLimits, OptimizerSpec, stoppers_for
from gpo_action.optimize.stoppers import Dispatch, Spend
from gpo_action.optimize.trajectory import PromptRecord
from gpo_action.suites import Case
from gpo_action.templates import parse_template
from tests.test_optimize_world import CHAT_TEMPLATE, TEXT_TEMPLATE

DOC_ENTRY = re.compile(r"^- `([a-z_]+)`:", re.MULTILINE)


@pytest.mark.parametrize("module, table", [
    (directions, "DIRECTIONS"), (refiners, "REFINERS"), (schedules, "SCHEDULES"), (selectors, "SELECTORS"),
    (similarity, "SIMILARITIES"), (stoppers, "STOPPERS"),
])
def test_each_registry_matches_the_list_in_its_docstring(module, table):
    assert DOC_ENTRY.findall(module.__doc__) == list(getattr(module, table))


def test_rejection_reasons_match_the_docstring():
    documented = re.findall(r"^    ([a-z-]+)  +", candidates.__doc__, re.MULTILINE)
    assert documented == list(REJECTION_REASONS)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known: importance, none, recency, relevance"):
        directions.get_direction("momentum")
    with pytest.raises(ValueError, match="known: ape, apo, gpo, opro, pe2"):
        get_preset("dspy")
    with pytest.raises(ValidationError, match="unknown schedule 'step'"):
        OptimizerSpec(schedule="step")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_row_resolves_and_validates(name):
    spec = get_preset(name)
    assert isinstance(spec, OptimizerSpec)
    assert set(PRESETS[name]) <= set(OptimizerSpec.model_fields)
    for part, lookup in [(spec.direction, directions.get_direction), (spec.refiner, refiners.get_refiner),
                         (spec.selector, selectors.get_selector), (spec.similarity, similarity.get_similarity)]:
        assert lookup(part)() is not None
    assert schedules.get_schedule(spec.schedule)(spec.budget_start, spec.budget_end, spec.warmup) is not None
    assert set(load_metaprompts()) == set(BUILTIN_NAMES)
    assert get_preset(name, steps=3, candidates=2).steps == 3


def test_presets_are_the_papers_table_4():
    rows = {name: (s.direction, s.reflection, s.refiner, s.schedule) for name, s in
            ((n, get_preset(n)) for n in PRESETS)}
    assert rows == {
        "gpo": ("relevance", False, "generation", "cosine"),
        "opro": ("recency", False, "generation", "none"),
        "ape": ("none", False, "generation", "none"),
        "apo": ("none", True, "editing", "none"),
        "pe2": ("recency", True, "generation", "fixed"),
    }
    gpo = get_preset("gpo")
    assert (gpo.k, gpo.budget_start, gpo.budget_end, gpo.warmup) == (3, 50, 10, 0)


def test_cosine_schedule_is_the_papers():
    cosine = schedules.get_schedule("cosine")(50, 10, 0)
    assert [cosine.budget(t, 18) for t in range(1, 19)] == [49, 48, 47, 45, 42, 40, 36, 33, 30, 26, 23, 20, 17, 14,
                                                             12, 11, 10, 10]
    for T in (1, 4, 9):
        assert [cosine.budget(t, T) for t in range(1, T + 1)] == \
            [int(10 + 40 * 0.5 * (1 + math.cos(math.pi * t / T))) for t in range(1, T + 1)]


def test_other_schedules_and_warmup():
    assert schedules.get_schedule("none")(50, 10, 0).budget(1, 5) is None
    assert [schedules.get_schedule("fixed")(30, 10, 0).budget(t, 3) for t in (1, 2, 3)] == [30, 30, 30]
    assert [schedules.get_schedule("linear")(50, 10, 0).budget(t, 4) for t in (1, 2, 3, 4)] == [40, 30, 20, 10]
    warm = schedules.get_schedule("cosine")(50, 10, 2)
    assert [warm.budget(t, 6) for t in range(1, 7)] == [30, 50, 44, 30, 15, 10]


def test_budgets_scale_with_template_length():
    assert schedules.scaled_words(50, 120, 200) == 50
    assert schedules.scaled_words(50, 800, 200) == 200
    assert schedules.scaled_words(50, 800, None) == 50


def record(prompt: str, dev: float = 0.5, step: int = 0) -> PromptRecord:
    return PromptRecord(prompt[:12], step, prompt, dev, 4)


def test_directions_choose_and_order_the_trajectory():
    history = [record("classify the ticket", 0.2), record("sort the weather report", 0.9),
               record("classify the support ticket by category", 0.4), record("classify the ticket now", 0.6)]
    measure = similarity.get_similarity("tfidf")()
    get = lambda name, k=3: [r.prompt for r in directions.get_direction(name)().retrieve(history, k, measure)]
    assert get("none") == []
    assert get("recency") == [r.prompt for r in history[-3:]]
    assert get("importance") == ["classify the support ticket by category", "classify the ticket now",
                                 "sort the weather report"]
    scores = similarity.tfidf_similarities(history[-1].prompt, [r.prompt for r in history[:-1]])
    top = sorted(range(3), key=lambda i: -scores[i])[:2]
    expected = [history[i].prompt for i in sorted(top, key=lambda i: scores[i])] + [history[-1].prompt]
    assert get("relevance") == expected
    assert "sort the weather report" not in expected  # the least similar is left out
    assert get("relevance", k=1) == ["classify the ticket now"]


def test_tfidf_similarity():
    a, b, c = similarity.tfidf_similarities("classify the ticket", ["classify the ticket", "the ticket", "weather"])
    assert a == pytest.approx(1.0) and 0 < b < 1 and c == 0.0
    assert similarity.tfidf_similarities("", ["x"]) == [0.0]


TEXT = parse_template(TEXT_TEMPLATE, "prompts/triage.j2")
CHAT = parse_template(CHAT_TEMPLATE, "prompts/triage.yaml")
CASES = [Case("a", {"ticket": "charged twice"}, "billing"), Case("b", {"ticket": "crash"}, "bug")]


def test_extraction_handles_markers_empty_enormous_and_fences():
    assert extract_text("<START>\n  \n<END>", 1000) == Extracted(None, "empty")
    assert extract_text("<START>" + "word " * 10_000 + "<END>", 1000) == Extracted(None, "too-long")
    assert extract_text("Sure!\n<START>\nNew {{ ticket }}\n<END> bye <START>x<END>", 1000) == Extracted("New {{ ticket }}")
    assert extract_text("<START>\n```jinja\nNew {{ ticket }}\n```\n<END>", 1000).text == "New {{ ticket }}"


def test_a_reply_without_both_markers_falls_back_to_its_start_or_end_unmarked():
    assert extract_text("  no markers here\n", 1000) == Extracted("no markers here", marked=False)
    assert extract_text("Sure: <START> only the start\n", 1000) == Extracted("only the start", marked=False)
    assert extract_text("only the end <END> bye", 1000) == Extracted("only the end", marked=False)
    assert extract_text("   ", 1000) == Extracted(None, "empty", marked=False)
    # <END> asked for as a stop sequence: the provider left it out, the reply is still marked
    assert extract_text("Sure: <START>\nthe prompt", 1000, stops_at_end=True) == Extracted("the prompt")
    assert extract_text("the prompt", 1000, stops_at_end=True).marked is False


@pytest.mark.parametrize("source, reason", [
    ("Classify {{ ticket }} {% if %}\n", "syntax"),
    ("Classify this ticket.\n", "variables"),
    ("Classify {{ ticket }} for {{ customer }}\n", "variables"),
    ("Classify {{ ticket | frobnicate }}\n", "syntax"),
    ("Classify {{ ticket.missing.deeper }}\n", "render"),
])
def test_unsafe_text_candidates_are_rejected(source, reason):
    assert check_candidate(source, TEXT, CASES) == (None, reason)


def test_frozen_regions_must_stay_verbatim():
    original = parse_template("{# gpo:freeze #}Answer in JSON.{# gpo:end #}\nTicket: {{ ticket }}\n")
    kept, why = check_candidate("Be brief.\n{# gpo:freeze #}Answer in JSON.{# gpo:end #}\nTicket: {{ ticket }}\n",
                                original, CASES)
    assert why is None and kept is not None
    for changed in ("{# gpo:freeze #}Answer in YAML.{# gpo:end #}\nTicket: {{ ticket }}\n",
                    "Answer in JSON.\nTicket: {{ ticket }}\n",
                    "{# gpo:freeze #}Answer in JSON.\nTicket: {{ ticket }}\n"):
        assert check_candidate(changed, original, CASES) == (None, "frozen")


def test_chat_candidates_keep_kind_roles_and_params():
    good = CHAT_TEMPLATE.replace("You sort support tickets.", "You sort support tickets carefully.")
    parsed, why = check_candidate(good, CHAT, CASES)
    assert why is None and parsed.kind == "chat"
    assert check_candidate("just text {{ ticket }}", CHAT, CASES) == (None, "syntax")
    assert check_candidate(good.replace("temperature: 0", "temperature: 1"), CHAT, CASES) == (None, "params-changed")
    assert check_candidate(good.replace("role: system", "role: assistant"), CHAT, CASES) == (None, "roles-changed")
    assert check_candidate(good.replace("{{ ticket }}", "the ticket"), CHAT, CASES) == (None, "variables")


def test_edit_words_is_word_level_levenshtein():
    assert edit_words("a b c", "a b c") == 0
    assert edit_words("a b c", "a x c d") == 2
    assert edit_words("Classify {{ ticket }}", "Please classify {{ ticket }}") == 2
    assert candidates.allowed_words(10, 0.2) == 12 and candidates.allowed_words(10, 0.0) == 10


@pytest.mark.parametrize("old, new", [
    ("Classify this ticket as a b.\nTicket: {{ t }}\n", "Please classify this message as c d.\nTicket: {{ t }}\n"),
    ("", "new text"), ("old text", ""), ("same", "same"), ("a  b\n\nc", "a b\nc d"),
])
def test_word_diff_reconstructs_both_texts(old, new):
    ops = word_diff(old, new)
    assert old_text(ops) == old and new_text(ops) == new
    assert all(kind in ("equal", "delete", "insert") for kind, _ in ops)


def test_word_diff_renderers():
    ops = word_diff("Classify the ticket <now>", "Classify the message <now>")
    assert ops == [("equal", "Classify the "), ("delete", "ticket"), ("insert", "message"), ("equal", " <now>")]
    assert render_plain(ops) == "Classify the [-ticket-]{+message+} <now>"
    assert render_markdown(ops) == "<pre>Classify the <del>ticket</del><ins>message</ins> &lt;now&gt;</pre>"
    assert diff_stats(word_diff("a b", "c d")) == (2, 2)
    assert word_diff("x a b y", "x c d y") == [("equal", "x "), ("delete", "a b"), ("insert", "c d"), ("equal", " y")]


def test_stoppers_refuse_what_would_cross_a_cap():
    spec = get_preset("gpo", steps=3)
    any_of = stoppers_for(spec, BudgetLimits(max_calls=10, max_task_calls=7, max_tokens=1000, max_usd=1.0,
                                             max_seconds=60))
    spend = Spend(task_calls=5, optimizer_calls=2, tokens=400, cost=0.5, seconds=10)
    assert any_of.stop_reason(spend) is None
    assert any_of.room(spend, Dispatch("task", 1, 100, 0.05, 1.0)) == (2, "max_task_calls")
    assert any_of.room(spend, Dispatch("optimizer", 1, 100, 0.05, 1.0)) == (3, "max_calls")
    assert any_of.room(spend, Dispatch("optimizer", 1, 300, 0.05, 1.0)) == (2, "max_tokens")
    assert any_of.room(spend, Dispatch("optimizer", 1, 10, 0.2, 1.0)) == (2, "max_usd")
    assert any_of.room(spend, Dispatch("task", 1, 10, 0.01, 1.0), [Dispatch("task", 1)]) == (1, "max_task_calls")
    assert any_of.room(spend, Dispatch("optimizer", 1, 10, 0.01, 1.0), [Dispatch("task", 2)]) == (1, "max_calls")
    assert any_of.room(spend, Dispatch("task", 1, 10, 0.01, 20.0)) == (2, "max_task_calls")
    assert any_of.room(spend, Dispatch("task", 1, 10, 0.01, 30.0)) == (1, "max_seconds")
    spend.steps = 3
    assert any_of.stop_reason(spend) == "max_steps" and any_of.stop_reason(spend, dispatch=True) is None
    spend.optimizer_calls = 5
    assert any_of.stop_reason(spend, dispatch=True) == "max_calls"


def test_budget_limits_from_config_with_overrides():
    from gpo_action.config import Budget

    limits = BudgetLimits.from_config(Budget(max_calls=400, max_usd=2.0, max_seconds=900), max_calls=50)
    assert limits.caps() == {"max_calls": 50, "max_usd": 2.0, "max_seconds": 900}


def test_metaprompt_overrides_replace_builtins_by_name(tmp_path):
    (tmp_path / "generation.j2").write_text("Improve: {{ current.prompt }} <START> <END>")
    sources = load_metaprompts(tmp_path)
    assert sources["generation.j2"].startswith("Improve:") and sources["editing.j2"] == load_metaprompts()["editing.j2"]
    (tmp_path / "generatoin.j2").write_text("typo")
    with pytest.raises(InputError, match="unknown meta-prompt 'generatoin.j2'"):
        load_metaprompts(tmp_path)
    (tmp_path / "generatoin.j2").unlink()
    (tmp_path / "editing.j2").write_text("{% if %}")
    with pytest.raises(TemplateError):
        load_metaprompts(tmp_path)


def test_the_optimizer_package_and_its_help_are_light():
    import json
    import subprocess
    import sys

    code = ("import json, sys\nimport gpo_action.optimize, gpo_action.optimize.plan\n"
            "from click.testing import CliRunner\nfrom gpo_action.cli import main\n"
            "assert CliRunner().invoke(main, ['optimize', '--help']).exit_code == 0\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert not [m for m in ("litellm", "openai", "git", "llama_cpp", "rich.progress") if m in loaded]
