"""A response cache the pull request's checkout planted: found by git and taken out of the working tree.

    removed = remove_planted_cache(cache_path, base_sha)      # repo-relative paths, [] when none

The cache is keyed by what a request asks (model, messages, params: all public in the base's
gpo.yaml), so a pull request could commit the answers its own prompt is judged by: the cache file,
a sqlite file beside it (`-wal`, `-shm`, `-journal`: sqlite applies a `-wal` to the database it
opens), or a symlink on the way to it (`.gpo` committed as a link to a directory of its own).
Found by what the head changes against the base, never by content (the workflow's cache restore
may have written over the file). Removed, not only left unread: the workflow's `actions/cache`
saves the directory after the job, and a later run restoring that entry would take the file for
the tool's own. With one planted, every sqlite file of the cache goes (a database and its `-wal`
belong together), and the run is uncached (`pr_pipeline`), so the tool writes none back.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Mapping

from gpo_action import gitrepo
from gpo_action.config import CACHE_FILE_SUFFIXES, CONFIG_FILE, CacheSettings
from gpo_action.errors import GpoError


def planted_cache(repo, cache_path: str | os.PathLike, base_sha: str) -> list[str]:
    """The repo-relative paths the checkout's HEAD adds or changes against `base_sha` that are the
    cache file, a sqlite file beside it, or a directory on the way to it (a committed symlink)."""
    rel = gitrepo.to_repo_path(repo, Path(cache_path).absolute())
    names = {rel + suffix for suffix in CACHE_FILE_SUFFIXES}
    names |= {str(parent) for parent in PurePosixPath(rel).parents if str(parent) != "."}
    changed = gitrepo.changed_files(repo, base_sha, gitrepo.head_sha(repo))
    return sorted(p for p in changed.modified | changed.added if p in names)


def remove_planted_cache(cache_path: str | os.PathLike, base_sha: str) -> list[str]:
    """Remove what `planted_cache` finds, and the cache's other sqlite files, from the working
    tree (a symlink itself, never what it points to); return the planted paths."""
    path = Path(cache_path).absolute()
    anchor = next((p for p in path.parents if p.is_dir() and not p.is_symlink()), Path("."))   # not through a link
    with gitrepo.open_repo(anchor) as repo:
        planted = planted_cache(repo, path, base_sha)
        if not planted:
            return []
        links = [gitrepo.from_repo_path(repo, p) for p in planted]
    for link in sorted(links, key=lambda p: len(p.parts), reverse=True):    # the file before a linked directory
        if link.is_symlink() or link.is_file():
            link.unlink()
    for suffix in CACHE_FILE_SUFFIXES:
        beside = Path(f"{path}{suffix}")
        if beside.is_symlink() or beside.is_file():
            beside.unlink()
    return planted


def remove_for_base(config_file: str | os.PathLike | None, base_sha: str, env: Mapping[str, str]) -> list[str]:
    """`remove_planted_cache` at the cache path of the base's gpo.yaml (the default path when the
    base has none), before anything else of a run: a command refused early still leaves no
    planted cache for the job's cache save. Git failures mean nothing was removed ([])."""
    from gpo_action.policy import load_base_config

    config = Path(config_file or CONFIG_FILE).absolute()
    try:
        base, _ = load_base_config(config.parent, base_sha, config, env=env)
        cache = base.cache.path if base is not None else CacheSettings().path
        return remove_planted_cache(config.parent / cache, base_sha)
    except GpoError:
        return []
