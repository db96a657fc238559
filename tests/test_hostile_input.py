"""Hostile input ends fast with a clear error that names the case, never a hang or a traceback.

A suite, its case files and its templates come from pull requests. Each test here runs the real
`gpo-action eval` on a project under tmp against the scripted server, with pytest-timeout as the
guard against a hang (no timing assertions: speed is measured in bench/). What a render refuses
stops the run before any model call (exit 2, naming the case and its file:line); what a check
cannot finish (a catastrophic regex) fails that case's assertion with the reason, and the other
cases are scored as usual.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.assertions import Assertion, check
from gpo_action.cli import main
from gpo_action.errors import TemplateError
from gpo_action.templates import render_text
from tests.support.projects import write_config

KEY = "sk-test-hostile-0000"
CATASTROPHIC = r"(a|aa)+$"  # exponential backtracking on "aaaa...!" in Python's re

pytestmark = pytest.mark.timeout(90)

# 90,300 loop iterations (under the 100,000 allowed), each running three str methods over a 1 MB
# string: minutes of CPU, stopped by the per-render CPU budget alone.
STRING_METHOD_LOOP = ("{% set big = word * 250000 %}{% for i in range(300) %}{% for j in range(300) %}"
                      "{% if big.upper().lower().count(word) < 0 %}{% endif %}{% endfor %}{% endfor %}")


def write_project(root: Path, url: str, *, template: str = "Say {{ word }}", cases: str | bytes | None = None,
                  asserts: str = '  - {type: equals, value: "{{ expected }}"}\n') -> Path:
    (root / "prompts").mkdir()
    (root / "evals").mkdir()
    write_config(root, url, retries=0)
    (root / "prompts" / "say.j2").write_text(template, encoding="utf-8")
    (root / "evals" / "hostile.yaml").write_text(
        "prompt: prompts/say.j2\nassert:\n" + asserts + "cases:\n  - file: cases.jsonl\n", encoding="utf-8")
    if cases is None:
        cases = "".join(json.dumps({"word": w, "expected": f"Say {w}"}) + "\n" for w in ("one", "two", "three"))
    data = cases if isinstance(cases, bytes) else cases.encode("utf-8")
    (root / "evals" / "cases.jsonl").write_bytes(data)
    return root


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_5_mb_case_input_is_that_cases_error_naming_it(project_dir, openai_server):
    """Past a render limit is that case's error (named on stderr, exit 2); the other case is evaluated.
    (It used to stop the whole run; issue 11 made render limits per-case errors.)"""
    huge = json.dumps({"id": "huge", "word": "x" * 5_000_000, "expected": "x"})
    small = json.dumps({"id": "small", "word": "ok", "expected": "Say ok"})
    write_project(project_dir, openai_server.url, cases=f"{small}\n{huge}\n")
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 2, result.output
    assert "case huge (evals/cases.jsonl:2): prompts/say.j2:1: render limit" in result.stderr
    assert "1000000 characters" in result.stderr
    cases = {c["case_id"]: c for c in json.loads((project_dir / "out.json").read_text())["suites"][0]["cases"]}
    assert cases["small"]["passed"] is True and cases["small"]["error"] is None
    assert cases["huge"]["samples"][0]["error_type"] == "RenderLimit"
    assert openai_server.total == 1  # only the small case was asked


def test_a_5_mb_input_the_template_does_not_print_is_evaluated(project_dir, openai_server):
    """Size alone is not an error: a big var that the prompt only slices renders fine."""
    case = json.dumps({"id": "big", "word": "y" * 5_000_000, "expected": "Say yyy"})
    write_project(project_dir, openai_server.url, template="Say {{ word[:3] }}", cases=case + "\n")
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    suite = json.loads((project_dir / "out.json").read_text())["suites"][0]
    assert (suite["passed"], suite["errors"]) == (1, 0)


def test_json_nested_past_the_stack_is_a_suite_error_with_its_line(project_dir, openai_server):
    deep = '{"word": ' + "[" * 100_000 + "]" * 100_000 + ', "expected": "x"}'
    fine = json.dumps({"word": "ok", "expected": "Say ok"})
    write_project(project_dir, openai_server.url, cases=f"{fine}\n{deep}\n")
    result = run_cli("eval")
    assert result.exit_code == 2, result.output
    assert "evals/cases.jsonl:2: the record is nested more than 100 levels deep" in result.stderr
    assert openai_server.total == 0


def test_json_nested_deeper_than_the_limit_but_parseable_is_refused_too(project_dir, openai_server):
    nested = '{"word": "ok", "expected": "Say ok", "extra": ' + "[" * 500 + "]" * 500 + "}"
    write_project(project_dir, openai_server.url, cases=nested + "\n")
    result = run_cli("eval")
    assert result.exit_code == 2
    assert "evals/cases.jsonl:1: the record is nested more than 100 levels deep" in result.stderr


def test_moderately_nested_vars_are_evaluated(project_dir, openai_server):
    nested = {"word": "ok", "expected": "Say ok", "extra": [[[[[[[[[[{"a": [1, 2, {"b": None}]}]]]]]]]]]]}
    write_project(project_dir, openai_server.url, cases=json.dumps(nested) + "\n")
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    assert json.loads((project_dir / "out.json").read_text())["suites"][0]["passed"] == 1


def test_yaml_nested_past_the_stack_is_a_suite_error(project_dir, openai_server):
    write_project(project_dir, openai_server.url)
    suite = project_dir / "evals" / "hostile.yaml"
    suite.write_text("prompt: prompts/say.j2\ncases:\n  - vars: {word: " + "[" * 50_000 + "]" * 50_000 + "}\n")
    result = run_cli("eval")
    assert result.exit_code == 2, result.output
    assert "evals/hostile.yaml:3: invalid YAML" in result.stderr and "nesting depth" in result.stderr
    assert "Traceback" not in result.output


def test_invalid_utf8_in_a_case_file_names_the_file_line_and_byte(project_dir, openai_server):
    cases = b'{"word": "ok", "expected": "Say ok"}\n{"word": "caf\xe9", "expected": "x"}\n'
    write_project(project_dir, openai_server.url, cases=cases)
    result = run_cli("eval")
    assert result.exit_code == 2
    assert "evals/cases.jsonl:2: not valid UTF-8 (byte 0xe9)" in result.stderr
    assert openai_server.total == 0


@pytest.mark.parametrize("template", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ word }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ word }}{% endfor %}{% endfor %}",
    "{% set ns = namespace(s=word) %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% macro grow(s, n) %}{% if n %}{{ grow(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ grow(word, 64) }}",
    "{% set x %}{% for i in range(100000) %}{{ word * 200000 }}{% endfor %}{% endset %}{{ x[:10] }}",
    "{{ word|center(10 ** 10) }}",
    "{{ word.ljust(10 ** 10) }}",
    "{{ '{:>{w}}'.format(word, w=10 ** 10) }}",
    "{{ '%*s' % (10 ** 10, word) }}",
    "{{ (word * 100000)|replace(word, word * 100000) }}",
    "{{ (word * 1000)|wordwrap(1, wrapstring=word * 100000) }}",
    "{{ (',' * 100000).join([word] * 100000) }}",
    "{{ lipsum(10 ** 9) }}",
    "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}{% set ns.x = ns.x + [ns.x] %}{% endfor %}{{ ns.x }}",
    # both operands of ** and * count: a power of a power, an integer squared again and again
    "{{ (9 ** 4096) ** 4096 }}",
    "{% set ns = namespace(x=9 ** 4096) %}{% for i in range(30) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ 1 }}",
    # a list of lists repeated: each * is small, the nesting is not (== would compare 100**5 pairs)
    "{{ [[[[[[word] * 100] * 100] * 100] * 100] * 100] == [[[[[[word] * 100] * 100] * 100] * 100] * 100] }}",
    # the same nesting passed down a macro's recursion (a value bound to a name, as in {% set %})
    "{% macro f(x, y, n) %}{% if n %}{{ f([x, x], [y, y], n - 1) }}{% else %}{{ x == y }}{% endif %}{% endmacro %}"
    "{{ f(word, word, 60) }}",
    "{% with a = word * 200000 %}{% with b = [a, a] %}{{ b|length }}{% endwith %}{% endwith %}",
    # cheap steps, too many of them: 2**40 macro calls; str methods over 1 MB in a loop
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    STRING_METHOD_LOOP,
    "{% set big = [word * 50000] * 4 %}{% for i in range(100000) %}{{ big|map('upper')|select('none')|list|length }}"
    "{% endfor %}",
])
@pytest.mark.timeout(30)
def test_a_template_that_loops_or_renders_gigabytes_hits_the_render_limit(template):
    with pytest.raises(TemplateError) as caught:
        render_text(template, {"word": "abcd"}, "prompts/hostile.j2")
    assert "render limit" in caught.value.message
    assert caught.value.path == "prompts/hostile.j2"


def test_ordinary_templates_still_render_exactly():
    source = ("{% for w in words %}{{ loop.index }}. {{ w|center(7) }}|{% endfor %} {{ '%3d' % 7 }} "
              "{{ '{:>5}'.format('x') }} {{ words|join(', ') }} {{ ('ab' ~ 'cd')|replace('b', 'B') }}")
    assert render_text(source, {"words": ["a", "bb"]}) == \
        f"1. {'a'.center(7)}|2. {'bb'.center(7)}|   7     x a, bb aBcd"
    source = ("{{ 2 ** 64 }} {{ (9 ** 4096) % 1000 }} {{ (2 ** 100) * (3 ** 50) }} {{ [0] * 3 }} {{ 'ab' * 3 }} "
              "{% macro m(x) %}[{{ x|join(',') }}]{% endmacro %}{{ m(words) }} {% with n = words|length %}{{ n }}{% endwith %}")
    assert render_text(source, {"words": ["a", "bb"]}) == \
        f"{2 ** 64} {(9 ** 4096) % 1000} {(2 ** 100) * (3 ** 50)} [0, 0, 0] ababab [a,bb] 2"


def test_a_looping_template_is_an_error_of_every_case_naming_them(project_dir, openai_server):
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}Say {{ word }}"
    write_project(project_dir, openai_server.url, template=loop)
    result = run_cli("eval")
    assert result.exit_code == 2, result.output
    assert "3 cases went past a render limit" in result.stderr
    assert "render limit: loops ran more than 100000 iterations" in result.stderr
    for line in (1, 2, 3):
        assert f"(evals/cases.jsonl:{line}): prompts/say.j2:1: render limit" in result.stderr
    assert openai_server.total == 0


def test_a_catastrophic_regex_fails_its_case_with_the_reason(project_dir, openai_server):
    """The pattern hangs Python's re for hours on this output; here the case fails after the
    regex timeout, and the other cases are scored as usual."""
    openai_server.add_rule(r"^Say evil$", "a" * 40 + "!")
    cases = "".join(json.dumps({"id": w, "word": w}) + "\n" for w in ("evil", "aaaa", "fine"))
    write_project(project_dir, openai_server.url, cases=cases,
                  asserts=f"  - {{type: regex, value: '{CATASTROPHIC}'}}\n")
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    suite = json.loads((project_dir / "out.json").read_text())["suites"][0]
    by_id = {c["case_id"]: c for c in suite["cases"]}
    evil = by_id["evil"]["samples"][0]["checks"][0]
    assert evil["passed"] is False and "gave up after 1 s" in evil["reason"]
    assert by_id["aaaa"]["passed"] is True  # "Say aaaa" ends in a's: the same pattern, answered at once
    assert by_id["fine"]["passed"] is False and "does not match" in by_id["fine"]["samples"][0]["checks"][0]["reason"]
    assert suite["errors"] == 0 and len(suite["cases"]) == 3


@pytest.mark.parametrize("assertion", [
    Assertion(type="regex", value=CATASTROPHIC),
    Assertion(type="not-regex", value=CATASTROPHIC),
    Assertion(type="equals", value="x", extract=CATASTROPHIC),
])
def test_catastrophic_patterns_are_bounded_in_every_place_a_pattern_runs(assertion):
    verdict = check(assertion, "a" * 40 + "!")
    assert verdict.passed is False and verdict.score == 0.0
    assert "gave up after 1 s" in verdict.reason


def test_a_hostile_assertion_value_fails_only_its_case(project_dir, openai_server):
    cases = "".join(json.dumps({"id": w, "word": w, "width": width}) + "\n" for w, width in (("a", 5), ("b", 10 ** 10)))
    write_project(project_dir, openai_server.url, cases=cases,
                  asserts="  - {type: contains, value: \"{{ word|center(width)|trim }}\"}\n")
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    cases_out = {c["case_id"]: c for c in json.loads((project_dir / "out.json").read_text())["suites"][0]["cases"]}
    assert cases_out["a"]["passed"] is True
    reason = cases_out["b"]["samples"][0]["checks"][0]["reason"]
    assert cases_out["b"]["passed"] is False and "render limit" in reason


# ---- YAML alias bombs: refused at load, in little memory ------------------------------------------

# The child runs `gpo-action eval` under an address-space limit 300 MB above what it has after
# importing the CLI, so an expansion that escaped the bound dies with a MemoryError (exit 1, a
# traceback) instead of eating the machine. It prints its peak resident size (VmHWM, its own since
# exec; ru_maxrss would include what it inherited from this process) before and after the run, for
# the "under 50 MB" promise. Linux: /proc, RLIMIT_AS.
BOUNDED_EVAL = """
import resource
from gpo_action.cli import main
def status():
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in open("/proc/self/status")) if k[:2] == "Vm"}
print(status()["VmHWM"], flush=True)
limit = (status()["VmSize"] + 300 * 1024) * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    main(["eval"], prog_name="gpo-action")
finally:
    print(status()["VmHWM"], flush=True)
