"""Prompt templates: exact reproduction, variables, chat form, errors, sandbox, bounds, cost."""

from __future__ import annotations

import pytest

from gpo_action.errors import TemplateError
from gpo_action.templates import (
    MAX_RENDER_CHARS,
    MessageTemplate,
    PromptTemplate,
    frozen_regions,
    load_template,
    parse_template,
    render_text,
    template_variables,
)
from gpo_action.templates import _compile  # its cache_info() shows what was compiled

# -- exact reproduction ---------------------------------------------------------------------------

VERBATIM = [
    pytest.param("Classify the ticket.\n", id="one-trailing-newline"),
    pytest.param("Classify the ticket.\n\n\n", id="several-trailing-newlines"),
    pytest.param("no newline at end", id="no-trailing-newline"),
    pytest.param("line one\r\nline two\r\n", id="crlf"),
    pytest.param("mixed\r\nendings\nand\rmore\n", id="mixed-endings"),
    pytest.param('Reply as JSON: {"category": "billing", "nested": {"a": [1, 2]}}\n', id="literal-braces"),
    pytest.param("  leading spaces\n\ttab\n   \n", id="whitespace"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("source", VERBATIM)
def test_text_without_jinja_is_reproduced_exactly(source, tmp_path):
    assert render_text(source, {}) == source
    path = tmp_path / "p.txt"
    path.write_bytes(source.encode("utf-8"))
    template = load_template(path)
    assert template.source == source
    assert template.render({}) == ({"role": "user", "content": source},)


@pytest.mark.parametrize(
    "source, vars, expected",
    [
        ("Hi {{ name }}\n\n", {"name": "Ann"}, "Hi Ann\n\n"),
        ("Hi {{ name }}\r\nBye\r\n", {"name": "Ann"}, "Hi Ann\r\nBye\r\n"),
        ('{"user": "{{ name }}"} {"a": 1}\n', {"name": "Ann"}, '{"user": "Ann"} {"a": 1}\n'),
        ("{% raw %}{{ not_a_var }} {% if %}{% endraw %} {{ x }}\n", {"x": 1}, "{{ not_a_var }} {% if %} 1\n"),
        ("{% for t in tags %}- {{ t }}\n{% endfor %}", {"tags": ["a", "b"]}, "- a\n- b\n"),
        ("{{ text }}", {"text": "value with\r\nits own newlines\n"}, "value with\r\nits own newlines\n"),
    ],
    ids=["trailing-newlines", "crlf", "braces", "raw", "loop", "vars-untouched"],
)
def test_render_with_jinja_keeps_text_exactly(source, vars, expected, tmp_path):
    assert render_text(source, vars) == expected
    path = tmp_path / "p.j2"
    path.write_bytes(source.encode("utf-8"))
    assert load_template(path).render(vars)[0]["content"] == expected


# -- variables ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "source, expected",
    [
        ("plain text", set()),
        ("{{ a }} {{ b.c }} {{ d['e'] }}", {"a", "b", "d"}),
        ("{% if flag %}{{ yes }}{% else %}{{ no }}{% endif %}", {"flag", "yes", "no"}),
        ("{% for item in items %}{{ item.name }} {{ loop.index }} {{ sep }}{% endfor %}", {"items", "sep"}),
        ("{% set x = 1 %}{{ x }} {{ y | default('') }}", {"y"}),
        ("{% for i in range(3) %}{{ i }}{% endfor %}{{ namespace }}", set()),
        ("{% raw %}{{ hidden }}{% endraw %}", set()),
        ("{% macro m(a) %}{{ a }}{{ outer }}{% endmacro %}{{ m(1) }}", {"outer"}),
    ],
    ids=["plain", "attrs", "if", "for-locals-excluded", "set", "globals-excluded", "raw", "macro"],
)
def test_variables_from_ast(source, expected):
    assert template_variables(source) == expected
    assert parse_template(source).variables == expected


def test_variables_of_chat_template_union_all_messages():
    template = parse_template(
        "messages:\n  - {role: system, content: 'Be {{ tone }}.'}\n  - {role: user, content: '{{ ticket }}'}\n",
        "p.yaml",
    )
    assert template.variables == {"tone", "ticket"}


# -- chat form ------------------------------------------------------------------------------------

CHAT = """\
messages:
  - role: system
    content: You triage support tickets.
  - role: user
    content: |
      Customer: {{ customer }}
      Ticket: {{ ticket }}
  - role: assistant
    content: "Category:"
params:
  temperature: 0
  max_tokens: 20
"""


def test_chat_yaml_renders_messages_and_params(tmp_path):
    path = tmp_path / "triage.yaml"
    path.write_text(CHAT)
    template = load_template(path)
    assert template.kind == "chat"
    assert template.path == str(path)
    assert template.source == CHAT
    assert [m.role for m in template.messages] == ["system", "user", "assistant"]
    assert dict(template.params) == {"temperature": 0, "max_tokens": 20}
    assert template.render({"customer": "ACME", "ticket": "charged twice"}) == (
        {"role": "system", "content": "You triage support tickets."},
        {"role": "user", "content": "Customer: ACME\nTicket: charged twice\n"},
        {"role": "assistant", "content": "Category:"},
    )


def test_kinds_follow_suffix_and_can_be_forced():
    assert parse_template("x", "a.md").kind == "text"
    assert parse_template("x", "a.jinja").kind == "text"
    assert parse_template("messages: [{role: user, content: x}]", "a.yml").kind == "chat"
    assert parse_template("messages: [{role: user, content: x}]", "a.txt", kind="chat").kind == "chat"
    with pytest.raises(TemplateError, match="unknown template suffix '.json'"):
        parse_template("x", "a.json")


def test_templates_are_frozen_and_hashable():
    template = parse_template("Hi {{ name }}", "a.j2")
    assert template == parse_template("Hi {{ name }}", "a.j2")
    assert hash(template) == hash(parse_template("Hi {{ name }}", "a.j2"))
    assert template.messages == (MessageTemplate("user", "Hi {{ name }}", 1),)
    with pytest.raises(AttributeError):
        template.source = "x"  # type: ignore[misc]
    assert isinstance(template, PromptTemplate)


@pytest.mark.parametrize(
    "source, message, line",
    [
        ("messages: []\n", "messages: List should have at least 1 item", 1),
        ("messages:\n  - role: robot\n    content: hi\n", "messages.0.role", 2),
        ("messages:\n  - role: user\n    content: hi\nmodel: gpt\n", "model: Extra inputs are not permitted", 4),
        ("messages:\n  - role: user\n    text: hi\n", "messages.0.content: Field required", 2),
        ("params: {}\n", "messages: Field required", 1),
        ("messages: [oops\n", "invalid YAML", 2),
        ("- just a list\n", "a chat template is a mapping", 1),
    ],
    ids=["empty", "bad-role", "unknown-key", "no-content", "no-messages", "bad-yaml", "not-a-mapping"],
)
def test_chat_yaml_errors_name_file_and_line(source, message, line):
    with pytest.raises(TemplateError) as info:
        parse_template(source, "prompts/chat.yaml")
    assert message in info.value.message
    assert info.value.path == "prompts/chat.yaml"
    assert info.value.line == line


# -- errors ---------------------------------------------------------------------------------------

def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "prompts" / "nope.j2"
    with pytest.raises(TemplateError) as info:
        load_template(missing)
    assert info.value.path == str(missing)
    assert str(missing) in str(info.value)
    assert "not found" in str(info.value)


def test_syntax_error_in_text_template_has_file_and_line(tmp_path):
    path = tmp_path / "bad.j2"
    path.write_text("line one\nline two\nHello {{ name }\nline four\n")
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert info.value.path == str(path)
    assert info.value.line == 3
    assert "syntax error" in info.value.message


def test_syntax_error_in_chat_yaml_maps_to_the_yaml_line():
    source = CHAT.replace("Ticket: {{ ticket }}", "Ticket: {{ ticket }")
    with pytest.raises(TemplateError) as info:
        parse_template(source, "triage.yaml")
    assert info.value.line == 7  # the `Ticket:` line inside the block scalar
    assert "messages[1]" in info.value.message


@pytest.mark.parametrize(
    "source, vars, names",
    [
        ("Ticket: {{ ticket }}", {}, "undefined variable 'ticket'"),
        ("{% if urgent %}!{% endif %}", {}, "undefined variable 'urgent'"),
        ("{{ user.email }}", {"user": {"name": "a"}}, "undefined attribute 'email'"),
        ("{% for t in tickets %}{{ t }}{% endfor %}", {}, "undefined variable 'tickets'"),
    ],
)
def test_undefined_variable_is_named(source, vars, names):
    with pytest.raises(TemplateError) as info:
        render_text(source, vars, name="prompts/x.j2")
    assert names in info.value.message
    assert info.value.path == "prompts/x.j2"


def test_undefined_variable_in_chat_message_points_at_yaml_line():
    template = parse_template(CHAT, "triage.yaml")
    with pytest.raises(TemplateError) as info:
        template.render({"customer": "ACME"})
    assert "undefined variable 'ticket'" in info.value.message
    assert info.value.line == 7


def test_mixed_line_endings_with_jinja_use_the_most_common_one():
    # documented limit: Jinja normalizes template line breaks to one sequence
    assert render_text("a\r\nb\r\n{{ x }}\n", {"x": 1}) == "a\r\nb\r\n1\r\n"
    assert render_text("a\nb\n{{ x }}\r\n", {"x": 1}) == "a\nb\n1\n"


def test_runtime_errors_become_template_errors():
    with pytest.raises(TemplateError, match="ZeroDivisionError") as info:
        render_text("ok\n{{ 1 / 0 }}", {}, name="t.j2")
    assert info.value.line == 2


# -- sandbox and bounds ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ joiner.__init__.__globals__['os'].environ['GPO_TEST_SECRET'] }}",
        "{{ self._TemplateReference__context }}",
        "{{ lipsum.__globals__ }}",
        "{% set d = {} %}{{ d.update({'a': 1}) }}",
        "{{ items.append(1) }}",
    ],
)
def test_sandbox_refuses_unsafe_templates_and_leaks_nothing(source, monkeypatch):
    monkeypatch.setenv("GPO_TEST_SECRET", "s3cr3t-value")
    with pytest.raises(TemplateError) as info:
        render_text(source, {"items": []})
    text = str(info.value)
    assert text.startswith("<string>:1: unsafe template")
    assert "s3cr3t-value" not in text
    assert "<class" not in text and "environ(" not in text


