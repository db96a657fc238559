"""The Action end to end: `gpo-action action` driven by real event payloads (adapted to a real git
repository with a bare remote), the GitHub API stand-in and the scripted OpenAI-compatible server."""

from __future__ import annotations

import html
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gpo_action.action_inputs import INPUTS, OUTPUTS, options_from_inputs
from gpo_action.cli import main
from gpo_action.errors import InputError
from gpo_action.report.markdown import MARKER
from tests.support.github_server import GitHubServer
from tests.support.junit import validated
from tests.test_optimize_world import current_prompt

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT / "tests" / "data" / "github"   # GitHub's example payloads, vendored (see its README)
REPO = "Codertocat/Hello-World"          # the repository of the real payloads
PATH = "prompts/triage.j2"
CATEGORIES = ["billing", "bug", "other"]
TICKETS = {f"ticket number {i} about {c}": c for i, c in enumerate(CATEGORIES * 10)}  # 30 cases
LABELS = "billing, bug or other"
GOOD = f"Classify the support ticket as {LABELS}.\nTicket: {{{{ ticket }}}}\nReply with the category only.\n"
BAD = "Classify the support ticket.\nTicket: {{ ticket }}\nReply briefly.\n"
KEY = "sk-test-0123456789-SECRET-KEY"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def reply(body: dict, index: int) -> str:
    """Task model: right when the prompt names the labels, else "other". Optimizer (a meta-prompt):
    restores the labels on the first line of the current prompt."""
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    if "Wrap the new prompt" in text:
        current = current_prompt(text)
        first, _, rest = current.partition("\n")
        return f"<START>\nClassify the support ticket as {LABELS}.\n{rest}\n<END>"
    return answer(text, LABELS in text)


def answer(text: str, right: bool) -> str:
    ticket = text.split("Ticket: ", 1)[1].split("\n", 1)[0]
    return TICKETS.get(ticket, "other") if right else "other"


class World:
    """A work clone with a bare `origin`, the PR branch `feature` checked out, and an Actions env."""

    def __init__(self, tmp: Path, openai_url: str, github: GitHubServer, monkeypatch, prompt: str = GOOD,
                 head: str = BAD, key_env: str = "GPO_TEST_KEY", localize: bool = True):
        self.tmp, self.github, self.monkeypatch, self.key_env = tmp, github, monkeypatch, key_env
        self.remote = tmp / "origin.git"
        git(tmp, "init", "-q", "--bare", str(self.remote))
        self.work = tmp / "work"
        self.work.mkdir()
        w = self.work
        git(w, "-c", "init.defaultBranch=main", "init", "-q")
        git(w, "config", "user.email", "dev@example.com")
        git(w, "config", "user.name", "dev")
        git(w, "remote", "add", "origin", str(self.remote))
        (w / "prompts").mkdir()
        (w / "evals").mkdir()
        (w / ".gitignore").write_text(".gpo/\n")
        model = f'{{model: openai/%s, api_base: "{openai_url}/v1", api_key_env: {key_env}}}'
        (w / "gpo.yaml").write_text(
            f"models:\n  task: {model % 'task'}\n  optimizer: {model % 'optimizer'}\n"
            "suites: [evals/*.yaml]\nconcurrency: 8\ntimeout: 5\nretries: {max: 1, base: 0.01}\n"
            "optimize:\n  steps: 1\n  candidates: 1\n  budget: {max_calls: 200, max_usd: 1.0, max_seconds: 120}\n"
            f"  deliver: [comment, suggestion]\n  localize: {str(localize).lower()}\n")
        (w / PATH).write_text(prompt)
        cases = "".join(f"  - vars: {{ticket: '{t}'}}\n    expected: {c}\n" for t, c in TICKETS.items())
        (w / "evals" / "triage.yaml").write_text(
            "prompt: prompts/triage.j2\nassert:\n  - {type: icontains, value: '{{ expected }}'}\ncases:\n" + cases)
        git(w, "add", "-A")
        git(w, "commit", "-qm", "base")
        git(w, "push", "-q", "origin", "main")
        self.base = git(w, "rev-parse", "HEAD")
        git(w, "checkout", "-qb", "feature")
        self.head = self.commit(head, "shorter prompt")
        github.add_pull(2, {PATH: (prompt, head)}, head_sha=self.head, base_sha=self.base, head_ref="feature")
        self.prompt, self.head_text = prompt, head

    def commit(self, text: str, message: str) -> str:
        (self.work / PATH).write_text(text)
        git(self.work, "commit", "-qam", message)
        git(self.work, "push", "-q", "origin", "HEAD:refs/heads/feature")
        return git(self.work, "rev-parse", "HEAD")

    def event(self, head_sha: str, *, fork: bool = False, name: str = "pull_request.synchronize.payload.json") -> Path:
        payload = json.loads((PAYLOADS / name).read_text())
        pr = payload["pull_request"]
        pr["base"].update(sha=self.base, ref="main")
        pr["head"].update(sha=head_sha, ref="feature")
        if fork:
            pr["head"]["repo"] = {**pr["head"]["repo"], "full_name": "forker/Hello-World"}
        path = self.tmp / f"event-{head_sha[:8]}.json"
        path.write_text(json.dumps(payload))
        return path

    def run(self, head_sha: str, *, deliver: str = "", fork: bool = False, key: str | None = KEY, mode: str = "fix"):
        """`gpo-action action` as the runner starts it; (result, outputs, summary)."""
        env = {
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(self.event(head_sha, fork=fork)), "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": self.github.url, "GITHUB_OUTPUT": str(self.tmp / "output"),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"), "INPUT_GITHUB-TOKEN": self.github.token,
            "INPUT_MODE": mode, "INPUT_DELIVER": deliver, "INPUT_CONFIG": "gpo.yaml",
        }
        result = self.invoke(env, key)
        return result, (self.tmp / "output").read_text(), (self.tmp / "summary.md").read_text()

    def invoke(self, env: dict[str, str], key: str | None):
        """`gpo-action action` in the work clone with `env` set (the output and summary files
        emptied) and the model's key set, or unset for None."""
        for name in ("output", "summary.md"):
            (self.tmp / name).write_text("")
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        if key is None:
            self.monkeypatch.delenv(self.key_env, raising=False)
        else:
            self.monkeypatch.setenv(self.key_env, key)
        self.monkeypatch.chdir(self.work)
        return CliRunner().invoke(main, ["action"], catch_exceptions=False)

    def remote_log(self, branch: str = "feature") -> list[str]:
        return git(self.remote, "log", "--format=%H", branch).splitlines()