"""


def alias_bomb(indent: str, levels: int = 9) -> str:
    """The "billion laughs": 9 aliases of 9 aliases ... of 9 x's, under 1 KB, 9**9 values expanded."""
    lines = [f"{indent}a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def write_bomb_project(root: Path, url: str, where: str) -> tuple[str, int]:
    """A project with the bomb in `where` (suite, config, chat); returns its file and the line the
    error must name: a5's, the first value past the 100,000 allowed (a4 expands to 66,430)."""
    write_project(root, url)
    if where == "suite":
        shown = "evals/hostile.yaml"
        text = "prompt: prompts/say.j2\ncases:\n  - vars:\n      word: hi\n      bomb:\n" + alias_bomb(" " * 8)
        text += "    expected: Say hi\n"
    elif where == "config":
        shown = "gpo.yaml"
        text = (f"models:\n  task:\n    model: openai/scripted\n    api_base: \"{url}/v1\"\n"
                f"    api_key_env: GPO_TEST_KEY\n    metadata:\n{alias_bomb(' ' * 6)}"
                "suites:\n  - eval: evals/*.yaml\ncache: {path: .gpo/cache.sqlite}\n")
    else:
        shown = "prompts/say.yaml"
        text = "messages:\n  - {role: user, content: 'Say {{ word }}'}\nparams:\n  metadata:\n" + alias_bomb("    ")
        (root / "evals" / "hostile.yaml").write_text(
            "prompt: prompts/say.yaml\ncases:\n  - file: cases.jsonl\n", encoding="utf-8")
    (root / shown).write_text(text, encoding="utf-8")
    assert len(text.encode()) < 1500
    return shown, text.split("\n").index(next(line for line in text.split("\n") if "a5:" in line)) + 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and sets RLIMIT_AS (Linux)")
@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["suite", "config", "chat"])
def test_a_yaml_alias_bomb_is_an_input_error_naming_file_and_line(project_dir, openai_server, where):
    shown, line = write_bomb_project(project_dir, openai_server.url, where)
    env = {**os.environ, "GPO_TEST_KEY": KEY}
    child = subprocess.run([sys.executable, "-c", BOUNDED_EVAL], cwd=project_dir, env=env, capture_output=True, text=True)
    assert child.returncode == 2, child.stderr
    assert f"{shown}:{line}: YAML aliases expand this value to more than 100000 values" in child.stderr
    assert "Traceback" not in child.stderr and "MemoryError" not in child.stderr
    assert KEY not in child.stdout + child.stderr  # the key in the environment: a canary
    before_kb, peak_kb = (int(n) for n in child.stdout.split()[:2])
    assert peak_kb - before_kb < 50 * 1024, f"peak {peak_kb} KB, {before_kb} KB before the run"
    assert openai_server.total == 0


