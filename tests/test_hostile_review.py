"""A hostile reviewer's pull requests against `gpo-action action` (issue 11): the ways past the ten
promises that the other files do not try. The GitHub stand-in, the scripted OpenAI-compatible
server, a real repository with a bare `origin`, canary keys in the environment (`Project` of
test_policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_action import BAD, GOOD, KEY, PATH, reply, github  # noqa: F401 (github: a fixture)
from tests.test_policy import CANARY, Project, config, git, suite

OUT_CACHE = "cache: {path: cache/responses.sqlite}\n"   # a base whose cache is not under .gpo/


def project_with(tmp_path: Path, openai_server, github, monkeypatch, extra: str = "") -> Project:
    openai_server.set_reply(reply)
    return Project(tmp_path, github, monkeypatch, {
        "gpo.yaml": config(openai_server.url, extra=extra), PATH: GOOD, "evals/triage.yaml": suite()})


def test_a_committed_gpo_symlink_does_not_move_the_json_report_out_of_the_tree(tmp_path, openai_server, github,
                                                                                monkeypatch):
    """The Action writes .gpo/report.json; a pull request that commits `.gpo` as a symlink to a
    directory outside must not make it write there (the cache path, checked already, is elsewhere)."""
    project = project_with(tmp_path, openai_server, github, monkeypatch, extra=OUT_CACHE)
    outside = tmp_path / "outside"
    outside.mkdir()
    (project.work / ".gpo").symlink_to(outside)
    git(project.work, "add", "-f", ".gpo")
    head = project.change({PATH: BAD})
    result, outputs, summary = project.run(head)
    assert result.exit_code == 2, result.output
    assert ("the JSON report: '.gpo/report.json' is a symlink that leads outside the repository"
            in result.output)
    assert list(outside.iterdir()) == []
    assert openai_server.total == 0                       # refused before anything is evaluated or paid
    for text in (result.output, outputs, summary):
        assert KEY not in text.replace(f"::add-mask::{KEY}", "") and CANARY not in text.replace(
            f"::add-mask::{CANARY}", "")


# ---- point 7: bytes are bounded as str is -------------------------------------------------------

# `str.encode` and a YAML `!!binary` case var give a template bytes; unbounded, each of these asks
# for 100 GB or more in one C call, between two CPU checks: a MemoryError that stops the run, or,
# for a size the machine can just give, the OOM killer. (Sizes far past any RAM: unbounded, malloc
# fails at once rather than touching the memory.)
BYTES_BOMBS = [
    "{{ word.encode() * 10 ** 13 }}",
    "{{ blob * 10 ** 13 }}",
    "{{ 10 ** 13 * blob }}",
    "{{ blob.center(10 ** 13) }}",
    "{{ blob.ljust(10 ** 13) }}",
    "{{ blob.zfill(10 ** 13) }}",
    "{{ (blob * 100000).replace(blob, blob * 10 ** 6) }}",
    "{{ (blob * 250000).join([blob] * 100000) }}",
    "{{ ((blob + b) * 100000).expandtabs(10 ** 6) }}",
    "{% set a = blob * 250000 %}{{ (a + a)|length }}",
    "{{ word.encode('utf-8') % () }}{{ ('%' ~ (10 ** 13) ~ 's').encode() % blob }}",
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("template", BYTES_BOMBS)
def test_bytes_in_a_template_are_bounded_before_they_are_built(template):
    from gpo_action.errors import TemplateError
    from gpo_action.templates import render_text

    with pytest.raises(TemplateError) as caught:
        render_text(template.replace("(blob + b)", "(blob + tab)"), {"word": "abcd", "blob": b"abcd", "tab": b"\t"},
                    "prompts/hostile.j2")
    assert "render limit" in caught.value.message and "MemoryError" not in caught.value.message
    assert "an output expression would be longer" not in caught.value.message    # refused before, not after


def test_ordinary_bytes_still_render():
    from gpo_action.templates import render_text

    assert render_text("{{ blob * 2 }} {{ blob.center(6) }} {{ blob.replace(b'a', b'A') }} {{ b'-'.join([blob, blob]) }}"
                       .replace("b'a'", "a").replace("b'A'", "A").replace("b'-'", "dash"),
                       {"blob": b"ab", "a": b"a", "A": b"A", "dash": b"-"}) == \
        "b'abab' b'  ab  ' b'Ab' b'ab-ab'"


# ---- point 3: a committed .env is not an endpoint ---------------------------------------------------

def test_a_committed_dotenv_does_not_move_the_endpoint_litellm_reads_from_the_environment(tmp_path, openai_server,
                                                                                           github, monkeypatch):
    """litellm runs `dotenv.load_dotenv()` on import (LITELLM_MODE defaults to DEV), looking for a
    `.env` upwards from its own package: in a workflow whose virtualenv lies in the checkout, the
    pull request's `.env` is found. OPENAI_BASE_URL there outranks the workflow's OPENAI_API_BASE,
    and the key litellm reads from OPENAI_API_KEY goes with it: the README's own setup (no
    api_base, no api_key_env). Modelled by importing litellm through a folder of the checkout
    (a symlink to the installed package); run as a subprocess, so litellm is imported afresh."""
    import json
    import os
    import subprocess
    import sys

    from importlib.util import find_spec

    from tests.support.openai_server import ScriptedOpenAIServer

    openai_server.set_reply(reply)
    plain = config(openai_server.url).replace(f'api_base: "{openai_server.url}/v1", api_key_env: GPO_TEST_KEY', "")
    project = Project(tmp_path, github, monkeypatch, {"gpo.yaml": plain, PATH: GOOD, "evals/triage.yaml": suite()})
    site = project.work / ".venv-site"                      # where litellm is imported from: inside the checkout
    site.mkdir()
    (site / "litellm").symlink_to(Path(find_spec("litellm").origin).parent)
    with ScriptedOpenAIServer() as evil:
        evil.set_reply(lambda body, index: "billing")
        head = project.change({PATH: BAD, ".env": f"OPENAI_BASE_URL={evil.url}/v1\n"})
        (tmp_path / "output").write_text("")
        env = {key: value for key, value in os.environ.items() if not key.startswith(("LITELLM_", "OPENAI_"))}
        env.update({
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(project.event(head)), "GITHUB_REPOSITORY": "Codertocat/Hello-World",
            "GITHUB_API_URL": github.url, "GITHUB_OUTPUT": str(tmp_path / "output"),
            "INPUT_GITHUB-TOKEN": github.token, "INPUT_MODE": "check", "INPUT_CONFIG": "gpo.yaml",
            "OPENAI_API_KEY": CANARY, "OPENAI_API_BASE": f"{openai_server.url}/v1",
            "PYTHONPATH": os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        })
        result = subprocess.run([sys.executable, "-m", "gpo_action", "action"], cwd=project.work, env=env,
                                capture_output=True, text=True, timeout=300)
        assert evil.total == 0 and evil.authorizations == [], result.stderr
        assert CANARY not in json.dumps(evil.requests)
        assert result.returncode == 1, result.stdout + result.stderr     # judged on the workflow's endpoint
        assert openai_server.total == 60
        assert "verdicts=triage=regressed" in (tmp_path / "output").read_text()


# ---- the worker processes import no code from the checkout ----------------------------------------

def test_a_committed_python_package_is_not_imported_by_the_worker_processes(tmp_path, openai_server, github,
                                                                              monkeypatch):
    """A batch of 100 or more uncached calls runs in worker processes (`python -m
    gpo_action.llm.worker_main`, started in the checkout); `-m` puts the current directory first on
    sys.path, so a pull request that commits a `gpo_action/` package (or `litellm/`, `yaml.py`...)
    ran its own code there, with every key in the environment."""
    from tests.test_action import TICKETS

    monkeypatch.setenv("GPO_WORKERS", "2")                  # as on a 2-core runner
    many = {**TICKETS, **{f"filler ticket {i}": "other" for i in range(90)}}       # 120 cases
    openai_server.set_reply(reply)
    project = Project(tmp_path, github, monkeypatch, {
        "gpo.yaml": config(openai_server.url), PATH: GOOD, "evals/triage.yaml": suite(cases=many)})
    marker = tmp_path / "pwned"
    payload = f"import os\nopen({str(marker)!r}, 'w').write(os.environ.get('OPENAI_API_KEY', ''))\n"
    head = project.change({PATH: BAD, "gpo_action/__init__.py": payload, "gpo_action/llm/__init__.py": payload,
                           "gpo_action/llm/worker_main.py": payload})
    result, outputs, summary = project.run(head)
    assert not marker.exists(), marker.read_text()
    assert result.exit_code == 1, result.output
    assert "verdicts=triage=regressed" in outputs


# ---- point 3: the pull request does not supply its own answers ------------------------------------

def test_a_response_cache_committed_in_the_pull_request_does_not_answer_for_the_head(tmp_path, openai_server,
                                                                                      github, monkeypatch):
    """The cache is keyed by what a request asks (model, messages, params: all public in the base's
    gpo.yaml), so a pull request can commit a `.gpo/cache.sqlite` whose rows answer its regressed
    prompt perfectly; served from it, the head never reaches the model and the regression is
    waved through (for a fork without keys, the cache is all there is)."""
    from click.testing import CliRunner

    from gpo_action.cli import main
    from tests.test_action import answer

    project = project_with(tmp_path, openai_server, github, monkeypatch)
    project.write({PATH: BAD})
    openai_server.set_reply(lambda body, index: answer(body["messages"][-1]["content"], True))   # always right
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(project.work)
    assert CliRunner().invoke(main, ["eval"], catch_exceptions=False).exit_code == 0     # the forged answers
    forged = sorted(p.name for p in (project.work / ".gpo").iterdir() if p.name.startswith("cache.sqlite"))
    git(project.work, "add", "-f", *(f".gpo/{name}" for name in forged))
    head = project.change({}, "a better prompt, with its cache")
    openai_server.set_reply(reply)
    before = openai_server.total
    result, outputs, summary = project.run(head)
    assert result.exit_code == 1, result.output
    assert "verdicts=triage=regressed" in outputs
    assert openai_server.total - before == 60                   # both sides asked the model
    said = f"this pull request commits the response cache ({', '.join(f'.gpo/{n}' for n in forged)}): it was not read"
    assert said in project.comment()                            # and the comment says why


# ---- names are text, not rich markup ------------------------------------------------------------

def test_a_suite_name_that_reads_as_rich_markup_is_printed_as_written(tmp_path, openai_server, github, monkeypatch):
    """The terminal table took suite names as rich markup: `[wip] triage` printed as " triage",
    and `[/]` raised MarkupError after the comment and outputs were written, so the run exited 4
    ("gpo-action failed, not your change") for what was a regression."""
    name = "[/] triage [wip]"
    openai_server.set_reply(reply)
    project = Project(tmp_path, github, monkeypatch, {
        "gpo.yaml": config(openai_server.url), PATH: GOOD, "evals/triage.yaml": suite(name=f"'{name}'")})
    head = project.change({PATH: BAD})
    result, outputs, _ = project.run(head)
    assert result.exit_code == 1, result.output
    assert f"verdicts={name}=regressed" in outputs
    assert "[/] triage" in result.output and "[wip]" in result.output