# (id, source, the limit's message); how long each takes to be refused: bench/timings.py
RUNAWAY = [
    ("huge-range", "{% for i in range(10**9) %}x{% endfor %}", "MAX_RANGE"),
    ("string-repeat", "{{ 'a' * 10**9 }}", "too large"),
    ("list-repeat", "{{ [0] * 10**9 }}", "too large"),
    ("huge-power", "{{ 9 ** (9 ** 9) }}", "too large"),
    ("runaway-output", "{% for i in range(100000) %}{{ 'x' * 20 }}{% endfor %}", f"longer than {MAX_RENDER_CHARS}"),
]


@pytest.mark.parametrize("source, message", [r[1:] for r in RUNAWAY], ids=[r[0] for r in RUNAWAY])
def test_runaway_templates_are_refused_by_a_limit(source, message):
    with pytest.raises(TemplateError, match=message):
        render_text(source, {})


# -- frozen regions -------------------------------------------------------------------------------

def test_frozen_regions_are_returned_verbatim():
    source = (
        "Intro {{ x }}\n"
        "{# gpo:freeze #}\nOutput format:\n  Category: <name>\n{# gpo:end #}\n"
        "middle\n{#- gpo:freeze -#}{{ schema }}{#gpo:end#}\n"
    )
    assert frozen_regions(source) == ("\nOutput format:\n  Category: <name>\n", "{{ schema }}")
    assert frozen_regions("no markers {# a comment #}") == ()
    # the markers are comments: rendering drops them and keeps the region's text
    assert render_text(source, {"x": 1, "schema": "S"}).startswith("Intro 1\n\nOutput format:\n")


