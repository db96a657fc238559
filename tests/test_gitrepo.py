"""gitrepo: real repositories and a bare remote in tmp dirs, set up with the git CLI (style rule 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpo_action.config import load_config
from gpo_action.errors import GitError
from gpo_action.gitcommits import push
from gpo_action.gitrepo import (
    ChangeSet,
    changed_files,
    from_repo_path,
    head_sha,
    is_shallow,
    merge_base,
    open_repo,
    read_file,
    resolve_ref,
    to_repo_path,
)
from gpo_action.gitsnapshot import materialize
from gpo_action.suites import resolve_suites
from tests.support.commits import commit_file


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch, tmp_path_factory):
    """No user or system git config leaks in (signing, hooks paths, excludes), nor a caller's GIT_DIR."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                 "GIT_TEST_ASSUME_DIFFERENT_OWNER", "GIT_CEILING_DIRECTORIES"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def configure(path: Path) -> None:
    git(path, "config", "user.name", "Tester")
    git(path, "config", "user.email", "tester@example.com")
    git(path, "config", "commit.gpgsign", "false")


def make_repo(path: Path, bare: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "-c", "init.defaultBranch=main", "init", "-q", *(["--bare"] if bare else []))
    if not bare:
        configure(path)
    return path


def clone(source: Path, dest: Path, *args: str) -> Path:
    git(dest.parent, "clone", "-q", *args, source.as_uri(), str(dest))   # file:// so --depth applies
    configure(dest)
    return dest


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def commit(root: Path, message: str, files: dict[str, str | bytes] | None = None) -> str:
    write(root, files or {})
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo_dir(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def branched(tmp_path) -> dict[str, object]:
    """main: c1 - c2 - c3;  feature: c2 - f1 - f2 (diverged), pushed to a bare `origin`."""
    work = make_repo(tmp_path / "origin-work")
    c1 = commit(work, "c1", {"prompts/a.j2": "A1\n", "README.md": "r\n"})
    c2 = commit(work, "c2", {"prompts/a.j2": "A2\n"})
    git(work, "checkout", "-q", "-b", "feature")
    commit(work, "f1", {"prompts/b.j2": "B\n"})
    f2 = commit(work, "f2", {"prompts/a.j2": "A-feature\n"})
    git(work, "checkout", "-q", "main")
    c3 = commit(work, "c3", {"README.md": "main moved on\n"})
    bare = make_repo(tmp_path / "origin.git", bare=True)
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main", "feature")
    return {"work": work, "bare": bare, "c1": c1, "c2": c2, "c3": c3, "f2": f2}


# --- what changed ------------------------------------------------------------------------------

def test_changes_between_commits_count_a_rename_as_delete_plus_add(repo_dir):
    base = commit(repo_dir, "base", {"a.txt": "a\n", "b.txt": "b\n", "old.md": "same content\n",
                                     "proj/prompts/p.j2": "hello\n", "keep.txt": "k\n"})
    git(repo_dir, "rm", "-q", "b.txt")
    git(repo_dir, "mv", "old.md", "new.md")
    head = commit(repo_dir, "head", {"a.txt": "a2\n", "proj/prompts/p.j2": "hello there\n", "c 1.txt": "new\n"})
    with open_repo(repo_dir) as repo:
        changes = changed_files(repo, base, head)
    assert changes == ChangeSet(base, head, frozenset({"a.txt", "proj/prompts/p.j2"}),
                                frozenset({"new.md", "c 1.txt"}), frozenset({"b.txt", "old.md"}))
    assert changes.changed == {"a.txt", "proj/prompts/p.j2", "new.md", "c 1.txt", "b.txt", "old.md"}
    assert ChangeSet.from_dict(json.loads(json.dumps(changes.to_dict()))) == changes


def test_changes_against_the_working_tree(repo_dir):
    base = commit(repo_dir, "base", {
        ".gitignore": ".gpo/\n*.log\n", "staged.txt": "1\n", "unstaged.txt": "1\n", "both.txt": "1\n",
        "gone.txt": "1\n", "rm.txt": "1\n", "untracked-again.txt": "1\n", "untracked-edit.txt": "1\n",
        "touched.txt": "same\n"})
    write(repo_dir, {"staged.txt": "2\n", "both.txt": "2\n", "new-staged.txt": "n\n"})
    git(repo_dir, "add", "staged.txt", "both.txt", "new-staged.txt")
    write(repo_dir, {"unstaged.txt": "2\n", "both.txt": "3\n", "evals/untracked.yaml": "u\n",
                     ".gpo/cache.sqlite": "ignored", "run.log": "ignored"})
    (repo_dir / "gone.txt").unlink()
    git(repo_dir, "rm", "-q", "rm.txt")
    git(repo_dir, "rm", "-q", "--cached", "untracked-again.txt", "untracked-edit.txt")
    write(repo_dir, {"untracked-edit.txt": "edited\n"})
    os.utime(repo_dir / "touched.txt", (1, 1))   # stat changes, content does not
    with open_repo(repo_dir) as repo:
        changes = changed_files(repo, "HEAD")
    assert changes.base == base and changes.head is None
    assert changes.modified == {"staged.txt", "unstaged.txt", "both.txt", "untracked-edit.txt"}
    assert changes.added == {"new-staged.txt", "evals/untracked.yaml"}
    assert changes.deleted == {"gone.txt", "rm.txt"}


def test_working_tree_of_a_clean_checkout_has_no_changes(repo_dir):
    commit(repo_dir, "base", {"a.txt": "a\n"})
    with open_repo(repo_dir) as repo:
        assert changed_files(repo, "HEAD").changed == frozenset()


# --- contents at a revision --------------------------------------------------------------------

def test_read_file_at_base(repo_dir):
    base = commit(repo_dir, "base", {"prompts/p.j2": "\ufeffbase text\r\n", "old.yaml": "x: 1\n",
                                     "img.bin": b"\x89PNG\x00\x01", "latin.txt": "caf\xe9".encode("latin-1")})
    git(repo_dir, "rm", "-q", "old.yaml")
    commit(repo_dir, "head", {"prompts/p.j2": "head text\n", "added.j2": "new\n"})
    with open_repo(repo_dir) as repo:
        assert read_file(repo, base, "prompts/p.j2") == "base text\r\n"   # BOM dropped, like the loaders
        assert read_file(repo, "HEAD", "prompts/p.j2") == "head text\n"
        assert read_file(repo, base, "old.yaml") == "x: 1\n"
        assert read_file(repo, "HEAD", "old.yaml") is None
        assert read_file(repo, base, "added.j2") is None
        assert read_file(repo, base, "prompts/p") is None            # no prefix matching
        with pytest.raises(GitError, match="img.bin .*binary"):
            read_file(repo, base, "img.bin")
        with pytest.raises(GitError, match="latin.txt .*not UTF-8"):
            read_file(repo, base, "latin.txt")
        with pytest.raises(GitError, match="prompts is a directory"):
            read_file(repo, base, "prompts")
        with pytest.raises(GitError, match="inside it"):
            read_file(repo, base, "../elsewhere.txt")


PROJECT = {
    "proj/gpo.yaml": "suites:\n  - eval: evals/*.yaml\n",
    "proj/prompts/t.j2": "Classify: {{ ticket }}\n",
    "proj/evals/t.yaml": "prompt: prompts/t.j2\nassert:\n  - {type: icontains, value: '{{ expected }}'}\n"
                         "cases:\n  - file: cases.jsonl\n",
    "proj/evals/cases.jsonl": '{"vars": {"ticket": "charged twice"}, "expected": "billing"}\n',
    "proj/logo.png": b"\x89PNG\x00",
    "proj/run.sh": "#!/bin/sh\n",
    "outside.yaml": "not: in proj\n",
}


def test_materialize_writes_the_project_as_of_a_revision(repo_dir, tmp_path):
    base = commit(repo_dir, "base", {**PROJECT, "proj/evals/big.jsonl": "x" * 2000 + "\n"})
    os.symlink("t.j2", repo_dir / "proj/prompts/link.j2")
    commit(repo_dir, "head", {"proj/prompts/t.j2": "HEAD version {{ ticket }}\n", "proj/prompts/new.j2": "n\n"})
    with open_repo(repo_dir) as repo:
        snap = materialize(repo, "HEAD~1", "proj", tmp_path / "base", max_bytes=1000)
        later = materialize(repo, "HEAD", "proj/", tmp_path / "head")
        everything = materialize(repo, base, ".", tmp_path / "all", suffixes=(".yaml",))
        missing = materialize(repo, base, "nope", tmp_path / "none")
        with pytest.raises(ValueError, match="empty directory"):
            materialize(repo, base, "proj", tmp_path / "base")
        with pytest.raises(GitError, match="not a directory"):
            materialize(repo, base, "outside.yaml", tmp_path / "file")
    assert snap.sha == base and snap.root == tmp_path / "base"
    assert sorted(snap.files) == ["proj/evals/cases.jsonl", "proj/evals/t.yaml", "proj/gpo.yaml", "proj/prompts/t.j2"]
    assert snap.skipped == ("proj/evals/big.jsonl",) and "over the" in snap.notes[0]
    written = sorted(p.relative_to(snap.root).as_posix() for p in snap.root.rglob("*") if p.is_file())
    assert written == ["evals/cases.jsonl", "evals/t.yaml", "gpo.yaml", "prompts/t.j2"]
    assert (snap.root / "prompts/t.j2").read_text() == "Classify: {{ ticket }}\n"
    assert (later.root / "prompts/t.j2").read_text() == "HEAD version {{ ticket }}\n"
    assert "proj/prompts/link.j2" in later.skipped and "symlink" in " ".join(later.notes)
    assert sorted(everything.files) == ["outside.yaml", "proj/evals/t.yaml", "proj/gpo.yaml"]
    assert (tmp_path / "all/proj/gpo.yaml").exists()
    assert missing.files == () and missing.skipped == ()
    # the normal loaders read the snapshot as a project
    suites = resolve_suites(load_config(snap.root / "gpo.yaml"))
    assert [s.prompt for s in suites] == ["prompts/t.j2"] and len(suites[0].cases) == 1


# --- revisions ---------------------------------------------------------------------------------

def test_merge_base_on_a_branch_and_what_the_branch_changed(branched):
    work = branched["work"]
    with open_repo(work) as repo:
        assert head_sha(repo) == branched["c3"]
        base = merge_base(repo, "main", branched["f2"])
        assert base == branched["c2"]
        assert merge_base(repo, "main", "feature") == branched["c2"]
        changes = changed_files(repo, base, "feature")
    assert changes.modified == {"prompts/a.j2"} and changes.added == {"prompts/b.j2"}
    assert "README.md" not in changes.changed      # main's own later change is not the branch's


def test_unknown_ref_names_it_and_hints_at_fetching(branched):
    with open_repo(branched["work"]) as repo:
        assert resolve_ref(repo, "main~1") == branched["c2"]
        assert resolve_ref(repo, branched["c1"][:10]) == branched["c1"]
        with pytest.raises(GitError) as info:
            resolve_ref(repo, "release-9")
        with pytest.raises(GitError, match="'main~9'"):
            merge_base(repo, "main~9", "HEAD")
    message = str(info.value)
    assert "'release-9'" in message and "git fetch origin release-9" in message
    assert "origin/<name>" in message and "origin/release-9" in message


def test_shallow_clone_missing_the_base_entirely_says_so(branched, tmp_path):
    repo_path = clone(branched["bare"], tmp_path / "pr", "--depth", "1", "--branch", "feature")
    with open_repo(repo_path) as repo:
        with pytest.raises(GitError, match="not found.*git fetch origin main.*shallow"):
            resolve_ref(repo, "main")
        with pytest.raises(GitError, match=f"git fetch origin {branched['c1']}"):
            resolve_ref(repo, branched["c1"])           # e.g. the base sha of a pull_request event


def test_missing_local_branch_falls_back_to_origin(branched, tmp_path):
    repo_path = clone(branched["bare"], tmp_path / "ci", "--branch", "feature")
    assert "main" not in git(repo_path, "branch", "--format=%(refname:short)").split()
    with open_repo(repo_path) as repo:
        assert resolve_ref(repo, "main") == branched["c3"]
        assert resolve_ref(repo, "origin/main") == branched["c3"]
        assert merge_base(repo, "main", head_sha(repo)) == branched["c2"]
        assert not is_shallow(repo)
    git(repo_path, "checkout", "-q", "--orphan", "unborn")      # HEAD unborn; origin/HEAD exists
    with open_repo(repo_path) as repo:
        with pytest.raises(GitError, match="'HEAD' not found"):
            resolve_ref(repo, "HEAD")                               # never read as origin/HEAD


def test_shallow_clone_without_the_merge_base_says_how_to_deepen(branched, tmp_path):
    repo_path = clone(branched["bare"], tmp_path / "shallow", "--depth", "1", "--no-single-branch",
                      "--branch", "feature")
    with open_repo(repo_path) as repo:
        assert is_shallow(repo)
        with pytest.raises(GitError) as info:
            merge_base(repo, "main", head_sha(repo))
    message = str(info.value)
    assert "shallow" in message and "git fetch --deepen" in message and "--unshallow" in message
    assert "fetch-depth: 0" in message


def test_unrelated_histories_are_not_blamed_on_shallowness(repo_dir):
    commit(repo_dir, "main", {"a.txt": "a\n"})
    git(repo_dir, "checkout", "-q", "--orphan", "other")
    commit(repo_dir, "other", {"b.txt": "b\n"})
    with open_repo(repo_dir) as repo:
        with pytest.raises(GitError, match="no common ancestor"):
            merge_base(repo, "main", "other")


# --- opening -----------------------------------------------------------------------------------

def test_outside_a_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not a git repository: .*plain"):
        open_repo(plain)


def test_open_searches_parents_and_an_empty_repo_has_no_head(repo_dir):
    (repo_dir / "proj/evals").mkdir(parents=True)
    with open_repo(repo_dir / "proj/evals") as repo:
        assert Path(repo.working_tree_dir).resolve() == repo_dir.resolve()
        with pytest.raises(GitError, match="no commits yet"):
            head_sha(repo)


def test_dubious_ownership_explains_safe_directory(repo_dir, monkeypatch):
    commit(repo_dir, "base", {"a.txt": "a\n"})
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")   # git's own switch for this check
    with pytest.raises(GitError, match="dubious ownership.*safe.directory"):
        open_repo(repo_dir)


def test_import_does_not_load_gitpython():
    code = "import sys, gpo_action.gitrepo; print('git' in sys.modules, 'gitdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- paths -------------------------------------------------------------------------------------

def test_paths_between_config_root_and_repo_root(repo_dir, tmp_path):
    commit(repo_dir, "base", {"proj/gpo.yaml": "{}\n"})
    link = tmp_path / "link"
    link.symlink_to(repo_dir)
    with open_repo(repo_dir) as repo:
        config_root = repo_dir / "proj"
        assert to_repo_path(repo, "prompts/t.j2", base=config_root) == "proj/prompts/t.j2"
        assert to_repo_path(repo, config_root) == "proj"
        assert to_repo_path(repo, repo_dir) == "."
        assert to_repo_path(repo, link / "proj/gpo.yaml") == "proj/gpo.yaml"
        assert to_repo_path(repo, config_root / "../proj/x.yaml") == "proj/x.yaml"
        assert from_repo_path(repo, "proj/gpo.yaml").resolve() == (config_root / "gpo.yaml").resolve()
        assert from_repo_path(repo, ".").resolve() == repo_dir.resolve()
        with pytest.raises(GitError, match="outside the git repository"):
            to_repo_path(repo, tmp_path / "elsewhere.yaml")


# --- commit and push ---------------------------------------------------------------------------

def test_commit_file_commits_only_that_file_and_pushes(branched, tmp_path):
    repo_path = clone(branched["bare"], tmp_path / "ci", "--branch", "feature")
    write(repo_path, {"other.txt": "staged, not ours\n"})
    git(repo_path, "add", "other.txt")
    with open_repo(repo_path) as repo:
        sha = commit_file(repo, "prompts/a.j2", "improved\n", "gpo: improve a.j2", "gpo-bot", "bot@example.com")
        assert sha == head_sha(repo)
        assert read_file(repo, sha, "prompts/a.j2") == "improved\n"
        new = commit_file(repo, repo_path / "prompts/c.j2", "brand new\n", "gpo: add c", "gpo-bot", "bot@example.com")
        with pytest.raises(GitError, match="nothing to commit"):
            commit_file(repo, "prompts/c.j2", "brand new\n", "again", "gpo-bot", "bot@example.com")
        push(repo, "origin", "feature")
    assert git(repo_path, "show", "--name-only", "--format=", sha) == "prompts/a.j2"
    assert git(repo_path, "show", "--name-only", "--format=", new) == "prompts/c.j2"
    assert git(repo_path, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", sha) == \
        "gpo-bot <bot@example.com>|gpo-bot <bot@example.com>|gpo: improve a.j2"
    assert git(repo_path, "diff", "--cached", "--name-only") == "other.txt"     # still staged
    assert git(branched["bare"], "rev-parse", "refs/heads/feature") == new


def test_push_failures_are_git_errors(branched, tmp_path):
    mine = clone(branched["bare"], tmp_path / "mine", "--branch", "feature")
    theirs = clone(branched["bare"], tmp_path / "theirs", "--branch", "feature")
    commit(theirs, "someone else", {"x.txt": "x\n"})
    git(theirs, "push", "-q", "origin", "feature")
    with open_repo(mine) as repo:
        commit_file(repo, "prompts/a.j2", "mine\n", "gpo: mine", "gpo-bot", "bot@example.com")
        with pytest.raises(GitError, match="(?s)rejected.*fetch and rebase"):
            push(repo, "origin", "feature")
        git(mine, "remote", "add", "broken", "https://user:s3cret-token@127.0.0.1:9/nowhere.git")
        with pytest.raises(GitError) as info:
            push(repo, "broken", "feature")
        with pytest.raises(GitError, match="remote 'nowhere' failed"):
            push(repo, "nowhere", "feature")
    assert "s3cret-token" not in str(info.value)
