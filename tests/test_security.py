"""Security, each a test: what a pull request brings (templates, eval files, case contents) cannot
run code or forge the comment, and no secret leaks into any output of the Action."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

from gpo_action.cli import main
from gpo_action.compare import Comparison, FlippedCase
from gpo_action.errors import TemplateError
from gpo_action.report.comment import pr_comment
from gpo_action.report.markdown import MARKER
from gpo_action.templates import parse_template
from tests.support.projects import local_run_repo
from tests.test_action import KEY, World, bot_comments, git, reply
from tests.test_comment import change, run_result

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}",
    "{{ self.__init__.__globals__['__builtins__']['__import__']('os').system('touch PWNED') }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ticket|attr('__class__') }}",
    "{{ lipsum.__globals__.os.system('touch PWNED') }}",
]


# ---- templates --------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ESCAPES)
def test_a_template_reaching_for_python_internals_is_refused(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TemplateError, match="unsafe template refused"):
        parse_template(source + "\nTicket: {{ ticket }}").render({"ticket": "x"})
    assert not (tmp_path / "PWNED").exists()


@pytest.fixture
def pr_repo(tmp_path, openai_server, monkeypatch):
    """The `run` project (test_run's), on a branch `pr`: a pull request whose files the tests make hostile."""
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    git(root, "checkout", "-qb", "pr")
    monkeypatch.chdir(root)
    return root


def run_pr(root: Path):
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the pull request")
    return CliRunner().invoke(main, ["run", "--base", "main", "--optimize"], catch_exceptions=False)


def test_a_pull_request_template_that_escapes_the_sandbox_is_refused_before_any_call(pr_repo, openai_server):
    (pr_repo / "prompts" / "triage.j2").write_text(ESCAPES[2] + "\nTicket: {{ ticket }}\n")
    result = run_pr(pr_repo)
    assert result.exit_code == 2 and "unsafe template refused" in result.stderr
    assert openai_server.total == 0 and not (pr_repo / "PWNED").exists()


@pytest.mark.parametrize("suite", [
    # YAML tags that would construct Python objects with an unsafe loader
    'prompt: prompts/triage.j2\ncases:\n  - vars: !!python/object/apply:os.system ["touch PWNED"]\n',
    'prompt: !!python/object/apply:os.system ["touch PWNED"]\ncases:\n  - vars: {ticket: a}\n',
    # promptfoo's code assertions are refused, never run
    "prompt: prompts/triage.j2\nassert:\n  - {type: python, value: \"__import__('os').system('touch PWNED')\"}\n"
    "cases:\n  - vars: {ticket: a}\n",
    "prompt: prompts/triage.j2\nassert:\n  - {type: javascript, value: \"require('fs').writeFileSync('PWNED', '')\"}\n"
    "cases:\n  - vars: {ticket: a}\n",
    # a template tag in an assertion value runs in the sandbox
    "prompt: prompts/triage.j2\nassert:\n  - {type: equals, value: \"{{ cycler.__init__.__globals__.os.system('touch PWNED') }}\"}\n"
    "cases:\n  - vars: {ticket: a}\n",
])
def test_eval_files_from_a_pull_request_cannot_execute_code(pr_repo, suite):
    (pr_repo / "evals" / "hostile.yaml").write_text(suite)
    result = run_pr(pr_repo)
    assert result.exit_code in (0, 1, 2), result.output
    assert not (pr_repo / "PWNED").exists()
    assert "Traceback" not in result.output


def test_a_hostile_config_at_the_base_is_not_loaded_either(pr_repo):
    git(pr_repo, "checkout", "-q", "main")
    config = pr_repo / "gpo.yaml"
    config.write_text(config.read_text() + 'hook: !!python/object/apply:os.system ["touch PWNED"]\n')
    git(pr_repo, "commit", "-qam", "hostile base")
    git(pr_repo, "checkout", "-q", "pr")
    git(pr_repo, "merge", "-q", "main", "-X", "theirs", "-m", "merge")
    config.write_text(config.read_text().replace('hook: !!python/object/apply:os.system ["touch PWNED"]\n', ""))
    (pr_repo / "prompts" / "triage.j2").write_text("Classify: {{ ticket }}\n")
    result = run_pr(pr_repo)
    assert not (pr_repo / "PWNED").exists() and "Traceback" not in result.output


def test_case_variables_are_data_never_templates(pr_repo, openai_server):
    suite = pr_repo / "evals" / "triage.yaml"
    suite.write_text(suite.read_text().replace(
        "cases:\n", "cases:\n  - vars: {ticket: \"{{ cycler.__init__.__globals__.os.system('touch PWNED') }}\"}\n"
        "    expected: other\n", 1))
    result = run_pr(pr_repo)
    assert result.exit_code in (0, 1), result.output
    sent = [m["content"] for body in openai_server.requests for m in body["messages"]]
    assert any("{{ cycler.__init__.__globals__.os.system('touch PWNED') }}" in text for text in sent)  # verbatim
    assert not (pr_repo / "PWNED").exists()


# ---- secrets ----------------------------------------------------------------------------------
SECRETS = {"GPO_TEST_KEY": KEY, "OPENAI_API_KEY": "sk-openai-SECRET-4242424242", "ANTHROPIC_API_KEY": "sk-ant-SECRET-77"}


def test_no_token_or_api_key_reaches_stdout_comment_summary_cache_trajectory_or_commit(tmp_path, openai_server,
                                                                                      monkeypatch):
    from tests.support.github_server import GitHubServer

    openai_server.set_reply(reply)
    with GitHubServer(repository="Codertocat/Hello-World") as github:
        world = World(tmp_path, openai_server.url, github, monkeypatch)
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)
        result, outputs, summary = world.run(world.head, deliver="commit,suggestion,comment", key=KEY)
        assert result.exit_code == 1, result.output
        secrets = [github.token, *SECRETS.values()]
        for line in result.output.splitlines():                     # stdout and stderr
            if any(s in line for s in secrets):
                assert line.startswith("::add-mask::"), line
        masked = {line.removeprefix("::add-mask::") for line in result.output.splitlines()
                  if line.startswith("::add-mask::")}
        assert masked == set(secrets)                              # every secret masked, first thing
        assert result.stdout.splitlines()[0].startswith("::add-mask::")
        sent_to_github = json.dumps([r.body for r in github.requests])
        places = {"outputs": outputs, "summary": summary, "GitHub request bodies": sent_to_github,
                  "comment": bot_comments(github)[0]["body"],
                  "remote history": git(world.remote, "log", "--all", "-p", "--format=%an %ae%n%B")}
        gpo = world.work / ".gpo"
        files = [p for p in gpo.rglob("*") if p.is_file()]
        assert any(p.name == "cache.sqlite" for p in files) and any(p.name == "trajectory.jsonl" for p in files)
        for path in files:
            places[str(path.relative_to(world.work))] = path.read_bytes().decode("utf-8", "replace")
        for where, text in places.items():
            for secret in secrets:
                assert secret not in text, f"a secret leaked into {where}"


