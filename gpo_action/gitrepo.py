"""What changed, and file contents at a revision, without checking anything out (GitPython).

    repo = open_repo(".")                                  # searches parent directories
    base = merge_base(repo, "main", head_sha(repo))        # `main`, else `origin/main`
    changes = changed_files(repo, base)                    # base .. working tree
    renames = renamed_files(repo, base)                    # {old path: new path}
    text = read_file(repo, base, "prompts/triage.j2")      # None when absent at base

`open_repo` returns a `git.Repo`; pass it to the functions here rather than calling GitPython
directly, so that every git failure reaches the caller as one `GitError` with a hint (the one
boundary where foreign errors are mapped). Paths handed to and returned by these functions are
POSIX and relative to the repository root; `to_repo_path`/`from_repo_path` convert from and to
filesystem paths (such as those under a config root that is a subdirectory of the repository).
GitPython is imported inside functions only (style rule 7). This module only reads; the commit
gpo-action makes and its push are `gitcommits.py`, and a revision's project written to a
directory (the base's snapshot) is `gitsnapshot.py`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from gpo_action.errors import GitError

if TYPE_CHECKING:  # pragma: no cover
    from git import Repo

MAX_FILE_BYTES = 20 * 1024 * 1024
PROJECT_SUFFIXES = (".yaml", ".yml", ".j2", ".jinja", ".txt", ".md", ".jsonl", ".csv", ".json")
SHALLOW_HINT = ("Fetch more history with `git fetch --deepen=200 origin <base>` or `git fetch --unshallow`; "
                "in GitHub Actions set `fetch-depth: 0` on actions/checkout")
# refs that are not a bare branch name, so never retried as origin/<ref>
_NOT_BRANCH = re.compile(r"[~^:?*\[\\\s]|@\{|\.\.|^-|^refs/|^origin/|^[0-9a-fA-F]{7,40}$|^[A-Z_]*HEAD$")
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


@dataclass(frozen=True)
class ChangeSet:
    """Paths (POSIX, repo-relative) that differ between `base` and `head` (None = the working tree).

    A rename counts as a deletion of the old path plus an addition of the new one.
    """

    base: str
    head: str | None
    modified: frozenset[str] = frozenset()
    added: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()

    @property
    def changed(self) -> frozenset[str]:
        return self.modified | self.added | self.deleted

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "head": self.head, "modified": sorted(self.modified),
                "added": sorted(self.added), "deleted": sorted(self.deleted)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChangeSet":
        return cls(data["base"], data.get("head"), frozenset(data.get("modified", ())),
                   frozenset(data.get("added", ())), frozenset(data.get("deleted", ())))


@dataclass(frozen=True)
class CommitInfo:
    """Who made a commit, and its message (`commit_info`)."""

    sha: str
    author: tuple[str, str]              # (name, email)
    committer: tuple[str, str]
    message: str


# --- opening and the error boundary -------------------------------------------------------------

def _git_module():
    try:
        import git
    except ImportError as exc:  # GitPython raises ImportError when the git executable is missing
        raise GitError(f"git is not usable: {exc}. Install git and make sure it is on PATH.") from None
    return git


def _redact(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def _dubious(where: Path | str) -> GitError:
    return GitError(
        f"git refuses to use the repository at {where}: it is owned by another user ('dubious ownership'). "
        f"If you trust it, run `git config --global --add safe.directory {where}` "
        "(in a container, run that before gpo-action)")


def _run(repo: "Repo", args: Iterable[str], env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run `git <args>` in the working tree (or git dir); (exit status, stdout, stderr without hints)."""
    git = _git_module()
    try:
        status, out, err = repo.git.execute(
            ["git", *args], with_extended_output=True, with_exceptions=False,
            env={"GIT_LITERAL_PATHSPECS": "1", "GIT_TERMINAL_PROMPT": "0", **(env or {})})
    except git.GitCommandNotFound as exc:
        raise GitError(f"git is not usable: {exc}. Install git and make sure it is on PATH.") from None
    err = "\n".join(line for line in err.splitlines() if not line.startswith("hint:")).strip()
    if status and "dubious ownership" in err:
        raise _dubious(repo.working_tree_dir or repo.git_dir)
    return status, out, _redact(err)