@pytest.mark.parametrize("bomb, message", [
    ("&loop [*loop]", "a YAML alias refers to the value that contains it"),
    ("1" * 5000, "an integer with more than 4300 digits"),
])
def test_yaml_that_contains_itself_or_a_huge_integer_is_an_input_error(project_dir, openai_server, bomb, message):
    write_project(project_dir, openai_server.url)
    (project_dir / "evals" / "hostile.yaml").write_text(
        "prompt: prompts/say.j2\ncases:\n  - vars: {word: hi}\n    expected: Say hi\n"
        f"  - vars:\n      word: {bomb}\n")
    result = run_cli("eval")
    assert result.exit_code == 2, result.output
    assert f"evals/hostile.yaml:6: {message}" in result.stderr
    assert "Traceback" not in result.output


def test_yaml_aliases_and_merge_keys_used_as_meant_still_load(project_dir, openai_server):
    write_project(project_dir, openai_server.url)
    (project_dir / "evals" / "hostile.yaml").write_text(
        "prompt: prompts/say.j2\ncases:\n"
        "  - {vars: &v {word: one}, expected: Say one, assert: &checks [{type: contains, value: Say}]}\n"
        "  - {vars: {<<: *v, word: two}, expected: Say two, assert: *checks}\n"
        + "".join(f"  - {{vars: {{<<: *v, n: {i}}}, expected: Say one, assert: *checks}}\n" for i in range(200)))
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    suite = json.loads((project_dir / "out.json").read_text())["suites"][0]
    assert (suite["passed"], suite["errors"]) == (202, 0)