@pytest.mark.parametrize(
    "source, message",
    [
        ("{# gpo:freeze #} never closed", "without a closing"),
        ("stray {# gpo:end #}", "without a `{# gpo:freeze #}`"),
        ("{# gpo:freeze #}{# gpo:freeze #}{# gpo:end #}", "nested"),
    ],
)
def test_unbalanced_frozen_markers_are_errors(source, message):
    with pytest.raises(TemplateError, match=message):
        frozen_regions(source, path="p.j2")


# -- cost -----------------------------------------------------------------------------------------

TRIAGE = (
    "You are a support triage assistant for an online shop. Read the ticket and classify it into\n"
    "exactly one category: billing, bug, feature, account or other. Think about what the customer\n"
    "needs, not about the words they use. Reply with one line 'Category: <name>' and nothing else.\n"
) * 3 + (
    "Customer: {{ customer }} ({{ plan | default('free') }})\n"
    "{% if history %}Earlier tickets:\n{% for h in history %}- {{ h }}\n{% endfor %}{% endif %}"
    "Ticket:\n{{ ticket }}\n"
)


TRIAGE_VARS = {"customer": "ACME", "ticket": "I was charged twice", "history": ["refund", "login"]}


def test_render_compiles_once():
    """What a render costs is a figure of bench/timings.py; here, that renders reuse one compilation."""
    assert 900 <= len(TRIAGE) <= 1200
    template = parse_template(TRIAGE, "triage.j2")
    first = template.render(TRIAGE_VARS)
    before = _compile.cache_info()
    assert all(template.render(TRIAGE_VARS) == first for _ in range(1_000))
    after = _compile.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1_000
    assert "Ticket:\nI was charged twice\n" in first[0]["content"]
