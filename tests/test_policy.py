"""The base's policy judges a pull request (issue 11, points 3-5): `gpo-action action` against the
GitHub stand-in, a bare remote and the scripted OpenAI-compatible servers, with canary keys in the
environment; locally `gpo-action run` applies the head's configuration with a warning.
Also renamed and removed suites, and the loop guard that never skips the verdict."""

from __future__ import annotations

import html
import json
import os
import subprocess
from pathlib import Path
from typing import Mapping

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from gpo_action.config import load_config
from gpo_action.errors import SuiteError
from gpo_action.llm.types import RateLimit
from gpo_action.delivery import BOT_EMAIL, BOT_NAME, COMMIT_TRAILER
from gpo_action.policy import confine_spec, guarded_param, resolve_policy
from gpo_action.report.markdown import MARKER
from gpo_action.suites import load_suite
from tests.support.github_server import GitHubServer
from tests.support.openai_server import ScriptedOpenAIServer
from tests.test_action import BAD, GOOD, KEY, PATH, REPO, TICKETS, github, reply  # noqa: F401 (github: a fixture)

CANARY = "sk-canary-policy-5d1f0c9e-OPENAI"          # a key no model here is configured with
FAQ = {f"question {i} about {c}": c for i, c in enumerate(["billing", "bug", "other"])}


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def model(name: str, url: str) -> str:
    return f'{{model: openai/{name}, api_base: "{url}/v1", api_key_env: GPO_TEST_KEY}}'


def config(url: str, *, task: str = "task", task_url: str | None = None, extra: str = "") -> str:
    return (f"models:\n  task: {model(task, task_url or url)}\n  optimizer: {model('optimizer', url)}\n"
            "suites: [evals/*.yaml]\nconcurrency: 8\ntimeout: 5\nretries: {max: 1, base: 0.01}\n"
            "optimize:\n  steps: 1\n  candidates: 1\n  budget: {max_calls: 200, max_usd: 1.0, max_seconds: 120}\n"
            "  deliver: [comment]\n" + extra)


def suite(prompt: str = PATH, cases: Mapping[str, str] = TICKETS, name: str | None = None) -> str:
    rows = "".join(f"  - vars: {{ticket: '{t}'}}\n    expected: {c}\n" for t, c in cases.items())
    head = f"name: {name}\n" if name else ""
    return f"{head}prompt: {prompt}\nassert:\n  - {{type: icontains, value: '{{{{ expected }}}}'}}\ncases:\n{rows}"