def _git(repo: "Repo", *args: str, env: Mapping[str, str] | None = None, ok_codes: Iterable[int] = ()) -> str:
    """stdout of `git <args>`; a failure raises GitError, an exit status in `ok_codes` returns ''."""
    status, out, err = _run(repo, args, env)
    if status == 0:
        return out
    if status in tuple(ok_codes):
        return ""
    raise GitError(f"`git {args[0]}` failed: {err or f'exit status {status}'}")


def open_repo(path: str | os.PathLike = ".") -> "Repo":
    """The git repository holding `path`, a directory or file (parent directories are searched)."""
    git = _git_module()
    where = Path(path).absolute()
    if where.is_file():
        where = where.parent
    try:
        repo = git.Repo(where, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"not a git repository: {where} (run gpo-action inside a git checkout, "
                       "or `git init` one; in CI, check the repository out first)") from None
    try:
        status, _, err = _run(repo, ["rev-parse", "--git-dir"])
    except GitError:
        repo.close()
        raise
    if status:
        repo.close()
        raise GitError(f"cannot use the git repository at {where}: {err}")
    return repo


def repo_root(repo: "Repo") -> Path:
    """The working tree's top directory."""
    if repo.working_tree_dir is None:
        raise GitError(f"the repository at {repo.git_dir} is bare: it has no working tree")
    return Path(repo.working_tree_dir).absolute()


def head_sha(repo: "Repo") -> str:
    sha = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok_codes=(1,))
    if not sha:
        raise GitError(f"the repository at {repo_root(repo)} has no commits yet (commit something first)")
    return sha.strip()


# --- revisions ---------------------------------------------------------------------------------

def _verify(repo: "Repo", ref: str) -> str | None:
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                ok_codes=(1, 128)).strip() or None


def resolve_ref(repo: "Repo", ref: str) -> str:
    """The full commit sha of `ref`; a bare branch name missing locally falls back to `origin/<ref>`."""
    if not ref or not ref.strip() or ref.startswith("-"):
        raise GitError(f"invalid git revision {ref!r}")
    sha = _verify(repo, ref)
    if sha is None and not _NOT_BRANCH.search(ref):
        sha = _verify(repo, f"refs/remotes/origin/{ref}")
    if sha is not None:
        return sha
    known = [b for b in _git(repo, "for-each-ref", "--format=%(refname:short)", "--count=12",
                            "refs/heads", "refs/remotes").splitlines() if not b.endswith("/HEAD")]
    listed = f"; known branches: {', '.join(known)}" if known else ""
    name = ref.removeprefix("origin/")
    fetchable = not _NOT_BRANCH.search(name) or re.fullmatch(r"[0-9a-fA-F]{7,40}", name)
    tried = f"tried {ref!r} and 'origin/{ref}'" if not _NOT_BRANCH.search(ref) else f"tried {ref!r}"
    fetch = (f"Fetch it with `git fetch origin {name}`" if fetchable
             else "If it comes from the remote, fetch it first (`git fetch origin <branch>`, or `git fetch --tags origin`)")
    shallow = " (this clone is shallow and may hold only the checked-out commit)" if is_shallow(repo) else ""
    raise GitError(f"git revision {ref!r} not found ({tried}){listed}. {fetch}; "
                   f"remote branches are named origin/<name>{shallow}")


