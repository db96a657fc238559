"""`gpo-action init`: writes a working project, never overwrites by accident."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import git

FILES = ["gpo.yaml", "prompts/triage.j2", "evals/triage.yaml", ".github/workflows/gpo.yml",
         ".github/workflows/gpo-commands.yml"]


def test_init_writes_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    for rel in FILES:
        assert (tmp_path / rel).is_file(), rel
    workflow = yaml.safe_load((tmp_path / ".github/workflows/gpo.yml").read_text())
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert list(workflow[True]) == ["pull_request"]           # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["prompts"]["steps"]
    assert any(str(s.get("uses", "")).endswith("gpo-action@v0.1.0") for s in steps)


def test_init_writes_the_comment_command_workflow_beside_the_pull_request_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    text = (tmp_path / ".github/workflows/gpo-commands.yml").read_text()
    assert "pull_request_target" not in text
    workflow = yaml.safe_load(text)
    assert workflow[True] == {"issue_comment": {"types": ["created"]},
                              "pull_request_review_comment": {"types": ["created"]}}
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    job = workflow["jobs"]["command"]
    assert "github.event.issue.pull_request" in job["if"] and "contains(github.event.comment.body, '/gpo')" in job["if"]
    checkout, cache, action = job["steps"]
    assert checkout["with"]["ref"].startswith("refs/pull/") and checkout["with"]["ref"].endswith("/head")
    assert checkout["with"]["fetch-depth"] == 0 and cache["with"]["path"] == ".gpo"
    assert action["uses"].endswith("gpo-action@v0.1.0") and len(job["steps"]) == 3   # nothing of the PR's runs
    assert "checked out as data only" in text and "write permission" in text


def test_init_refuses_to_overwrite_without_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpo.yaml").write_text("# mine\n")
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 2
    assert "gpo.yaml" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "gpo.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "prompts").exists()  # nothing half-written
    forced = CliRunner().invoke(main, ["init", "--force"])
    assert forced.exit_code == 0
    assert (tmp_path / "gpo.yaml").read_text() != "# mine\n"


def init_and_eval(root, monkeypatch, server, report: str) -> None:
    """`init` in `root`, the scaffold pointed at the scripted server (which answers "billing" to
    everything), then `eval --json report`."""
    monkeypatch.chdir(root)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    with open(root / "gpo.yaml", "a") as f:
        f.write(f'models:\n  task: {{model: openai/scripted, api_base: "{server.url}/v1"}}\n')
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    server.set_reply("billing")
    result = CliRunner().invoke(main, ["eval", "--json", report])
    assert result.exit_code == 0, result.stderr


def test_scaffold_evaluates_at_once(tmp_path, monkeypatch, openai_server):
    init_and_eval(tmp_path, monkeypatch, openai_server, "out.json")
    suite = json.loads((tmp_path / "out.json").read_text())["suites"][0]
    assert (suite["passed"], suite["failed"], suite["errors"]) == (2, 4, 0)


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_init_files_take_the_umask(tmp_path, monkeypatch, umask, mask, mode):
    monkeypatch.chdir(tmp_path)
    umask(mask)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    for rel in [*FILES, ".gitignore"]:
        assert stat.S_IMODE((tmp_path / rel).stat().st_mode) == mode, rel


def test_rewrite_keeps_an_existing_files_mode(tmp_path, umask):
    from gpo_action.files import write_atomic

    target = tmp_path / "prompt.j2"
    target.write_text("old\n")
    target.chmod(0o640)
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["prompt.j2"]   # no temp file left beside it


def test_init_in_a_git_repo_keeps_gpo_out_of_git_status(tmp_path, monkeypatch, openai_server):
    git(tmp_path, "-c", "init.defaultBranch=main", "init", "-q")
    init_and_eval(tmp_path, monkeypatch, openai_server, ".gpo/report.json")
    assert (tmp_path / ".gitignore").read_text() == ".gpo/\n"
    assert (tmp_path / ".gpo/cache.sqlite").is_file() and (tmp_path / ".gpo/report.json").is_file()
    status = git(tmp_path, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert status and not [line for line in status if ".gpo" in line], status
    assert "?? .gitignore" in status


@pytest.mark.parametrize("before, after", [
    ("node_modules/\n", "node_modules/\n.gpo/\n"),
    ("node_modules/", "node_modules/\n.gpo/\n"),                 # a last line without its newline gets one
    ("dist/\r\nbuild/\r\n", "dist/\r\nbuild/\r\n.gpo/\r\n"),      # CRLF stays CRLF
    ("", ".gpo/\n"),
    ("# ours\n/.gpo\n", None),                                   # already ignored: left as it is
    (".gpo/  \n", None),
])
def test_init_appends_to_a_users_gitignore(tmp_path, monkeypatch, before, after):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gitignore").write_bytes(before.encode())
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".gitignore").read_bytes() == (after or before).encode()
    assert ("added .gpo/ to .gitignore" in result.output) == (after is not None)


def test_init_gitignore_is_idempotent_and_written_through_a_symlink(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared.gitignore").write_text("*.log\n")
    (tmp_path / ".gitignore").symlink_to("shared.gitignore")
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    assert CliRunner().invoke(main, ["init", "--force"]).exit_code == 0
    assert (tmp_path / ".gitignore").is_symlink()
    assert (tmp_path / "shared.gitignore").read_text() == "*.log\n.gpo/\n"


def _restore_keys(step: dict) -> list[str]:
    return [k for k in str(step["with"].get("restore-keys") or "").splitlines() if k.strip()]


def test_each_workflow_restores_only_cache_keys_of_its_own_kind(tmp_path, monkeypatch):
    """A comment's run is in the default branch's cache scope, which every pull_request run can
    restore from: its key prefix is one no pull_request run asks for, and no workflow restores the
    bare `gpo-` prefix (which would take any entry, of any pull request or kind)."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    root = Path(__file__).resolve().parents[1]
    number = "${{ github.event.pull_request.number }}"
    texts = {"pull_request": (tmp_path / ".github/workflows/gpo.yml").read_text(),
             "dogfood": (root / ".github/workflows/gpo.yml").read_text(),
             "matrix": (root / "gpo_action/scaffold/workflow_matrix.yml").read_text()}
    for name, text in texts.items():
        steps = [s for job in yaml.safe_load(text)["jobs"].values() for s in job["steps"]
                 if str(s.get("uses", "")).startswith("actions/cache") and "restore" in s["uses"] + str(s["with"])]
        assert steps, name
        for step in steps:
            assert step["with"]["key"].startswith(f"gpo-{number}-"), name
            assert _restore_keys(step) == [f"gpo-{number}-"], name
    commands = yaml.safe_load((tmp_path / ".github/workflows/gpo-commands.yml").read_text())
    [cache] = [s for s in commands["jobs"]["command"]["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
    either = "${{ github.event.issue.number || github.event.pull_request.number }}"
    assert cache["with"]["key"] == f"gpo-command-{either}-${{{{ github.run_id }}}}"
    assert _restore_keys(cache) == [f"gpo-command-{either}-"]
    assert not cache["with"]["key"].startswith("gpo-${{")            # never matched by a `gpo-<n>-` restore key


def test_the_comment_workflow_starts_only_for_an_owners_members_or_collaborators_comment(tmp_path, monkeypatch):
    """One run per pull request is queued (the concurrency group): a stranger's `/gpo` comment must
    not start a job, or it cancels a maintainer's queued one. The API permission check stays the gate."""
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    job = yaml.safe_load((tmp_path / ".github/workflows/gpo-commands.yml").read_text())["jobs"]["command"]
    condition = " ".join(job["if"].split())
    prefilter = ("contains(fromJSON('[\"OWNER\", \"MEMBER\", \"COLLABORATOR\"]'), "
                 "github.event.comment.author_association)")
    assert condition.endswith("&& " + prefilter)
    assert "contains(github.event.comment.body, '/gpo')" in condition
    for stranger in ("NONE", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "MANNEQUIN"):
        assert f'"{stranger}"' not in condition
    assert job["concurrency"]["group"].startswith("gpo-command-")


@pytest.mark.parametrize("name", ["workflow.yml", "workflow_commands.yml"])
def test_the_readme_shows_each_workflow_as_init_writes_it(name):
    """The README's copies carry the cache keys and the job's `if:` a reader copies: they must not drift."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "gpo_action/scaffold" / name).read_text()
    assert text[text.index("name: "):] in (root / "README.md").read_text()