class Project:
    """`main` with the given files pushed to a bare `origin`, the branch `feature` checked out,
    pull request #2 on the GitHub stand-in; `run` is `gpo-action action` as the runner starts it."""

    def __init__(self, tmp: Path, github: GitHubServer, monkeypatch, files: Mapping[str, str]):
        self.tmp, self.github, self.monkeypatch = tmp, github, monkeypatch
        self.remote, self.work = tmp / "origin.git", tmp / "work"
        git(tmp, "init", "-q", "--bare", str(self.remote))
        self.work.mkdir()
        git(self.work, "-c", "init.defaultBranch=main", "init", "-q")
        git(self.work, "config", "user.email", "dev@example.com")
        git(self.work, "config", "user.name", "dev")
        git(self.work, "remote", "add", "origin", str(self.remote))
        self.write({".gitignore": ".gpo/\n", **files})
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", "base")
        git(self.work, "push", "-q", "origin", "main")
        self.base = git(self.work, "rev-parse", "HEAD")
        git(self.work, "checkout", "-qb", "feature")
        github.add_pull(2, {}, base_sha=self.base, head_ref="feature")

    def write(self, files: Mapping[str, str | None]) -> None:
        for path, text in files.items():
            target = self.work / path
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)

    def change(self, files: Mapping[str, str | None], message: str = "change", *,
               identity: tuple[str, str] | None = None, moves: Mapping[str, str] | None = None) -> str:
        """Commit (as `identity`, author and committer) and push; `moves` are `git mv`s done first."""
        for old, new in (moves or {}).items():
            git(self.work, "mv", old, new)
        self.write(files)
        git(self.work, "add", "-A")
        env = {}
        if identity is not None:
            name, email = identity
            env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                   "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        git(self.work, "commit", "-qm", message, env=env)
        git(self.work, "push", "-q", "origin", "HEAD:refs/heads/feature")
        sha = git(self.work, "rev-parse", "HEAD")
        self.github.push(2, {}, head_sha=sha)
        return sha

    def event(self, head_sha: str) -> Path:
        side = {"repo": {"full_name": REPO}}
        payload = {"action": "synchronize", "number": 2, "repository": {"full_name": REPO},
                   "pull_request": {"number": 2, "base": {"ref": "main", "sha": self.base, **side},
                                    "head": {"ref": "feature", "sha": head_sha, **side}}}
        path = self.tmp / f"event-{head_sha[:8]}.json"
        path.write_text(json.dumps(payload))
        return path

    def run(self, head_sha: str, *, mode: str = "check", inputs: Mapping[str, str] | None = None):
        """(result, outputs, summary) of `gpo-action action` on the pull request at `head_sha`."""
        env = {
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(self.event(head_sha)),
            "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": self.github.url, "GITHUB_OUTPUT": str(self.tmp / "output"),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"), "INPUT_GITHUB-TOKEN": self.github.token,
            "INPUT_MODE": mode, "INPUT_CONFIG": "gpo.yaml", "GPO_TEST_KEY": KEY, "OPENAI_API_KEY": CANARY,
            **{f"INPUT_{k.upper()}": v for k, v in (inputs or {}).items()},
        }
        for name in ("output", "summary.md"):
            (self.tmp / name).write_text("")
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        self.monkeypatch.chdir(self.work)
        result = CliRunner().invoke(main, ["action"], catch_exceptions=False)
        return result, (self.tmp / "output").read_text(), (self.tmp / "summary.md").read_text()

    def report(self) -> dict:
        return json.loads((self.work / ".gpo" / "report.json").read_text())

    def comment(self) -> str:
        [comment] = [c for c in self.github.issue_comments(2) if MARKER in c["body"]]
        return html.unescape(comment["body"])

    def assert_no_canary(self, result, outputs: str, summary: str, base: ScriptedOpenAIServer,
                         *foreign: ScriptedOpenAIServer) -> None:
        """Neither key in any output file, stream or request to the GitHub stand-in or to a `foreign`
        server; the base's server gets its own key (GPO_TEST_KEY) and never OPENAI_API_KEY's."""
        stream = "\n".join(line for line in result.output.splitlines() if not line.startswith("::add-mask::"))
        texts = [stream, outputs, summary, (self.work / ".gpo" / "report.json").read_text()]
        texts += [json.dumps([r.body, r.headers, r.path, r.query], default=str) for r in self.github.requests]
        for server in foreign:
            texts += [json.dumps(server.requests), json.dumps(server.authorizations)]
        for secret in (KEY, CANARY):
            assert not [t for t in texts if secret in t]
        assert not [a for a in base.authorizations if CANARY in a] and CANARY not in json.dumps(base.requests)


@pytest.fixture
def project(tmp_path, openai_server, github, monkeypatch):
    openai_server.set_reply(reply)
    return Project(tmp_path, github, monkeypatch, {
        "gpo.yaml": config(openai_server.url), PATH: GOOD, "evals/triage.yaml": suite()})


def optimizer_calls(server: ScriptedOpenAIServer) -> int:
    return sum(1 for body in server.requests if "Wrap the new prompt" in json.dumps(body))


# ---- point 3: the base decides the policy ---------------------------------------------------------