# ---- templates: both operands of ** and * bounded, and CPU time per render ---------------------------

@pytest.mark.timeout(30)
@pytest.mark.parametrize("hostile, reason", [
    ("{{ (9**4096)**4096 }}", "too large (more than 65536 bits)"),
    ("{{ 'a' * 10**9 }}", "too large"),
    ("{{ [1] * 10**9 }}", "too large"),
    (STRING_METHOD_LOOP, "the render used more than 1 s of CPU"),
], ids=["power-of-a-power", "string-repeat", "list-repeat", "string-method-loop"])
def test_a_render_past_a_bound_is_that_cases_error_and_the_rest_is_evaluated(project_dir, openai_server, hostile,
                                                                            reason):
    template = "{% if word == 'evil' %}" + hostile + "{% endif %}Say {{ word }}"
    cases = "".join(json.dumps({"id": w, "word": w, "expected": f"Say {w}"}) + "\n" for w in ("one", "evil", "two"))
    write_project(project_dir, openai_server.url, template=template, cases=cases)
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 2, result.output
    assert "case evil (evals/cases.jsonl:2): prompts/say.j2:1: render limit: " in result.stderr
    assert reason in result.stderr
    suite = json.loads((project_dir / "out.json").read_text())["suites"][0]
    by_id = {c["case_id"]: c for c in suite["cases"]}
    assert by_id["one"]["passed"] is True and by_id["two"]["passed"] is True
    evil = by_id["evil"]
    assert evil["samples"][0]["error_type"] == "RenderLimit"
    assert "prompts/say.j2:1: render limit" in evil["error"] and reason in evil["error"]
    assert suite["errors"] == 1 and openai_server.total == 2
    assert KEY not in result.output + result.stderr + (project_dir / "out.json").read_text()