# ---- the comment ------------------------------------------------------------------------------
HOSTILE = {
    "vars": {"ticket": "```suggestion\nrm -rf /\n```\n[click me](https://evil.example) @octocat"},
    "expected": "<!-- everything below is hidden",
    "base": "</pre><details><summary>nothing to see</summary>\n\n```suggestion\nDROP TABLE\n```",
    "head": "<img src=x onerror=alert(1)> **bold** _it_ <script>alert(2)</script> ![](https://evil.example/t.png)",
}


def test_flipped_case_contents_cannot_inject_into_the_comment():
    case = FlippedCase("c1", HOSTILE["vars"], HOSTILE["expected"], HOSTILE["base"], HOSTILE["head"], 1.0, 0.0)
    comparison = Comparison("triage", "regressed", 1.0, 0.0, -1.0, -1.0, -1.0, 0.001, "mcnemar", 1, flipped=(case,),
                            notes=("note with ```suggestion\nx\n``` and <!-- hide",))
    prompt = "Ticket: {{ ticket }}\n</pre>\n\n```suggestion\nrm -rf /\n```\n<!-- hide the rest\n"   # the PR's own prompt
    body = pr_comment(run_result([comparison], [change("triage", "Ticket: {{ ticket }}\n", prompt)]),
                      notes=["[a link](https://evil.example)"])
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(body)
    assert "language-" not in rendered and "<pre><code" not in rendered          # no code block was opened
    assert "<img" not in rendered and "<script" not in rendered and "<a " not in rendered
    assert "<strong>bold" not in rendered and "<em>it" not in rendered
    assert rendered.count("<!--") == 1 and MARKER in rendered                  # only our marker
    assert rendered.count("<details>") == 1 and rendered.count("</details>") == 1  # only our flipped section
    assert rendered.count("<pre>") == rendered.count("</pre>") == 5
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    for text in [HOSTILE["expected"], "```suggestion", "[click me](https://evil.example) @octocat",
                 "<img src=x onerror=alert(1)> **bold**", "</pre><details><summary>nothing to see</summary>"]:
        assert text in shown                                                     # shown as text, not hidden