def test_a_loosened_gate_still_fails_by_the_bases_gate(project, openai_server):
    head = project.change({PATH: BAD, "gpo.yaml": config(openai_server.url, extra="gate: {max_drop: 1.0}\n")})
    result, outputs, summary = project.run(head)
    assert result.exit_code == 1, result.output
    assert "verdicts=triage=regressed" in outputs
    said = "this pull request changes the gate (max_drop 0.02 → 1); the base's gate was applied"
    assert said in project.comment() and "the base's policy was applied" in project.comment()
    [change] = project.report()["policy"]["changes"]
    assert project.report()["policy"]["source"] == "base"
    assert change["setting"] == "the gate" and change["applied"] is False and change["message"] == said
    assert f"::warning title=gpo-action policy::{said}" in result.output
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_trust_head_config_applies_the_heads_gate(project, openai_server):
    head = project.change({PATH: BAD, "gpo.yaml": config(openai_server.url, extra="gate: {max_drop: 1.0}\n")})
    result, outputs, summary = project.run(head, inputs={"trust-head-config": "true"})
    assert result.exit_code == 0, result.output
    assert "verdicts=triage=unchanged" in outputs
    assert project.report()["policy"]["source"] == "head"
    assert "this change sets the gate differently from the base (max_drop 0.02 → 1); the head's was applied" \
        in project.comment()
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_a_new_api_base_gets_no_request_and_no_key_in_actions(project, openai_server):
    with ScriptedOpenAIServer() as other:
        other.set_reply(lambda body, index: "billing")     # would pass every billing case
        head = project.change({PATH: BAD, "gpo.yaml": config(openai_server.url, task_url=other.url)})
        result, outputs, summary = project.run(head)
        assert result.exit_code == 1, result.output     # evaluated on the base's endpoint: still a regression
        assert other.total == 0 and other.authorizations == []
        assert openai_server.total == 60
        assert "this pull request changes the endpoint or key of models.task (api_base); the base's endpoint or " \
               "key of models.task was applied" in project.comment()
        project.assert_no_canary(result, outputs, summary, openai_server, other)

        # what trust-head-config opens: the head's endpoint gets the calls, and the key with them
        trusted, _, _ = project.run(head, inputs={"trust-head-config": "true"})
        assert trusted.exit_code in (0, 1), trusted.output
        assert other.total == 30 and set(other.authorizations) == {f"Bearer {KEY}"}


def test_a_suite_files_own_model_cannot_move_the_endpoint(project, openai_server):
    with ScriptedOpenAIServer() as other:
        own = f"model: {model('task', other.url)}\n"
        head = project.change({PATH: BAD, "evals/triage.yaml": own + suite()})
        result, outputs, summary = project.run(head)
        assert result.exit_code == 1, result.output
        assert other.total == 0 and openai_server.total == 60
        assert "this pull request changes the endpoint or key of suite triage's model (api_base)" in project.comment()
        project.assert_no_canary(result, outputs, summary, openai_server, other)


def test_the_floor_of_an_existing_suite_is_the_bases(tmp_path, openai_server, github, monkeypatch):
    openai_server.set_reply(reply)
    loose = "gate: {max_drop: 1.0}\n"                    # only the floor can fail this suite
    project = Project(tmp_path, github, monkeypatch, {"gpo.yaml": config(openai_server.url, extra=loose), PATH: GOOD,
                                                      "evals/triage.yaml": "min_score: 0.9\n" + suite()})
    head = project.change({PATH: BAD, "evals/triage.yaml": "min_score: 0.1\n" + suite()})
    result, outputs, _ = project.run(head)
    assert result.exit_code == 1, result.output
    assert "verdicts=triage=below-min" in outputs and project.report()["comparisons"][0]["floor"] == 0.9
    assert "this pull request changes the floor of suite triage (min_score 0.9 → 0.1)" in project.comment()


def test_a_policy_change_alone_is_said_in_a_comment(project, openai_server):
    richer = config(openai_server.url).replace("max_usd: 1.0", "max_usd: 500")
    head = project.change({"gpo.yaml": richer})
    result, outputs, _ = project.run(head)
    assert result.exit_code == 0, result.output
    assert openai_server.total == 0
    comment = project.comment()                 # created although there is no verdict to give
    assert "No prompt, suite or model change to evaluate." in comment
    assert ("this pull request changes the fix settings (optimize) (budget.max_usd 1 → 500); the base's fix "
            "settings (optimize) was applied") in comment


def test_trust_head_config_takes_true_or_false_only():
    from gpo_action.action_inputs import options_from_inputs
    from gpo_action.errors import InputError

    assert options_from_inputs({"INPUT_TRUST-HEAD-CONFIG": "True"}).trust_head_config is True
    assert options_from_inputs({}).trust_head_config is False
    with pytest.raises(InputError, match="trust-head-config must be true or false"):
        options_from_inputs({"INPUT_TRUST-HEAD-CONFIG": "yes"})


