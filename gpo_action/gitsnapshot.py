"""A revision's project written to a directory, so the normal loaders can read it "as of" that
revision (the base's snapshot): only project files (`gitrepo.PROJECT_SUFFIXES`), each under the
size limit, no symlinks, no unsafe paths; read from git objects through `gitrepo`'s runner
(nothing is checked out). Reading a single file at a revision is `gitrepo.read_file`.

    snap = materialize(repo, base, "proj", tmp_dir)        # load the project "as of base"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterable

from gpo_action.errors import GitError
from gpo_action.gitrepo import (MAX_FILE_BYTES, PROJECT_SUFFIXES, _blob_bytes, _clean, _git, _z,  # the one runner
                                resolve_ref)

if TYPE_CHECKING:  # pragma: no cover
    from git import Repo


@dataclass(frozen=True)
class Snapshot:
    """What `materialize` wrote: `root` (= dest) holds `files` (repo-relative paths) at `sha`.

    `skipped` lists repo-relative paths left out (over the size limit, or symlinks), `notes` says why.
    An empty `files` with no `skipped` means the subdirectory did not exist at that revision.
    """

    root: Path
    sha: str
    files: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def materialize(repo: "Repo", sha: str, subdir: str | os.PathLike, dest: str | os.PathLike,
                suffixes: Iterable[str] = PROJECT_SUFFIXES, *, max_bytes: int = MAX_FILE_BYTES) -> Snapshot:
    """Write the files under `subdir` (repo-relative; "." = all) at revision `sha` into `dest`,
    keeping their paths relative to `subdir`, so a project can be loaded "as of" `sha` with the
    normal loaders. Only names ending in one of `suffixes` are written; files over `max_bytes`
    and symlinks are skipped (see `Snapshot.skipped`). `dest` must be missing or empty."""
    commit = resolve_ref(repo, sha)
    sub = _clean(subdir)
    target = Path(dest).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"materialize needs a missing or empty directory, got {target}")
    target.mkdir(parents=True, exist_ok=True)
    ends = tuple(s.lower() for s in suffixes)
    spec = [] if sub == "." else [f"{sub}/"]
    if sub != ".":
        kind = _z(_git(repo, "ls-tree", "-z", "--full-tree", commit, "--", sub))
        if kind and kind[0].split()[1] != "tree":
            raise GitError(f"{sub} is not a directory at {commit[:12]}")
    written, skipped, notes = [], [], []
    for entry in _z(_git(repo, "ls-tree", "-r", "-z", "--long", "--full-tree", commit, "--", *spec)):
        meta, path = entry.split("\t", 1)
        mode, kind, blob, size = meta.split()
        if kind != "blob" or not path.lower().endswith(ends):
            continue
        if mode == "120000":
            skipped.append(path)
            notes.append(f"skipped {path}: a symlink")
            continue
        if int(size) > max_bytes:
            skipped.append(path)
            notes.append(f"skipped {path}: {int(size) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
            continue
        rel = PurePosixPath(path) if sub == "." else PurePosixPath(path).relative_to(sub)
        out = target.joinpath(*rel.parts)
        if ".." in rel.parts or ".git" in rel.parts:   # git forbids these; refuse a crafted tree anyway
            skipped.append(path)
            notes.append(f"skipped {path}: unsafe path")
            continue
        _write_bytes(out, _blob_bytes(repo, blob), executable=mode == "100755")
        written.append(path)
    return Snapshot(target, commit, tuple(written), tuple(skipped), tuple(notes))


def _write_bytes(path: Path, data: bytes, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    if executable:
        tmp.chmod(0o755)
    os.replace(tmp, path)
