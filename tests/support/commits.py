"""`commit_file`: a test's own commit of one file, made with the git CLI (gpo-action itself only
commits through `gitrepo.commit_files`, which leaves the working tree, the index and refs alone)."""

from __future__ import annotations

import os
import subprocess

from gpo_action.errors import GitError
from gpo_action.gitrepo import head_sha, repo_root, to_repo_path


def commit_file(repo, path: str | os.PathLike, text: str, message: str, author_name: str, author_email: str) -> str:
    """Write `text` to `path` (repo-relative, or absolute inside the repository) and commit that
    file alone (other staged changes stay staged), hooks not run, with one identity as author and
    committer. Returns the new commit's sha; GitError when the file already has this content."""
    root = repo_root(repo)
    rel = to_repo_path(repo, path, base=root)
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email,
           "GIT_COMMITTER_NAME": author_name, "GIT_COMMITTER_EMAIL": author_email}

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    git("add", "--", rel)
    if not git("diff", "--cached", "--name-only", "HEAD", "--", rel).strip():
        raise GitError(f"nothing to commit: {rel} already has this content at HEAD")
    git("commit", "-q", "--no-verify", "--only", "-m", message, "--", rel)
    return head_sha(repo)