@pytest.fixture
def github():
    with GitHubServer(repository=REPO) as server:
        yield server


@pytest.fixture
def world(tmp_path, openai_server, github, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai_server.set_reply(reply)
    return World(tmp_path, openai_server.url, github, monkeypatch)


def bot_comments(github: GitHubServer) -> list[dict]:
    return [c for c in github.issue_comments(2) if MARKER in c["body"]]


def shown(body: str) -> str:
    """The comment's text as GitHub shows it (character references decoded)."""
    return html.unescape(body)


def test_first_run_comments_and_suggests_then_a_push_updates_the_same_comment(world, github):
    result, outputs, summary = world.run(world.head)
    assert result.exit_code == 1, result.output                     # the regression still fails the check
    assert "regressed=true" in outputs and "proposed=true" in outputs and "report-path=.gpo/report.json" in outputs
    assert "junit-path=.gpo/junit.xml" in outputs and "JUnit XML report: .gpo/junit.xml" in result.stderr
    junit = validated((world.work / ".gpo/junit.xml").read_text(encoding="utf-8"))
    assert junit.find("testsuite/testcase[@name='verdict']/failure").get("message").startswith("regressed")
    assert "html-path=.gpo/report.html" in outputs and "HTML report: .gpo/report.html" in result.stderr
    page = (world.work / ".gpo/report.html").read_text(encoding="utf-8")
    assert page.count('<tr id="s0-c') == len(TICKETS) and '<svg class="trajectory"' in page   # the fix ran
    [comment] = bot_comments(github)
    body = comment["body"]
    assert "| triage | 🔴 regressed | 100.0 | 33.3 |" in body
    assert "<del>ticket.</del><ins>ticket as billing, bug or other.</ins>" in body          # the fix's word diff
    assert "<del>ticket as billing, bug or other.</del><ins>ticket.</ins>" in body          # the PR's own change
    assert "```mermaid\nxychart-beta" in body and "holdout 33.3 → 100.0" in body
    assert "Fix budget for this pull request: 200 calls, $1.00, 120 s" in body and "Suggested in" in body
    [review] = github.reviews(2)
    assert review["commit_id"] == world.head and review["state"] == "COMMENTED"
    [suggestion] = github.review_comments(2)
    assert (suggestion["path"], suggestion["line"], suggestion["start_line"]) == (PATH, 1, None)
    assert suggestion["body"] == f"```suggestion\nClassify the support ticket as {LABELS}.\n```"
    assert "regressed" in summary and 422 not in [r.status for r in github.requests]
    report = json.loads((world.work / ".gpo/report.json").read_text())
    assert report["fixes"]["fixes"][0]["result"]["proposed"] and report["delivery"]["review"]["status"] == "posted"

    # a new push: the same comment is updated in place, and the same fix is not suggested again
    head2 = world.commit(BAD.replace("Reply briefly.", "Reply briefly, please."), "reword")
    github.push(2, {PATH: (GOOD, BAD.replace("Reply briefly.", "Reply briefly, please."))}, head_sha=head2)
    again, _, _ = world.run(head2)
    assert again.exit_code == 1, again.output
    [updated] = bot_comments(github)
    assert updated["id"] == comment["id"] and updated["body"] != body
    assert "Already suggested" in updated["body"]
    assert len(github.reviews(2)) == 1
    assert len(github.requests_to("POST", r"/issues/\d+/comments$")) == 1
    assert len(github.requests_to("PATCH", r"/issues/comments/")) == 1


def test_a_change_outside_the_pull_requests_diff_goes_into_the_comment_as_a_diff(tmp_path, openai_server, github,
                                                                                monkeypatch):
    filler = "".join(f"Context line {i}.\n" for i in range(2, 11))
    good = f"Classify the support ticket as {LABELS}.\n{filler}Ticket: {{{{ ticket }}}}\nReply with the category only.\n"
    bad = good.replace("Reply with the category only.", "Reply briefly.")     # the PR changes line 12 only

    def fixer(body: dict, index: int) -> str:
        text = "\n".join(str(m.get("content") or "") for m in body["messages"])
        if "Wrap the new prompt" not in text:       # the task model also wants no "Reply briefly"
            return answer(text, LABELS in text and "Reply briefly" not in text)
        current = current_prompt(text)        # fix line 12 (inside the hunk) and reword line 1 (outside it)
        return ("<START>\n" + current.replace("Reply briefly.", "Reply with one word.")
                .replace("Classify the support ticket", "Classify this support ticket") + "\n<END>")

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai_server.set_reply(fixer)
    # the LLM's fix is the subject here; located, the PR's one edit would be reverted instead
    world = World(tmp_path, openai_server.url, github, monkeypatch, prompt=good, head=bad, localize=False)
    result, _, _ = world.run(world.head)
    assert result.exit_code == 1, result.output
    [suggestion] = github.review_comments(2)
    assert suggestion["line"] == 12 and "Reply with one word." in suggestion["body"]
    [comment] = bot_comments(github)
    assert "```diff" in comment["body"] and "+Classify this support ticket" in comment["body"]
    assert "changes outside the pull request's diff are shown below" in comment["body"]
    assert 422 not in [r.status for r in github.requests]


def test_commit_mode_pushes_to_the_head_branch_and_the_next_run_only_compares(world, github, openai_server):
    result, _, _ = world.run(world.head, deliver="commit,comment")
    assert result.exit_code == 1, result.output
    tip = world.remote_log()[0]
    assert tip != world.head and world.remote_log()[1] == world.head
    message = git(world.remote, "log", "-1", "--format=%an <%ae>%n%B", tip)
    assert message.startswith("github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>")
    assert "[gpo-action] Improve prompts/triage.j2" in message and message.rstrip().endswith("Gpo-Action: fix")
    assert git(world.remote, "show", f"{tip}:{PATH}") + "\n" == BAD.replace("ticket.", f"ticket as {LABELS}.")
    assert github.reviews(2) == []                                   # committed: no suggestion on an old head
    [comment] = bot_comments(github)
    assert f"Committed as `{tip[:12]}` to `feature`" in comment["body"]
    assert git(world.work, "status", "--porcelain") == ""             # the checkout was left alone

    # the push triggers a new run whose head is gpo-action's own commit: it is compared (from the
    # cache: the fix's prompt was scored on every case while it was found) and not optimized again
    git(world.work, "fetch", "-q", "origin")
    git(world.work, "checkout", "-q", tip)
    calls = openai_server.total
    again, outputs, summary = world.run(tip, deliver="commit,comment")
    assert again.exit_code == 0, again.output
    assert openai_server.total == calls                                # no task call, no optimizer call
    assert "loop guard" in again.output and "loop guard" in summary and "regressed=false" in outputs
    assert "verdicts=triage=unchanged" in outputs and "proposed=false" in outputs
    [updated] = bot_comments(github)
    assert updated["id"] == comment["id"] and "| triage | ⚪ unchanged | 100.0 | 100.0 |" in updated["body"]
    assert world.remote_log()[0] == tip                                 # nothing more was pushed


def test_a_fork_never_gets_a_push(world, github):
    result, outputs, _ = world.run(world.head, deliver="commit,suggestion,comment", fork=True)
    assert result.exit_code == 1, result.output
    assert world.remote_log()[0] == world.head                        # nothing pushed
    [comment] = bot_comments(github)
    assert "gpo-action never pushes to forks" in shown(comment["body"])
    assert len(github.review_comments(2)) == 1                        # a suggestion is still fine


def test_a_read_only_fork_token_loses_no_report_and_fails_nothing_extra(world, github):
    github.read_only = True                                           # every write is a 403, as for a fork
    result, outputs, summary = world.run(world.head, deliver="commit,suggestion,comment", fork=True)
    assert result.exit_code == 1, result.output                       # the regression's code, not a crash
    writes = [r for r in github.requests if r.method != "GET"]
    assert writes and all(r.status == 403 for r in writes)            # it tried, and was refused
    assert bot_comments(github) == [] and github.review_comments(2) == []
    assert world.remote_log()[0] == world.head                        # nothing pushed
    assert "could not post the pull request comment" in summary and "read-only token" in summary
    assert "| triage |" in summary and "regressed=true" in outputs    # the report is in the job summary


def test_a_fork_without_a_key_evaluates_the_cache_and_passes_neutrally(world, github, openai_server):
    git(world.work, "checkout", "-q", "main")                         # the base was evaluated before (cached)
    world.monkeypatch.setenv("GPO_TEST_KEY", KEY)
    world.monkeypatch.chdir(world.work)
    assert CliRunner().invoke(main, ["eval"]).exit_code == 0
    git(world.work, "checkout", "-q", "feature")
    calls = openai_server.total
    result, outputs, summary = world.run(world.head, deliver="commit,suggestion,comment", fork=True, key=None)
    assert result.exit_code == 0, result.output
    assert openai_server.total == calls                               # no model was called
    assert world.remote_log()[0] == world.head
    [comment] = bot_comments(github)
    body = shown(comment["body"])
    assert "| triage | ⏭️ skipped |" in body and "Not everything was evaluated" in body
    assert "GPO_TEST_KEY is not set" in body and "> - triage: skipped 30 of 30 cases on head\n" in body
    assert "not optimized" not in body                                # a skipped suite is not a failure
    assert "regressed=false" in outputs and "skipped" in summary
    assert "this does not fail the check:** this is a pull request from a fork, and GitHub gives a fork's " \
           "workflow no secrets" in body                              # it says why neutral is right here
    assert "::error" not in result.output and "exit-code=0" in outputs


def test_a_same_repository_pull_request_without_its_key_fails_with_exit_2_and_the_fix(world, github, openai_server):
    result, outputs, summary = world.run(world.head, deliver="comment", key=None)
    assert result.exit_code == 2, result.output
    assert openai_server.total == 0                                   # nothing could be evaluated, nothing was sent
    [comment] = bot_comments(github)
    body = shown(comment["body"])
    assert "[!CAUTION]" in body and "Nothing was evaluated, so the check fails (exit 2)" in body
    assert "GPO_TEST_KEY is not set" in body and "Fix: set GPO_TEST_KEY (in GitHub Actions: from a secret" in body
    assert "exit-code=2" in outputs and "Nothing was evaluated" in shown(summary)
    assert "::error title=gpo-action%3A not evaluated::1 suite could not be evaluated here" in result.output


# ---- whose comment is ours --------------------------------------------------------------------
CANARY_TOKEN = "ghs_canaryTOKEN0123456789abcdefABCDEF"


def test_only_the_tokens_own_comment_is_updated_and_the_token_is_sent_in_no_body(tmp_path, openai_server,
                                                                                  monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai_server.set_reply(reply)
    with GitHubServer(repository=REPO, token=CANARY_TOKEN) as github:      # the GITHUB_TOKEN: github-actions[bot]
        world = World(tmp_path, openai_server.url, github, monkeypatch)
        other = github.add_issue_comment(2, f"another app quotes {MARKER}", login="other-app[bot]", user_type="Bot")
        human = github.add_issue_comment(2, f"{MARKER}?", login="octocat")
        first, _, summary = world.run(world.head, deliver="comment", mode="check")
        assert first.exit_code == 1, first.output
        head2 = world.commit(BAD + "Thanks.\n", "thanks")
        github.push(2, {PATH: (GOOD, BAD + "Thanks.\n")}, head_sha=head2)
        second, outputs, _ = world.run(head2, deliver="comment", mode="check")
        assert second.exit_code == 1, second.output
        comments = {c["id"]: c for c in github.issue_comments(2)}
        assert comments[other["id"]]["body"] == other["body"] and comments[human["id"]]["body"] == human["body"]
        [ours] = [c for c in comments.values() if c["user"]["login"] == "github-actions[bot]"]
        assert "Thanks." in shown(ours["body"]) and ours["id"] not in (other["id"], human["id"])
        assert len(github.requests_to("POST", r"/issues/\d+/comments$")) == 1     # created once, then updated
        assert [r.path for r in github.requests_to("PATCH", "")] == [f"/repos/{REPO}/issues/comments/{ours['id']}"]
        assert [r.status for r in github.requests_to("GET", r"^/user$")] == [403, 403]   # looked up once a run
        recorded = json.dumps([[r.path, r.query, r.body] for r in github.requests])
        report = (world.work / ".gpo/report.json").read_text()
        streams = [line for run in (first, second) for line in run.output.splitlines()
                   if not line.startswith("::add-mask::")]                 # the runner's mask command itself
        for text in (recorded, "\n".join(streams), summary, outputs, report):
            assert CANARY_TOKEN not in text


def test_another_apps_token_updates_that_apps_comment_named_by_comment_author(world, github):
    github.login = "gpo-app[bot]"                                          # a GitHub App's installation token
    actions = github.add_issue_comment(2, f"{MARKER}\nby the GITHUB_TOKEN", login="github-actions[bot]",
                                       user_type="Bot")
    mine = github.add_issue_comment(2, f"{MARKER}\nold", login="gpo-app[bot]", user_type="Bot")
    world.monkeypatch.setenv("INPUT_COMMENT-AUTHOR", "gpo-app[bot]")
    result, _, _ = world.run(world.head, deliver="comment", mode="check")
    assert result.exit_code == 1, result.output
    comments = {c["id"]: c for c in github.issue_comments(2)}
    assert len(comments) == 2 and comments[actions["id"]]["body"] == actions["body"]
    assert "| triage | 🔴 regressed |" in comments[mine["id"]]["body"]


@pytest.mark.parametrize("login", ["", "my-app[bot]", "Release-Robot"])
def test_comment_author_takes_a_login(login):
    assert options_from_inputs({"INPUT_COMMENT-AUTHOR": login}).comment_author == (login or None)


@pytest.mark.parametrize("login", ["two words", "-dash", "a[bot][bot]", "x\n::warning::forged"])
def test_comment_author_that_is_not_a_login_is_an_input_error(login):
    with pytest.raises(InputError, match="comment-author must be a GitHub login"):
        options_from_inputs({"INPUT_COMMENT-AUTHOR": login})


# ---- the Action's files ---------------------------------------------------------------------
def _composite_steps() -> list[dict]:
    return yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]


def test_composite_action_restores_its_venv_installs_what_is_missing_saves_it_then_runs_the_entry_point():
    steps = _composite_steps()
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/setup-python", "actions/cache/restore", "actions/cache/save"]
    assert steps[0]["with"]["update-environment"] is False          # the job's own python stays first on PATH
    key, restore, install, save, run = steps[1:]
    script = '"$PYTHON" "$GITHUB_ACTION_PATH/action/venv.py"'
    assert key["id"] == "venv" and key["run"] == f"{script} key"
    assert key["env"]["PYTHON"] == install["env"]["PYTHON"] == "${{ steps.python.outputs.python-path }}"
    assert restore["with"] == {"path": "${{ steps.venv.outputs.path }}", "key": "${{ steps.venv.outputs.key }}",
                               "restore-keys": "${{ steps.venv.outputs.restore-key }}"}
    assert install["run"] == f"{script} install"
    assert install["env"]["GPO_ACTION_VENV"] == "${{ steps.venv.outputs.path }}"
    # saved before gpo-action runs (a failing check still saves it), and only when not restored as is
    assert save["if"] == f"steps.{restore['id']}.outputs.cache-hit != 'true'"
    assert save["with"] == {"path": "${{ steps.venv.outputs.path }}", "key": "${{ steps.venv.outputs.key }}"}
    assert run["env"]["GPO_ACTION_BIN"] == "${{ steps.install.outputs.bin }}" and install["id"] == "install"
    assert run["run"].endswith("gpo-action\" action")
    assert "${{" not in key["run"] + install["run"] + run["run"]     # values reach scripts as env, never as code
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert {name: o["value"] for name, o in action["outputs"].items()} == {
        name: f"${{{{ steps.run.outputs.{name} }}}}" for name in OUTPUTS}


SAMPLES = {"github-token": "ghp_sample-token-123", "config": "sub/gpo.yaml", "base": "abc123", "mode": "check",
           "deliver": "comment", "budget-usd": "1.5", "comment-author": "my-app[bot]", "trust-head-config": "true",
           "shard": "1/2"}


@pytest.mark.parametrize("name", INPUTS)
def test_composite_action_passes_each_input_where_options_from_inputs_reads_it(name):
    """The runner gives a composite action no INPUT_* variables: the run step's env must name each
    input as the Docker runner did, and the entry point must read it from there."""
    env_of_run = _composite_steps()[-1]["env"]
    [key] = [k for k, v in env_of_run.items() if v == f"${{{{ inputs.{name} }}}}"]
    assert key == f"INPUT_{name.upper()}"                            # the Docker runner's name, hyphens kept
    assert options_from_inputs({key: SAMPLES[name]}) != options_from_inputs({})   # and it is read


def test_action_yml_declares_what_the_entry_point_reads_and_writes():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    assert list(action["inputs"]) == list(INPUTS)
    assert list(action["outputs"]) == list(OUTPUTS)
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "safe.directory" in dockerfile and "requirements-action.txt" in dockerfile
    assert 'ENTRYPOINT ["gpo-action"]' in dockerfile and "llama" not in dockerfile.split("FROM")[1].lower()
    pins = [line for line in (ROOT / "requirements-action.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    project = (ROOT / "pyproject.toml").read_text().split("dependencies = [", 1)[1].split("]", 1)[0]
    wanted = {d.strip().strip('",').split(">")[0].split("=")[0].lower() for d in project.split("\n") if d.strip()}
    assert wanted <= pinned and "llama-cpp-python" not in pinned


def test_workflows_use_the_action_safely():
    for path in [ROOT / ".github/workflows/gpo.yml", ROOT / "gpo_action/scaffold/workflow.yml"]:
        text = path.read_text()
        assert not [line for line in text.splitlines() if "pull_request_target" in line.split("#")[0]]
        workflow = yaml.safe_load(text)
        assert list(workflow[True]) == ["pull_request"]            # YAML 1.1 reads `on` as True
        assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
        steps = workflow["jobs"]["prompts"]["steps"]
        assert steps[0]["with"]["fetch-depth"] == 0
        assert steps[1]["uses"].startswith("actions/cache@") and steps[1]["with"]["path"] == ".gpo"
        assert steps[2]["with"] == {"github-token": "${{ secrets.GITHUB_TOKEN }}"}
    assert yaml.safe_load((ROOT / ".github/workflows/gpo.yml").read_text())["jobs"]["prompts"]["steps"][2]["uses"] == "./"
    tests = yaml.safe_load((ROOT / ".github/workflows/tests.yml").read_text())
    assert set(tests[True]) == {"push", "pull_request"}
    assert tests["jobs"]["test"]["steps"][-1]["run"] == "bash .ci/run"


def test_run_renders_the_comment_and_review_to_files(world, github, tmp_path):
    world.monkeypatch.setenv("GPO_TEST_KEY", KEY)
    world.monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    world.monkeypatch.chdir(world.work)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--base", "main", "--optimize", "--deliver", "comment,suggestion",
                                       "--out", str(out), "--budget-usd", "0.5"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    review = json.loads((out / "review.json").read_text())
    assert review["commit_id"] == world.head and review["event"] == "COMMENT"
    assert review["comments"] == [{"path": PATH, "line": 1, "side": "RIGHT",
                                   "body": f"```suggestion\nClassify the support ticket as {LABELS}.\n```"}]
    comment = (out / "comment.md").read_text()
    assert comment.startswith(MARKER) and "Suggested in a review" in comment
    assert "Fix budget for this pull request: 200 calls, $0.50, 120 s" in comment    # --budget-usd
    assert github.requests == []                                                    # nothing sent to GitHub