def default_branch(repo: "Repo") -> str | None:
    """The default branch: origin's HEAD when known, else the first of main, master that exists."""
    remote_head = _git(repo, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", ok_codes=(1, 128)).strip()
    if remote_head:
        return remote_head
    for name in ("main", "master", "origin/main", "origin/master"):
        if _verify(repo, name):
            return name
    return None


def is_shallow(repo: "Repo") -> bool:
    out = _git(repo, "rev-parse", "--is-shallow-repository", ok_codes=(128,)).strip()
    if out in ("true", "false"):
        return out == "true"
    return (Path(repo.common_dir) / "shallow").exists()   # git older than 2.15


def merge_base(repo: "Repo", base_ref: str, head_sha: str) -> str:
    """The best common ancestor of `base_ref` and `head_sha` (both resolved with `resolve_ref`)."""
    base, head = resolve_ref(repo, base_ref), resolve_ref(repo, head_sha)
    found = _git(repo, "merge-base", base, head, ok_codes=(1,)).strip()
    if found:
        return found.splitlines()[0]
    pair = f"{base_ref!r} and {head[:12] if head.startswith(head_sha) else repr(head_sha)}"
    if is_shallow(repo):
        hint = SHALLOW_HINT.replace("<base>", base_ref.removeprefix("origin/"))
        raise GitError(f"no merge-base of {pair} in this shallow clone: the history that joins them "
                       f"was not fetched. {hint}")
    raise GitError(f"{pair} have no common ancestor (unrelated histories); "
                   "pass a base that shares history with the head, e.g. --base HEAD~1")


# --- what changed ------------------------------------------------------------------------------

def _z(out: str) -> list[str]:
    return [p for p in out.split("\0") if p]


def changed_files(repo: "Repo", base_sha: str, head_sha: str | None = None) -> ChangeSet:
    """Paths that differ between `base_sha` and `head_sha`; head None = the working tree
    (tracked changes, staged or not, plus untracked files that are not ignored)."""
    base = resolve_ref(repo, base_sha)
    head = resolve_ref(repo, head_sha) if head_sha is not None else None
    if head is None:
        repo_root(repo)   # a bare repository has no working tree to compare
    args = ["diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", "--ignore-submodules=dirty", base]
    out = _z(_git(repo, *args, *([head] if head else []), "--"))
    buckets: dict[str, set[str]] = {"A": set(), "D": set(), "M": set()}
    for status, path in zip(out[::2], out[1::2]):
        buckets.get(status[:1], buckets["M"]).add(path)     # M, T (type change), U (unmerged) -> modified
    if head is None:
        for path in _z(_git(repo, "ls-files", "--others", "--exclude-standard", "-z")):
            if path in buckets["D"]:    # untracked again (`git rm --cached`): compare with base
                buckets["D"].discard(path)
                if _git(repo, "hash-object", "--", path).strip() != _blob_sha(repo, base, path):
                    buckets["M"].add(path)
            else:
                buckets["A"].add(path)
    return ChangeSet(base, head, frozenset(buckets["M"]), frozenset(buckets["A"]), frozenset(buckets["D"]))


def renamed_files(repo: "Repo", base_sha: str, head_sha: str | None = None) -> dict[str, str]:
    """Old path -> new path of each file that git's rename detection (`-M`, 50% similar) pairs
    between `base_sha` and `head_sha` (None = the working tree's tracked files, staged or not)."""
    base = resolve_ref(repo, base_sha)
    head = resolve_ref(repo, head_sha) if head_sha is not None else None
    out = _z(_git(repo, "diff", "--name-status", "-z", "-M", "--no-ext-diff", "--ignore-submodules=dirty", base,
                  *([head] if head else []), "--"))
    renames: dict[str, str] = {}
    i = 0
    while i < len(out):
        status = out[i]
        if status[:1] in ("R", "C"):             # status, old path, new path
            if status[:1] == "R" and i + 2 < len(out):
                renames[out[i + 1]] = out[i + 2]
            i += 3
        else:
            i += 2
    return renames


# --- contents at a revision --------------------------------------------------------------------

def _clean(path: str | os.PathLike) -> str:
    text = Path(path).as_posix() if not isinstance(path, str) else path.replace("\\", "/")
    parts = [p for p in PurePosixPath(text).parts if p not in (".", "")]
    if text.startswith("/") or ".." in parts:
        raise GitError(f"{path}: expected a path relative to the repository root, inside it")
    return "/".join(parts) or "."


def _blob_sha(repo: "Repo", sha: str, path: str) -> str | None:
    out = _z(_git(repo, "ls-tree", "-z", "--full-tree", sha, "--", path))
    return out[0].split("\t", 1)[0].split()[2] if out else None


def read_file(repo: "Repo", sha: str, path: str | os.PathLike) -> str | None:
    """The text of `path` (repo-relative) at revision `sha`, or None when it is absent there."""
    rel = _clean(path)
    commit = resolve_ref(repo, sha)
    if rel == ".":
        raise GitError("read_file needs a file path, got the repository root")
    out = _z(_git(repo, "ls-tree", "-z", "--long", "--full-tree", commit, "--", rel))
    if not out:
        return None
    mode, kind, blob, size = out[0].split("\t", 1)[0].split()
    if kind != "blob":
        raise GitError(f"{rel} is a {'directory' if kind == 'tree' else kind} at {commit[:12]}, not a file")
    if int(size) > MAX_FILE_BYTES:
        raise GitError(f"{rel} at {commit[:12]} is {int(size) / 1e6:.1f} MB, over the "
                       f"{MAX_FILE_BYTES // (1024 * 1024)} MB limit")
    return _decode(_blob_bytes(repo, blob), rel, commit)


def _blob_bytes(repo: "Repo", blob: str) -> bytes:
    try:
        return repo.git.get_object_data(blob)[3]   # the repository's persistent `cat-file --batch`
    except (ValueError, OSError) as exc:
        raise GitError(f"cannot read git object {blob}: {exc}") from None


def _decode(data: bytes, rel: str, commit: str) -> str:
    if b"\0" in data:
        raise GitError(f"{rel} at {commit[:12]} is a binary file; expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GitError(f"{rel} at {commit[:12]} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


# --- paths -------------------------------------------------------------------------------------

def to_repo_path(repo: "Repo", path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """`path` (absolute, or relative to `base`, default the current directory) as a POSIX path
    relative to the repository root ("." for the root itself)."""
    root = repo_root(repo)
    given = Path(path)
    full = given if given.is_absolute() else Path(base or Path.cwd()).absolute() / given
    full = Path(os.path.normpath(full))
    # as given first, then with directory symlinks resolved (a symlinked file itself is kept)
    for top, candidate in ((root, full), (root.resolve(), full.parent.resolve() / full.name)):
        if candidate == top:
            return "."
        if candidate.is_relative_to(top):
            return candidate.relative_to(top).as_posix()
    raise GitError(f"{full} is outside the git repository at {root}")


def from_repo_path(repo: "Repo", rel: str) -> Path:
    """The filesystem path of a repo-relative POSIX path."""
    clean = _clean(rel)
    root = repo_root(repo)
    return root if clean == "." else root.joinpath(*clean.split("/"))


# --- commits (delivery reads them; gitcommits.py writes them) -----------------------------------

def commit_message(repo: "Repo", rev: str) -> str | None:
    """The full message of commit `rev`, or None when the revision is not in this clone."""
    sha = _verify(repo, rev) if rev and not rev.startswith("-") else None
    return None if sha is None else _git(repo, "log", "-1", "--format=%B", sha)


def commit_info(repo: "Repo", rev: str) -> CommitInfo | None:
    """The author, committer and message of commit `rev`, or None when it is not in this clone."""
    sha = _verify(repo, rev) if rev and not rev.startswith("-") else None
    if sha is None:
        return None
    fields = _git(repo, "log", "-1", "--format=%an%x00%ae%x00%cn%x00%ce%x00%B", sha).split("\0", 4)
    if len(fields) < 5:
        raise GitError(f"cannot read commit {sha[:12]}")
    return CommitInfo(sha, (fields[0], fields[1]), (fields[2], fields[3]), fields[4])


def diff_patch(repo: "Repo", base_sha: str, head_sha: str | None, path: str) -> str | None:
    """The unified diff hunks (3 lines of context, no ---/+++ header) of `path` between two revisions
    (head None = the working tree), as GitHub gives a pull request file's `patch`; None when unchanged."""
    rel = _clean(path)
    revs = [resolve_ref(repo, base_sha)] + ([resolve_ref(repo, head_sha)] if head_sha else [])
    out = _git(repo, "diff", "--no-color", "--no-ext-diff", "-U3", *revs, "--", rel)
    lines = out.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("@@")), None)
    return None if start is None else "\n".join(lines[start:]).rstrip("\n")


__all__ = [
    "MAX_FILE_BYTES",
    "PROJECT_SUFFIXES",
    "ChangeSet",
    "CommitInfo",
    "changed_files",
    "commit_info",
    "commit_message",
    "diff_patch",
    "from_repo_path",
    "head_sha",
    "is_shallow",
    "merge_base",
    "open_repo",
    "read_file",
    "renamed_files",
    "repo_root",
    "resolve_ref",
    "to_repo_path",
]
