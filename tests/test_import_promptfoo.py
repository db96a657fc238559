"""`gpo-action import promptfoo` and `gpo-action eval --dry-run`, over configs written from promptfoo's
documentation (configuration/prompts, test-cases, providers, expected-outputs), one per feature; the
imported project is evaluated with `gpo-action eval`, unedited, against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gpo_action.cli import main
from gpo_action.expected import parse_expected
from gpo_action.importers.promptfoo.providers import to_model
from gpo_action.importers.promptfoo.reading import Project
from gpo_action.suites import load_suite

KEY = "sk-import-canary-5151"


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def provider(url: str) -> str:
    """An OpenAI-compatible provider pointed at the scripted server (promptfoo's apiBaseUrl)."""
    return (f"providers:\n  - id: openai:chat:scripted\n    config: {{apiBaseUrl: '{url}/v1', apiKeyEnvar: PF_KEY,"
            " temperature: 0}\n")


@pytest.fixture
def pf(tmp_path, monkeypatch):
    monkeypatch.setenv("PF_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    return tmp_path


def imported(pf: Path, *extra: str):
    return run_cli("import", "promptfoo", str(pf / "src" / "promptfooconfig.yaml"), "--out", str(pf / "out"), *extra)


# --- the __expected shorthand (one pure function) ----------------------------------------------

@pytest.mark.parametrize("cell, assertion", [
    ("Paris", {"type": "equals", "value": "Paris"}),
    ("contains:Paris", {"type": "contains", "value": "Paris"}),
    ("  contains: Paris ", {"type": "contains", "value": "Paris"}),
    ("icontains:bonjour", {"type": "icontains", "value": "bonjour"}),
    ("not-contains:error", {"type": "not-contains", "value": "error"}),
    ("regex:^\\d+$", {"type": "regex", "value": "^\\d+$"}),
    ("grade:is polite", {"type": "llm-rubric", "value": "is polite"}),
    ("llm-rubric: is polite", {"type": "llm-rubric", "value": " is polite"}),
    ("similar(0.9):Hello there", {"type": "similar", "value": "Hello there", "threshold": 0.9}),
    ("similar:Hello", {"type": "similar", "value": "Hello", "threshold": 0.8}),
    ("levenshtein:abc", {"type": "levenshtein", "value": "abc", "threshold": 0.75}),
    ("contains-any: <b>, </span>", {"type": "contains-any", "value": ["<b>", "</span>"]}),
    ("is-json", {"type": "is-json"}),
    ("Note: a colon", {"type": "equals", "value": "Note: a colon"}),
])
def test_expected_shorthand_reads_as_promptfoo_documents(cell, assertion):
    assert parse_expected(cell).assertion == assertion


@pytest.mark.parametrize("cell", ["fn:output.length > 3", "javascript: 1", "python: True", "eval:x", "file://check.py"])
def test_expected_shorthand_refuses_code(cell):
    parsed = parse_expected(cell)
    assert parsed.assertion is None and "never run" in parsed.refused


def test_our_csv_case_files_read_the_shorthand_never_a_literal(tmp_path, openai_server, monkeypatch):
    """issue 16: `icontains:bonjour` as a literal flipped 4 of 4 cases to fail."""
    from tests.support.projects import write_config

    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, openai_server.url)
    write(tmp_path, {"prompts/t.j2": "Say hello in French: {{ w }}",
                     "evals/t.yaml": "prompt: prompts/t.j2\ncases:\n  - file: t.csv\n",
                     "evals/t.csv": "w,__expected\n" + "".join(f"w{i},icontains:bonjour\n" for i in range(4))})
    openai_server.set_reply("Bonjour !")
    result = run_cli("eval", "--json", "r.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["suites"][0]["passed"] == 4


def test_our_csv_refuses_a_code_shorthand_with_its_line(tmp_path):
    write(tmp_path, {"p.j2": "{{ w }}", "evals/s.yaml": "prompt: p.j2\ncases:\n  - file: c.csv\n",
                     "evals/c.csv": "w,__expected\na,contains:a\nb,fn:output.length > 1\n"})
    with pytest.raises(Exception) as err:
        load_suite("evals/s.yaml", tmp_path)
    assert "evals/c.csv:3" in str(err.value) and "never run" in str(err.value)


# --- providers --------------------------------------------------------------------------------

@pytest.mark.parametrize("pid, model", [
    ("openai:gpt-4o-mini", "openai/gpt-4o-mini"), ("openai:chat:gpt-4o", "openai/gpt-4o"),
    ("anthropic:messages:claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku-latest"),
    ("azure:chat:my-deployment", "azure/my-deployment"),
    ("bedrock:anthropic.claude-3-haiku-20240307-v1:0", "bedrock/anthropic.claude-3-haiku-20240307-v1:0"),
    ("vertex:gemini-1.5-pro", "vertex_ai/gemini-1.5-pro"), ("ollama:chat:llama3", "ollama_chat/llama3"),
    ("ollama:llama3", "ollama/llama3"), ("openrouter:mistralai/mistral-7b", "openrouter/mistralai/mistral-7b"),
    ("groq:llama3-8b-8192", "groq/llama3-8b-8192"), ("mistral:mistral-small", "mistral/mistral-small"),
])
def test_providers_map_to_litellm_model_strings(tmp_path, pid, model):
    project = Project.at(tmp_path / "promptfooconfig.yaml")
    assert to_model(project, pid, "c.yaml", 1).spec == {"model": model} and not project.notes


def test_a_provider_key_is_never_copied_and_an_unknown_provider_is_listed(tmp_path):
    project = Project.at(tmp_path / "promptfooconfig.yaml")
    model = to_model(project, {"id": "azure:chat:dep", "config": {"apiHost": "x.openai.azure.com", "apiKey": KEY}},
                     "c.yaml", 3)
    assert model.spec == {"model": "azure/dep", "api_base": "https://x.openai.azure.com"}
    assert to_model(project, "exec:./run.sh", "c.yaml", 7) is None
    text = "\n".join(map(str, project.notes))
    assert KEY not in text and "c.yaml:3" in text and "c.yaml:7" in text


# --- the round trip ---------------------------------------------------------------------------

def test_import_then_eval_runs_unedited(pf, openai_server):
    write(pf / "src", {
        "promptfooconfig.yaml": "prompts:\n  - file://prompts/greet.txt\n" + provider(openai_server.url) + (
            "defaultTest:\n  vars: {lang: French}\n  assert:\n    - type: icontains\n      value: bonjour\n"
            "tests:\n  - vars: {name: Ada}\n  - file://more.csv\n  - file://more.yaml\n  - file://more.json\n"
            "  - file://more.jsonl\n  - vars: {name: file://name.txt}\n"),
        "prompts/greet.txt": "\n  Greet {{ name }} in {{ lang }}.\n\n",
        "more.csv": "name,__expected\nBo,contains:Bonjour\n",
        "more.yaml": "- vars: {name: Cy}\n  assert: [{type: starts-with, value: Bonjour}]\n",
        "more.json": '[{"vars": {"name": "Di"}}]',
        "more.jsonl": '{"vars": {"name": "Ed"}, "assert": [{"type": "not-contains", "value": "Hello"}]}\n',
        "name.txt": "Flo",
    })
    result = imported(pf)
    assert result.exit_code == 0, result.output
    assert all(KEY not in p.read_text() for p in (pf / "out").rglob("*") if p.is_file())  # the key stays in PF_KEY
    openai_server.set_reply("Bonjour, ami")
    run = run_cli("eval", "--config", str(pf / "out" / "gpo.yaml"), "--json", str(pf / "r.json"))
    assert run.exit_code == 0, run.output
    suite = json.loads((pf / "r.json").read_text())["suites"][0]
    assert (suite["passed"], suite["failed"], suite["errors"]) == (6, 0, 0)
    sent = [r["messages"][-1]["content"] for r in openai_server.requests]
    assert "Greet Ada in French." in sent and "Greet Flo in French." in sent  # .txt trimmed, file:// var loaded


def test_prompts_x_providers_become_one_suite_per_pair_and_chat_json_the_chat_form(pf, openai_server):
    write(pf / "src", {
        "promptfooconfig.yaml": (
            "prompts:\n  - file://prompts/*.txt\n  - file://chat.json\n"
            + provider(openai_server.url)
            + f"  - id: openai:chat:other\n    label: other\n    config: {{apiBaseUrl: '{openai_server.url}/v1', apiKeyEnvar: PF_KEY}}\n"
            "tests:\n  - vars: {q: hi}\n    assert: [{type: contains, value: hi}]\n"),
        "prompts/a.txt": "A {{ q }}", "prompts/b.txt": "B {{ q }}",
        "chat.json": '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{ q }}"}]',
    })
    assert imported(pf).exit_code == 0
    config = yaml.safe_load((pf / "out" / "gpo.yaml").read_text())
    assert len(config["suites"]) == 6  # 3 prompts x 2 providers
    chat = yaml.safe_load((pf / "out" / "prompts" / "chat.yaml").read_text())
    assert chat == {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{ q }}"}]}
    run = run_cli("eval", "--config", str(pf / "out" / "gpo.yaml"))
    assert run.exit_code == 0, run.output
    assert {r["model"] for r in openai_server.requests} == {"scripted", "other"}
    assert openai_server.total == 6


def test_what_cannot_be_converted_is_listed_with_file_and_line_and_exits_1(pf):
    write(pf / "src", {
        "promptfooconfig.yaml": (
            "prompts:\n  - file://build.py:make\n  - 'Hi {{ x }}'\nproviders: [openai:gpt-4o-mini]\n"
            "tests:\n  - vars: {x: a}\n    assert:\n      - type: javascript\n        value: output.length > 1\n"
            "      - type: contains\n        value: a\n        transform: output.trim()\n"
            "      - type: icontains\n        value: a\n  - file://gen.js\n"
            "redteam:\n  plugins: [harmful]\n"),
    })
    result = imported(pf)
    assert result.exit_code == 1
    notes = (pf / "out" / "IMPORT-NOTES.md").read_text()
    for where, what in (("promptfooconfig.yaml:2", "code prompt"), ("promptfooconfig.yaml:6", "'javascript'"),
                        ("promptfooconfig.yaml:6", "`transform`"), ("promptfooconfig.yaml:15", "gen.js: a generator script"),
                        ("promptfooconfig.yaml:16", "red-team")):
        assert any(where in line and what in line for line in notes.splitlines()), (where, what, notes)
        assert any(where in line and what in line for line in result.stdout.splitlines())
    suite = yaml.safe_load(next((pf / "out" / "evals").glob("*.yaml")).read_text())
    assert suite["cases"][0]["assert"] == [{"type": "icontains", "value": "a"}]


def test_nunjucks_constructs_are_rewritten_and_named(pf):
    write(pf / "src", {"promptfooconfig.yaml": "prompts: [file://p.txt]\ntests:\n  - vars: {d: {a: 1}}\n"
                                               "    assert: [{type: contains, value: a}]\n",
                       "p.txt": "{% if d %}{{ d | dump }}{% elseif x %}no{% endif %}"})
    result = imported(pf)
    assert result.exit_code == 0
    assert (pf / "out" / "prompts" / "p.j2").read_text() == "{% if d %}{{ d | tojson }}{% elif x %}no{% endif %}"
    assert "`| dump` became `| tojson`" in (pf / "out" / "IMPORT-NOTES.md").read_text()


def test_default_test_provider_becomes_the_judge_and_fields_are_kept(pf):
    write(pf / "src", {"promptfooconfig.yaml": (
        "prompts: ['{{ q }}']\nproviders: [openai:gpt-4o-mini]\n"
        "defaultTest:\n  options: {provider: anthropic:messages:claude-3-5-haiku-latest}\n  threshold: 0.5\n"
        "tests:\n  - vars: {q: x}\n    threshold: 0.7\n    assert:\n"
        "      - {type: contains, value: x, weight: 2, metric: has_x}\n      - {type: llm-rubric, value: polite}\n")})
    assert imported(pf).exit_code == 0
    config = yaml.safe_load((pf / "out" / "gpo.yaml").read_text())
    assert config["models"] == {"task": {"model": "openai/gpt-4o-mini"},
                                "judge": {"model": "anthropic/claude-3-5-haiku-latest"}}
    suite = yaml.safe_load((pf / "out" / config["suites"][0]).read_text())
    assert suite["threshold"] == 0.5 and suite["cases"][0]["threshold"] == 0.7
    assert suite["cases"][0]["assert"][0] == {"type": "contains", "value": "x", "weight": 2, "metric": "has_x"}


def test_list_vars_expand_and_test_filters_pick_their_suites(pf):
    write(pf / "src", {"promptfooconfig.yaml": (
        "prompts: ['{{ q }}']\nproviders: [openai:gpt-4o-mini, {id: groq:llama3-8b-8192, label: fast}]\n"
        "tests:\n  - vars: {q: [a, b, c]}\n    assert: [{type: contains, value: a}]\n"
        "  - vars: {q: z}\n    providers: [fast]\n    assert: [{type: contains, value: z}]\n")})
    assert imported(pf).exit_code == 0
    fast = yaml.safe_load((pf / "out" / "evals" / "prompt1-fast.yaml").read_text())
    slow = yaml.safe_load((pf / "out" / "evals" / "prompt1-openai-gpt-4o-mini.yaml").read_text())
    assert [c["vars"]["q"] for c in fast["cases"]] == ["a", "b", "c", "z"]
    assert [c["vars"]["q"] for c in slow["cases"]] == ["a", "b", "c"]


# --- refusals: exit 2, never a traceback, never outside the tree or over a project ---------------

@pytest.mark.parametrize("files", [
    {"promptfooconfig.yaml": "prompts: [\n"},
    {"promptfooconfig.yaml": "- just a list\n"},
    {"promptfooconfig.yaml": "prompts: ['{{ q }}']\ntests:\n  - file://missing.csv\n"},
    {"promptfooconfig.yaml": "prompts: ['{{ q }}']\ntests: file://t.csv\n", "t.csv": "q,__threshold\nx,high\n"},
])
def test_unreadable_input_exits_2_without_a_traceback(pf, files):
    write(pf / "src", files)
    result = imported(pf)
    assert result.exit_code == 2 and "Traceback" not in result.output + result.stderr
    assert "promptfooconfig.yaml" in result.stderr or ".csv" in result.stderr


def test_a_file_var_outside_the_project_is_refused(pf):
    (pf / "secret.txt").write_text(KEY)
    (pf / "src" / ".git").mkdir()  # the project's repository: paths stay inside it
    write(pf / "src", {"promptfooconfig.yaml": "prompts: ['{{ s }}']\ntests:\n  - vars: {s: file://../secret.txt}\n"
                                               "    assert: [{type: contains, value: x}]\n"})
    result = imported(pf)
    assert result.exit_code == 2 and "outside" in result.stderr
    assert not (pf / "out" / "gpo.yaml").exists()


def test_an_existing_project_is_kept_unless_force(pf):
    write(pf / "src", {"promptfooconfig.yaml": "prompts: ['{{ q }}']\ntests:\n  - vars: {q: a}\n"
                                               "    assert: [{type: contains, value: a}]\n"})
    write(pf / "out", {"gpo.yaml": "concurrency: 3\n"})
    refused = imported(pf)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert (pf / "out" / "gpo.yaml").read_text() == "concurrency: 3\n"
    assert imported(pf, "--force").exit_code == 0
    assert "suites" in (pf / "out" / "gpo.yaml").read_text()


# --- eval --dry-run -----------------------------------------------------------------------------

def test_dry_run_calls_no_model_and_counts_cache_hits(pf, openai_server):
    write(pf / "src", {"promptfooconfig.yaml": "prompts: ['Say {{ q }}']\n" + provider(openai_server.url)
                       + "tests:\n" + "".join(f"  - vars: {{q: w{i}}}\n    assert: [{{type: contains, value: w}}]\n"
                                              for i in range(3))})
    assert imported(pf).exit_code == 0
    config = str(pf / "out" / "gpo.yaml")
    dry = run_cli("eval", "--dry-run", "--config", config)
    assert dry.exit_code == 0, dry.output
    assert openai_server.total == 0
    assert "openai/scripted: 3 calls to send" in dry.stdout
    assert run_cli("eval", "--config", config).exit_code == 0 and openai_server.total == 3
    again = run_cli("eval", "--dry-run", "--config", config)
    assert "openai/scripted: 0 calls to send" in again.stdout and openai_server.total == 3


def test_dry_run_exits_2_on_a_bad_suite(pf, openai_server):
    write(pf, {"gpo.yaml": "suites: [evals/s.yaml]\n", "p.j2": "{{ q }}",
               "evals/s.yaml": "prompt: p.j2\ncases:\n  - vars: {q: a}\n    assert: [{type: no-such-type}]\n"})
    result = run_cli("eval", "--dry-run")
    assert result.exit_code == 2 and "evals/s.yaml:4" in result.stderr and openai_server.total == 0


def test_a_test_threshold_weights_and_a_metric_survive_the_round_trip_and_score_as_promptfoo_does(pf, openai_server):
    """threshold 0.6 on a case whose assertions (weights 2 and 1) score 2/3: promptfoo passes it;
    the metric's score is that of the assertion naming it."""
    openai_server.set_reply(lambda body, index: "hello there")
    write(pf / "src", {"promptfooconfig.yaml": "prompts: ['Say {{ q }}']\n" + provider(openai_server.url) + (
        "tests:\n  - vars: {q: hi}\n    threshold: 0.6\n    assert:\n"
        "      - {type: contains, value: hello, weight: 2, metric: greeting}\n"
        "      - {type: contains, value: goodbye, weight: 1}\n")})
    assert imported(pf).exit_code == 0
    result = run_cli("eval", "--config", str(pf / "out" / "gpo.yaml"), "--json", str(pf / "r.json"))
    assert result.exit_code == 0, result.output
    [case] = json.loads((pf / "r.json").read_text())["suites"][0]["cases"]
    assert case["passed"] and case["score"] == pytest.approx(2 / 3)
    assert case["metrics"] == {"greeting": 1.0}
