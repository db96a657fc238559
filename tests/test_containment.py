"""Containment (issue 11, point 1): every path gpo.yaml, a suite or a case file names stays inside the
repository's working tree. A hostile value is an input error (exit 2) naming the file, the line and
the key, raised before the file is read: a canary planted in the file it points at appears in no
stream, no file under .gpo/ and no request to the model server. Real git repositories in tmp,
litellm over HTTP to the scripted server, the CLI through click's runner (and one subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import BAD, GOOD, TICKETS, answer_by_prompt, git, local_run_repo

OUTSIDE_REPO = "lies outside the repository (paths must stay inside the repository's working tree)"
LEADS_OUT = "is a symlink that leads outside the repository (paths must stay inside the repository's working tree)"
IN_GIT = "lies inside .git/ (git's own files are never read or written)"


@pytest.fixture
def canary() -> str:
    return f"sk-canary-contain-{uuid.uuid4().hex}"


@pytest.fixture
def outside(tmp_path, canary) -> Path:
    """Files beside the repository, each holding the canary: what a hostile path points at."""
    out = tmp_path / "outside"
    (out / "dir").mkdir(parents=True)
    (out / "secret.j2").write_text(f"{canary}\nTicket: {{{{ ticket }}}}\n")
    (out / "cases.jsonl").write_text(json.dumps({"vars": {"ticket": canary}, "expected": canary}) + "\n")
    (out / "dir" / "cases.jsonl").write_text(json.dumps({"vars": {"ticket": canary}, "expected": canary}) + "\n")
    (out / "suite.yaml").write_text(f"prompt: prompts/triage.j2\ncases:\n  - vars: {{ticket: {canary}}}\n    expected: x\n")
    prompts = [GOOD.replace("{{ ticket }}", ticket) for ticket in [*TICKETS, "a"]]   # every prompt the repo sends
    (out / "rec.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": canary}) + "\n" for p in prompts))
    (out / "gpo.yaml").write_text(f"# {canary}\nsuites: [evals/*.yaml]\n")
    return out


@pytest.fixture
def requests_seen() -> list[str]:
    """Every request body the model server received (filled by `repo`'s reply function)."""
    return []


@pytest.fixture
def repo(tmp_path, openai_server, monkeypatch, canary, requests_seen) -> Path:
    """The `run` project on branch `pr`; the checkout's .git/config holds a credential (the canary),
    as actions/checkout leaves one there."""
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)

    def reply(body, index):
        requests_seen.append(json.dumps(body))
        return answer_by_prompt(body, index)

    openai_server.set_reply(reply)
    git(root, "config", "http.https://github.com/.extraheader", f"AUTHORIZATION: basic {canary}")
    git(root, "checkout", "-qb", "pr")
    monkeypatch.chdir(root)
    return root


def set_config_line(repo: Path, start: str, new: str) -> None:
    """Replace the line of gpo.yaml that starts with `start` by `new` (one or more whole lines)."""
    path = repo / "gpo.yaml"
    lines = path.read_text().splitlines(keepends=True)
    [index] = [i for i, line in enumerate(lines) if line.startswith(start)]
    lines[index] = new
    path.write_text("".join(lines))


def hostile_suite(repo: Path, text: str) -> None:
    (repo / "evals" / "hostile.yaml").write_text(text)


def symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


SUITES_LINE = "  - eval: evals/*.yaml\n"
TASK_LINE = "  task:"
CASE = "  - vars: {ticket: a}\n    expected: billing\n"