def test_a_new_cache_path_is_not_written(project, openai_server):
    head = project.change({PATH: BAD, "gpo.yaml": config(openai_server.url, extra="cache: {path: elsewhere/c.sqlite}\n")})
    result, outputs, summary = project.run(head)
    assert result.exit_code == 1, result.output
    assert not (project.work / "elsewhere").exists() and (project.work / ".gpo" / "cache.sqlite").is_file()
    assert "this pull request changes the cache (path .gpo/cache.sqlite → elsewhere/c.sqlite)" in project.comment()
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_a_model_name_change_on_the_same_endpoint_is_evaluated_with_the_new_name(project, openai_server):
    head = project.change({"gpo.yaml": config(openai_server.url, task="task-v2")})
    result, outputs, summary = project.run(head)
    assert result.exit_code == 0, result.output
    assert {body["model"] for body in openai_server.requests} == {"task", "task-v2"}
    report = project.report()
    assert report["changes"][0]["reasons"] == ["model changed"] and report["policy"]["changes"] == []
    assert "verdicts=triage=unchanged" in outputs
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_locally_the_head_config_applies_with_a_warning(project, openai_server, monkeypatch):
    project.change({PATH: BAD, "gpo.yaml": config(openai_server.url, extra="gate: {max_drop: 1.0}\n")})
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(project.work)
    result = CliRunner().invoke(main, ["run", "--base", "main", "--json", "out.json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output                     # the head's gate: a fall of 0.67 is allowed
    assert ("warning: this change sets the gate differently from the base (max_drop 0.02 → 1); the head's was "
            "applied") in result.stderr
    policy = json.loads((project.work / "out.json").read_text())["policy"]
    assert policy["source"] == "head" and [c["applied"] for c in policy["changes"]] == [True]


def test_the_base_decides_each_part_of_the_policy(tmp_path):
    """Every policy section and guarded model field comes from the base; the rest from the head."""
    def load(name: str, text: str):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gpo.yaml").write_text(text)
        return load_config(tmp_path / name / "gpo.yaml", env={"K": "base-key", "H": "head-key"})

    base = load("base", "models:\n  task: {model: openai/a, api_base: 'http://127.0.0.1:1/v1', api_key_env: K}\n"
                        "  judge: {model: openai/j, api_key_env: K}\n  embedding: {model: openai/e, api_key_env: K}\n")
    head = load("head", "models:\n  task: {model: openai/b, temperature: 0.5, api_base: 'http://127.0.0.1:2/v1', "
                        "api_key_env: H, extra_headers: {X: y}, timeout_s: 3}\n"
                        "  judge: {model: anthropic/j, api_key_env: K}\n"
                        "  optimizer: {model: openai/o, api_base: 'http://127.0.0.1:3'}\n"
                        "gate: {alpha: 0.5, allow_removed: true}\nmax_error_rate: 1.0\n"
                        "optimize: {when: always, budget: {max_usd: 50}}\ncache: {enabled: false}\nconcurrency: 3\n")
    policy = resolve_policy(head, base, enforce=True, why="test")
    cfg = policy.config
    assert cfg.gate == base.gate and cfg.optimize == base.optimize and cfg.cache == base.cache
    assert cfg.max_error_rate == base.max_error_rate and cfg.concurrency == 3      # not policy: the head's
    task = cfg.model("task")                 # the head's name and sampling on the base's endpoint and key
    assert task.name == "openai/b" and task.params["temperature"] == 0.5 and task.params["timeout_s"] == 3
    assert task.params["api_base"] == "http://127.0.0.1:1/v1" and task.params["api_key"] == "base-key"
    assert "extra_headers" not in task.params
    assert cfg.model("judge") == base.model("judge")       # a new provider: the base's model
    assert cfg.model("optimizer") is None                  # the base names none: the default (the task model)
    assert cfg.model("embedding") == base.model("embedding")   # dropped by the head: the base's
    settings = [c.setting for c in policy.changes]
    assert settings == ["the gate", "the error tolerance (max_error_rate)", "the fix settings (optimize)",
                        "the cache", "the endpoint or key of models.task", "the endpoint or key of models.optimizer",
                        "the endpoint or key of models.judge", "the endpoint or key of models.embedding"]
    assert policy.changes[4].detail == "api_base, api_key_env, extra_headers"      # names only, never values
    assert "provider openai → anthropic" in policy.changes[6].detail
    assert not any("key" in c.detail and "base-key" in c.detail for c in policy.changes)
    local = resolve_policy(head, base, enforce=False, why="test")
    assert local.config is head and all(c.applied for c in local.changes) and len(local.changes) == 8


def test_without_a_base_config_the_defaults_are_the_policy(tmp_path):
    (tmp_path / "gpo.yaml").write_text(
        "models:\n  task: {model: openai/t, api_key_env: OPENAI_API_KEY, temperature: 0}\n"
        "  judge: {model: openai/j, api_base: 'http://127.0.0.1:9/v1'}\n"
        "  optimizer: {model: anthropic/o, api_key_env: MY_KEY}\ngate: {max_drop: 0.5}\n")
    head = load_config(tmp_path / "gpo.yaml", env={})
    policy = resolve_policy(head, None, enforce=True, why="test")
    assert policy.config.gate.max_drop == 0.02                   # Config's default gate
    assert policy.config.model("task").name == "openai/t"        # the provider's own key variable: no change
    assert policy.config.model("judge") is None and policy.config.model("optimizer") is None
    assert resolve_policy(head, None, enforce=False, why="local").changes == ()    # locally: no warnings


@pytest.mark.parametrize("name, value, guarded", [
    ("api_base", "http://x", True), ("base_url", None, True), ("api_key", "k", True), ("aws_region_name", "eu", True),
    ("vertex_credentials", "/c.json", True), ("extra_headers", {"A": "b"}, True), ("mock_response", "ok", True),
    ("input_cost_per_token", 0, True), ("custom_llm_provider", "x", True), ("organizationId", "o", True),
    ("fallbacks", ["m"], True), ("anything", "see https://example.invalid", True), ("nested", {"u": ["ws://h"]}, True),
    ("temperature", 0.2, False), ("max_completion_tokens", 5, False), ("top_k", 3, False), ("stop", ["\n"], False),
])
def test_which_model_params_are_guarded(name, value, guarded):
    assert guarded_param(name, value) is guarded


def test_a_head_model_is_confined_by_field(tmp_path):
    (tmp_path / "gpo.yaml").write_text("models:\n  task: {model: openai/a, api_key_env: K, seed: 1}\n"
                                       "  judge: {model: openai/b, api_key_env: K, api_base: 'http://h/v1'}\n")
    cfg = load_config(tmp_path / "gpo.yaml", env={"K": "v"})
    same, detail = confine_spec(cfg.models.task.model_copy(update={"model": "openai/a2", "seed": 2}), cfg.models.task)
    assert (same.model, same.seed, detail) == ("openai/a2", 2, "")                  # a model upgrade
    merged, detail = confine_spec(cfg.models.judge, cfg.models.task)
    assert (merged.model, merged.api_base, detail) == ("openai/b", None, "api_base")
    assert merged.to_model_config().params["api_key"] == "v"


# ---- point 4: renamed and removed suites --------------------------------------------------------

def test_a_renamed_suite_file_is_paired_with_its_base_and_its_regression_stands(project):
    head = project.change({"evals/tickets.yaml": suite(name="tickets", prompt="prompts/tickets.j2"),
                           "prompts/tickets.j2": BAD, PATH: None}, moves={"evals/triage.yaml": "evals/tickets.yaml"})
    result, outputs, _ = project.run(head)
    assert result.exit_code == 1, result.output
    assert "verdicts=tickets=regressed" in outputs and "removed=false" in outputs
    report = project.report()
    [change] = report["changes"]
    assert change["renamed_from"] == "triage" and change["reasons"][0] == "renamed"
    assert report["comparisons"][0]["base_score"] == 1.0
    assert "tickets (renamed from triage): regressed" in project.comment()


def test_a_suite_renamed_in_place_is_paired_by_its_prompt(project):
    head = project.change({"evals/triage.yaml": suite(name="support"), PATH: BAD})
    result, outputs, _ = project.run(head)
    assert result.exit_code == 1, result.output
    assert "verdicts=support=regressed" in outputs
    assert project.report()["changes"][0]["renamed_from"] == "triage"


@pytest.fixture
def two_suites(tmp_path, openai_server, github, monkeypatch):
    def make(base_extra: str = "") -> Project:
        openai_server.set_reply(reply)
        return Project(tmp_path, github, monkeypatch, {
            "gpo.yaml": config(openai_server.url, extra=base_extra), PATH: GOOD, "evals/triage.yaml": suite(),
            "prompts/faq.j2": GOOD, "evals/faq.yaml": suite("prompts/faq.j2", FAQ)})
    return make


def test_a_deleted_suite_is_removed_and_fails_the_check(two_suites, openai_server):
    project = two_suites()
    head = project.change({"evals/faq.yaml": None, "prompts/faq.j2": None,
                           "gpo.yaml": config(openai_server.url, extra="gate: {allow_removed: true}\n")})
    result, outputs, summary = project.run(head)
    assert result.exit_code == 1, result.output              # the head's allow_removed is not applied
    assert "verdicts=faq=removed" in outputs and "removed=true" in outputs and "exit-code=1" in outputs
    assert openai_server.total == 0                           # nothing to evaluate for a removal
    comment = project.comment()
    assert "| faq | 🗑️ removed |" in comment and "### 🗑️ faq: removed" in comment
    assert "the gate (allow_removed False → True); the base's gate was applied" in comment
    assert "::error title=gpo-action::suite faq removed" in result.output
    assert project.report()["removed"] == ["faq"] and "│ faq" in result.output and "removed" in result.output
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_a_base_gate_that_allows_removals_passes(two_suites):
    project = two_suites("gate: {allow_removed: true}\n")
    head = project.change({"evals/faq.yaml": None})
    result, outputs, _ = project.run(head)
    assert result.exit_code == 0, result.output
    assert "verdicts=faq=removed" in outputs and "| faq | 🗑️ removed (allowed) |" in project.comment()
    assert project.report()["comparisons"][0]["failed"] is False


# ---- point 5: the loop guard never skips the verdict ----------------------------------------------

def test_a_human_commit_with_the_trailer_gets_the_full_check(project, openai_server):
    head = project.change({PATH: BAD}, f"shorter prompt\n\n{COMMIT_TRAILER}\n")
    result, outputs, summary = project.run(head, mode="fix")
    assert result.exit_code == 1, result.output
    assert "loop guard" not in result.output and "proposed=true" in outputs
    assert optimizer_calls(openai_server) > 0
    assert "triage: regressed" in project.comment()
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_the_tools_own_commit_is_compared_and_its_regression_stands(project, openai_server):
    head = project.change({PATH: BAD}, f"[gpo-action] Improve {PATH}\n\n{COMMIT_TRAILER}\n", identity=(BOT_NAME, BOT_EMAIL))
    result, outputs, summary = project.run(head, mode="fix")
    assert result.exit_code == 1, result.output                       # the verdict stands
    assert "verdicts=triage=regressed" in outputs and "proposed=false" in outputs
    assert optimizer_calls(openai_server) == 0 and openai_server.total == 60
    assert "loop guard" in result.output and "loop guard" in project.comment()
    project.assert_no_canary(result, outputs, summary, openai_server)


@pytest.mark.parametrize("trust, alpha", [("false", 0.05), ("true", 0.9)])
def test_the_fixs_holdout_test_is_held_to_the_alpha_of_the_policy_applied(project, openai_server, trust, alpha):
    head = project.change({PATH: BAD, "gpo.yaml": config(openai_server.url, extra="gate: {alpha: 0.9}\n")})
    result, outputs, summary = project.run(head, mode="fix", inputs={"trust-head-config": trust})
    assert "verdicts=triage=regressed" in outputs, result.output
    [fix] = project.report()["fixes"]["fixes"]
    assert fix["result"] is not None and fix["result"]["alpha"] == alpha   # the base's gate unless trusted
    project.assert_no_canary(result, outputs, summary, openai_server)


def test_the_base_decides_the_rate_limits_and_a_suite_cannot_set_one(tmp_path):
    """A head that sets `rpm: 1` would stretch a maintainer's run past the job's time limit."""
    def load(name: str, text: str):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gpo.yaml").write_text(text)
        return load_config(tmp_path / name / "gpo.yaml", env={})

    base = load("base", "models:\n  task: {model: openai/a, rate_limit: {rpm: 600}}\n")
    head = load("head", "models:\n  task: {model: openai/a, rate_limit: {rpm: 1}}\n"
                        "  judge: {model: openai/j, rate_limit: {tpm: 5}}\n")
    policy = resolve_policy(head, base, enforce=True, why="test")
    assert policy.config.rate_limits() == base.rate_limits() == {"openai/a": RateLimit(rpm=600)}
    change, = [c for c in policy.changes if "rate_limit" in c.setting]
    assert change.detail == "openai/a rpm 600 → openai/a rpm 1; openai/j tpm 5" and not change.applied
    local = resolve_policy(head, base, enforce=False, why="test")
    assert local.config.rate_limits() == head.rate_limits()

    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.j2").write_text("Say {{ x }}")
    (tmp_path / "s.yaml").write_text("prompt: prompts/p.j2\nmodel: {model: openai/a, rate_limit: {rpm: 1}}\n"
                                     "cases:\n  - vars: {x: 1}\n")
    with pytest.raises(SuiteError, match=r"s\.yaml:2: model: rate_limit is not read from a suite"):
        load_suite(tmp_path / "s.yaml", tmp_path)
