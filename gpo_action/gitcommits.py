"""The write side of git: the commit gpo-action makes and its push, each one git command line
through `gitrepo`'s runner (so a failure is one `GitError` with a hint, credentials redacted).

    sha = commit_files(repo, pull_head_sha, {"prompts/triage.j2": text}, message, name, email)
    push(repo, "origin", "feature", rev=sha)                 # never forced

`commit_files` uses git's plumbing on a temporary index: the working tree, the index and every ref
stay as they are. Reading (what changed, file contents, commit metadata) is `gitrepo.py`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

from gpo_action.errors import GitError
from gpo_action.files import write_atomic
from gpo_action.gitrepo import _clean, _git, _run, _z, resolve_ref  # the one runner and path check
from gpo_action.secrets import scrub

if TYPE_CHECKING:  # pragma: no cover
    from git import Repo


def commit_files(repo: "Repo", parent: str, files: Mapping[str, str], message: str,
                 author_name: str, author_email: str) -> str:
    """A new commit whose parent is `parent` and whose tree is `parent`'s with `files` (repo-relative
    path -> text) replaced, made with git's plumbing: the working tree, the index and every ref are
    left alone (so it works on the merge checkout of a pull request). Returns the commit's sha; push
    it with `push(repo, remote, branch, rev=sha)`. A path's file mode is kept."""
    import tempfile

    base = resolve_ref(repo, parent)
    if not files:
        raise GitError("commit_files needs at least one file")
    ident = {"GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email,
             "GIT_COMMITTER_NAME": author_name, "GIT_COMMITTER_EMAIL": author_email}
    with tempfile.TemporaryDirectory(prefix="gpo-commit-") as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git(repo, "read-tree", base, env=index)
        for number, (path, text) in enumerate(sorted(files.items())):
            rel = _clean(path)
            entry = _z(_git(repo, "ls-tree", "-z", "--full-tree", base, "--", rel))
            mode = entry[0].split()[0] if entry else "100644"
            source = os.path.join(tmp, f"blob{number}")
            write_atomic(source, text)  # scrubbed, as every file we write
            blob = _git(repo, "hash-object", "-w", "--no-filters", "--", source).strip()
            _git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{rel}", env=index)
        tree = _git(repo, "write-tree", env=index).strip()
    if tree == _git(repo, "rev-parse", f"{base}^{{tree}}").strip():
        raise GitError(f"nothing to commit: the files already have this content at {base[:12]}")
    return _git(repo, "commit-tree", tree, "-p", base, "-m", scrub(message), env=ident).strip()


def push(repo: "Repo", remote: str, branch: str, rev: str = "HEAD") -> None:
    """Push `rev` (default HEAD; works from a detached HEAD, as in CI checkouts) to `branch` on
    `remote`, never forced."""
    if not remote or not branch or remote.startswith("-") or branch.startswith("-") or rev.startswith("-"):
        raise GitError(f"invalid push target: remote {remote!r}, branch {branch!r}")
    status, _, err = _run(repo, ["push", remote, f"{rev}:refs/heads/{branch}"])
    if status == 0:
        return
    err = "; ".join(line.strip() for line in err.splitlines() if line.strip() and not line.startswith("To "))
    hint = ""
    if "rejected" in err or "fetch first" in err:
        hint = f" The remote branch has commits this clone lacks: fetch and rebase onto {remote}/{branch}, then push again."
    elif any(word in err.lower() for word in ("authentication", "permission", "403", "could not read username")):
        hint = " Check the credentials and the token's permissions (GitHub Actions needs `contents: write`)."
    raise GitError(f"push of HEAD to branch {branch!r} on remote {remote!r} failed: "
                   f"{err.rstrip('.') or f'exit status {status}'}.{hint}")


__all__ = ["commit_files", "push"]