# id -> (what the pull request does to the repository, given (repo, outside); the error expected on stderr)
Hostile = Callable[[Path, Path], None]
HOSTILE: dict[str, tuple[Hostile, str]] = {
    "prompt-absolute": (
        lambda r, o: hostile_suite(r, f"prompt: {o / 'secret.j2'}\ncases:\n{CASE}"),
        "evals/hostile.yaml:1: prompt: '{outside}/secret.j2' " + OUTSIDE_REPO),
    "prompt-dotdot": (
        lambda r, o: hostile_suite(r, f"prompt: ../outside/secret.j2\ncases:\n{CASE}"),
        "evals/hostile.yaml:1: prompt: '../outside/secret.j2' " + OUTSIDE_REPO),
    "prompt-proc": (
        lambda r, o: hostile_suite(r, f"prompt: /proc/self/environ\ncases:\n{CASE}"),
        "evals/hostile.yaml:1: prompt: '/proc/self/environ' " + OUTSIDE_REPO),
    "prompt-git-config": (
        lambda r, o: hostile_suite(r, f"prompt: .git/config\ncases:\n{CASE}"),
        "evals/hostile.yaml:1: prompt: '.git/config' " + IN_GIT),
    "prompt-symlink": (
        lambda r, o: symlink(r / "prompts" / "triage.j2", o / "secret.j2"),
        "evals/triage.yaml:1: prompt: 'prompts/triage.j2' " + LEADS_OUT),
    "casefile-absolute": (
        lambda r, o: hostile_suite(r, f"prompt: prompts/triage.j2\ncases:\n  - file: {o / 'cases.jsonl'}\n"),
        "evals/hostile.yaml:3: cases.0.file: '{outside}/cases.jsonl' " + OUTSIDE_REPO),
    "casefile-dotdot": (
        lambda r, o: hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: ../../outside/cases.jsonl\n"),
        "evals/hostile.yaml:3: cases.0.file: '../../outside/cases.jsonl' " + OUTSIDE_REPO),
    "casefile-git-config": (
        lambda r, o: hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: ../.git/config\n"),
        "evals/hostile.yaml:3: cases.0.file: '../.git/config' " + IN_GIT),
    "casefile-symlink": (
        lambda r, o: (symlink(r / "evals" / "more.jsonl", o / "cases.jsonl"),
                      hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: more.jsonl\n")),
        "evals/hostile.yaml:3: cases.0.file: 'more.jsonl' " + LEADS_OUT),
    "caseglob-dotdot": (
        lambda r, o: hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: ../../outside/*.jsonl\n"),
        "evals/hostile.yaml:3: cases.0.file: '../../outside/*.jsonl' " + OUTSIDE_REPO),
    "caseglob-absolute": (
        lambda r, o: hostile_suite(r, f"prompt: prompts/triage.j2\ncases:\n  - file: '{o}/**/*.jsonl'\n"),
        "evals/hostile.yaml:3: cases.0.file: '{outside}/**/*.jsonl' " + OUTSIDE_REPO),
    "caseglob-dotdot-after-wildcard": (
        lambda r, o: hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: '*/../../../outside/cases.jsonl'\n"),
        "evals/hostile.yaml:3: cases.0.file: '*/../../../outside/cases.jsonl' has '..' after a wildcard"),
    "caseglob-symlink-match": (
        lambda r, o: (symlink(r / "evals" / "data" / "leak.jsonl", o / "cases.jsonl"),
                      hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: data/*.jsonl\n")),
        "evals/hostile.yaml:3: cases.0.file: 'data/*.jsonl' matched 'data/leak.jsonl', which " + LEADS_OUT),
    "caseglob-recursive-dir-symlink": (
        lambda r, o: (symlink(r / "evals" / "data" / "out", o / "dir"),
                      hostile_suite(r, "prompt: prompts/triage.j2\ncases:\n  - file: data/**/*.jsonl\n")),
        "evals/hostile.yaml:3: cases.0.file: 'data/**/*.jsonl' would follow the directory symlink 'out', "
        "which leads outside the repository"),
    "suites-absolute": (
        lambda r, o: set_config_line(r, SUITES_LINE, SUITES_LINE + f"  - eval: {o / 'suite.yaml'}\n"),
        "gpo.yaml:5: suites.1: '{outside}/suite.yaml' " + OUTSIDE_REPO),
    "suites-glob-dotdot": (
        lambda r, o: set_config_line(r, SUITES_LINE, SUITES_LINE + "  - ../outside/*.yaml\n"),
        "gpo.yaml:5: suites.1: '../outside/*.yaml' " + OUTSIDE_REPO),
    "suites-git": (
        lambda r, o: set_config_line(r, SUITES_LINE, SUITES_LINE + "  - .git/config\n"),
        "gpo.yaml:5: suites.1: '.git/config' " + IN_GIT),
    "suites-symlink-match": (
        lambda r, o: symlink(r / "evals" / "leak.yaml", o / "suite.yaml"),
        "gpo.yaml:4: suites.0: 'evals/*.yaml' matched 'evals/leak.yaml', which " + LEADS_OUT),
    "replay-config": (
        lambda r, o: set_config_line(r, TASK_LINE, "  task: replay/../outside/rec.jsonl\n"),
        "gpo.yaml:2: models.task: 'replay/../outside/rec.jsonl' " + OUTSIDE_REPO),
    "replay-suite": (
        lambda r, o: hostile_suite(r, f"prompt: prompts/triage.j2\nmodel: replay/{o / 'rec.jsonl'}\ncases:\n{CASE}"),
        "evals/hostile.yaml:2: model: 'replay/{outside}/rec.jsonl' " + OUTSIDE_REPO),
    "cache-git-config": (
        lambda r, o: (r / "gpo.yaml").write_text((r / "gpo.yaml").read_text() + "cache: {path: .git/config}\n"),
        "gpo.yaml:8: cache.path: '.git/config' " + IN_GIT),
    "cache-outside": (
        lambda r, o: (r / "gpo.yaml").write_text((r / "gpo.yaml").read_text() + "cache: {path: ../outside/c.sqlite}\n"),
        "gpo.yaml:8: cache.path: '../outside/c.sqlite' " + OUTSIDE_REPO),
    "cache-dir-symlink": (
        lambda r, o: symlink(r / ".gpo", o / "dir"),
        "gpo.yaml:1: cache.path: '.gpo/cache.sqlite' " + LEADS_OUT),
    "config-symlink": (
        lambda r, o: symlink(r / "gpo.yaml", o / "gpo.yaml"),
        "gpo.yaml: the configuration file " + LEADS_OUT),
}


def leaks(canary: str, repo: Path, result, requests: list[str]) -> list[str]:
    """Where the canary shows: the streams, the requests to the model server, any file under .gpo/."""
    places = {"stdout": result.stdout, "stderr": result.stderr, "requests": "\n".join(requests)}
    gpo = repo / ".gpo"
    if gpo.is_dir() and not gpo.is_symlink():
        for directory, _dirs, files in os.walk(gpo):
            for name in files:
                path = Path(directory) / name
                if not path.is_symlink():
                    places[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return [name for name, text in places.items() if canary in text]


def invoke(command: str, repo: Path):
    if command == "run":
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "the pull request")
        args = ["run", "--base", "main", "--json", ".gpo/report.json"]
    else:
        args = ["eval", "--json", ".gpo/report.json"]
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("command", ["eval", "run"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_path_is_an_input_error_naming_file_line_and_key_and_nothing_is_read(
        case, command, repo, outside, canary, requests_seen, openai_server):
    change, expected = HOSTILE[case]
    git_config = (repo / ".git" / "config").read_bytes()
    change(repo, outside)
    result = invoke(command, repo)
    assert result.exit_code == 2, result.output
    assert expected.format(outside=outside) in result.stderr
    assert leaks(canary, repo, result, requests_seen) == []
    assert openai_server.total == 0
    assert (repo / ".git" / "config").read_bytes() == git_config   # the cache never turned it into a database
    assert not (outside / "c.sqlite").exists() and sorted(p.name for p in (outside / "dir").iterdir()) == ["cases.jsonl"]


def test_proc_self_environ_is_refused_and_the_environment_is_not_published(repo, canary, requests_seen):
    """A subprocess, so that the canary is in the process's own environment block."""
    hostile_suite(repo, f"prompt: /proc/self/environ\ncases:\n{CASE}")
    env = {**os.environ, "GPO_CANARY_API_KEY": canary, "GITHUB_TOKEN": canary}
    result = subprocess.run([sys.executable, "-m", "gpo_action", "eval", "--json", ".gpo/report.json"], cwd=repo,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "evals/hostile.yaml:1: prompt: '/proc/self/environ' " + OUTSIDE_REPO in result.stderr
    assert leaks(canary, repo, result, requests_seen) == []


def test_a_base_revision_that_names_a_file_outside_is_not_read(repo, outside, canary, requests_seen):
    """The base's snapshot is its tree: its suite pointing outside does not load (the head is
    evaluated one-sided), and the file it named is never read, rendered or sent."""
    suite = repo / "evals" / "triage.yaml"
    legit = suite.read_text()
    git(repo, "checkout", "-q", "main")
    suite.write_text(legit.replace("prompt: prompts/triage.j2", f"prompt: {outside / 'secret.j2'}"))
    git(repo, "commit", "-qam", "the base names a file outside")
    git(repo, "checkout", "-qB", "pr", "main")
    suite.write_text(legit)
    result = invoke("run", repo)
    assert result.exit_code == 0, result.output
    assert f"prompt: '{outside / 'secret.j2'}' lies outside the project directory" in result.stderr
    assert "does not load" in result.stderr
    report = json.loads((repo / ".gpo" / "report.json").read_text())
    assert len(report["head_results"][0]["cases"]) == len(TICKETS) and report["base_results"] == [None]
    assert leaks(canary, repo, result, requests_seen) == []


def test_a_committed_run_directory_symlink_stops_the_fix_before_anything_is_written(repo, outside, canary,
                                                                                     requests_seen):
    runs = outside / "runs"
    runs.mkdir()
    (repo / "prompts" / "triage.j2").write_text(BAD)
    symlink(repo / ".gpo" / "fix", runs)
    git(repo, "commit", "-qam", "a regression")
    result = CliRunner().invoke(main, ["run", "--base", "main", "--optimize"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "run directory: '.gpo/fix/triage' " + LEADS_OUT in result.stderr
    assert list(runs.iterdir()) == []
    assert leaks(canary, repo, result, requests_seen) == []


def test_a_suite_named_dotdot_keeps_its_run_directory_below_the_runs_directory(repo):
    (repo / "evals" / "triage.yaml").write_text("name: '..'\n" + (repo / "evals" / "triage.yaml").read_text())
    result = CliRunner().invoke(main, ["optimize", "..", "--steps", "1", "--candidates", "1", "--max-calls", "70"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (repo / ".gpo" / "optimize" / "__" / "state.json").is_file()
    assert not (repo / ".gpo" / "state.json").exists() and not (repo / ".gpo" / "optimize" / "state.json").exists()


# ---- what stays allowed -----------------------------------------------------------------------


def test_a_project_in_a_subdirectory_may_name_files_up_to_the_repository_root(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    openai_server.set_reply(answer_by_prompt)
    root = tmp_path / "mono"
    (root / "common").mkdir(parents=True)
    (root / "proj" / "evals").mkdir(parents=True)
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    (root / "common" / "triage.j2").write_text(GOOD)
    (root / "common" / "cases.jsonl").write_text(
        "".join(json.dumps({"vars": {"ticket": t}, "expected": c}) + "\n" for t, c in list(TICKETS.items())[:6]))
    (root / "proj" / "gpo.yaml").write_text(
        f'models:\n  task: {{model: openai/scripted, api_base: "{openai_server.url}/v1"}}\n'
        "suites:\n  - eval: evals/*.yaml\nretries: {max: 1, base: 0.01}\n")
    (root / "proj" / "evals" / "triage.yaml").write_text(
        "prompt: ../common/triage.j2\nassert:\n  - {type: icontains, value: '{{ expected }}'}\n"
        "cases:\n  - file: ../../common/cases.jsonl\n")
    monkeypatch.chdir(root / "proj")
    result = CliRunner().invoke(main, ["eval", "--json", "out.json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [suite] = json.loads((root / "proj" / "out.json").read_text())["suites"]
    assert len(suite["cases"]) == 6 and suite["passed"] == 6


@pytest.mark.parametrize("command", ["eval", "run"])
def test_a_symlink_that_stays_inside_the_tree_is_followed(command, repo):
    """A link to another file of the same tree reads nothing the tree does not hold."""
    (repo / "prompts" / "real.j2").write_text(BAD)
    symlink(repo / "prompts" / "triage.j2", Path("real.j2"))
    result = invoke(command, repo)
    assert result.exit_code == (1 if command == "run" else 0), result.output   # run: the linked prompt regressed
    report = json.loads((repo / ".gpo" / "report.json").read_text())
    head = report["head_results"][0] if command == "run" else report["suites"][0]
    assert head["passed"] == 10 and len(head["cases"]) == 30   # the linked (bad) prompt is what was evaluated


def test_load_template_with_a_tree_refuses_a_symlink_out_of_it_before_reading(tmp_path, outside, canary):
    """The library guard behind the suite check: `load_template(path, tree=...)`."""
    from gpo_action.errors import TemplateError
    from gpo_action.templates import load_template

    tree = tmp_path / "tree"
    symlink(tree / "prompts" / "out.j2", outside / "secret.j2")
    (tree / "prompts" / "in.j2").write_text(GOOD)
    symlink(tree / "prompts" / "alias.j2", Path("in.j2"))
    with pytest.raises(TemplateError) as refused:
        load_template(tree / "prompts" / "out.j2", tree=tree)
    assert str(refused.value) == (f"{tree / 'prompts' / 'out.j2'}: the template file is a symlink that leads outside "
                                  "the project directory (paths must stay inside the directory of gpo.yaml)")
    assert canary not in str(refused.value)
    assert load_template(tree / "prompts" / "alias.j2", tree=tree).source == GOOD


def test_the_base_policy_config_is_not_judged_by_the_temp_dir_it_is_read_into(tmp_path):
    """load_base_config reads the base's gpo.yaml into a temp dir for its values: a cache path up to
    the repository root (legit for a project in a subdirectory) must not make it fail to load (which
    would put the default, looser gate in place); the path is checked where it is used, in the head's tree."""
    from gpo_action.config import load_config
    from gpo_action.policy import load_base_config, resolve_policy

    root = tmp_path / "mono"
    (root / "proj").mkdir(parents=True)
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "proj" / "gpo.yaml").write_text("gate: {max_drop: 0.0}\ncache: {path: ../.cache/gpo.sqlite}\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    base, note = load_base_config(root, git(root, "rev-parse", "HEAD"), root / "proj" / "gpo.yaml")
    assert note is None and base.gate.max_drop == 0.0 and base.cache.path == "../.cache/gpo.sqlite"
    (root / "proj" / "gpo.yaml").write_text("gate: {max_drop: 1.0}\n")
    policy = resolve_policy(load_config(root / "proj" / "gpo.yaml"), base, enforce=True, why="test")
    assert policy.config.gate.max_drop == 0.0
    assert policy.config.cache_path.resolve() == (root / ".cache" / "gpo.sqlite").resolve()