@pytest.mark.timeout(60)
def test_a_render_limit_on_head_in_a_run_is_reported_naming_the_case(tmp_path, openai_server, monkeypatch):
    from tests.support.projects import GOOD, git, local_run_repo

    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(root)
    git(root, "checkout", "-qb", "pr")
    (root / "prompts" / "triage.j2").write_text(
        "{% if ticket.startswith('ticket number 4 ') %}{{ (9 ** 4096) ** 4096 }}{% endif %}" + GOOD)
    git(root, "commit", "-qam", "a prompt that blows up on one ticket")
    result = CliRunner().invoke(main, ["run", "--base", "main", "--json", "out.json", "--markdown", "out.md"],
                                catch_exceptions=False)
    assert "suite triage (head): 1 case went past a render limit" in result.stderr
    assert "prompts/triage.j2:1: render limit: " in result.stderr
    comparison = json.loads((root / "out.json").read_text())["comparisons"][0]
    assert comparison["head_errors"] == 1 and comparison["n_paired"] == 29
    assert "render limit" in (root / "out.md").read_text()
    # an error like any other: 1 of 30 is within max_error_rate (0.05), so the other 29 are judged
    assert comparison["verdict"] == "unchanged" and result.exit_code == 0, result.stderr
    assert openai_server.total == 30  # the head's 29 other prompts are the base's, answered once
