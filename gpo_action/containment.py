"""Containment: every path an input names stays inside the tree it came from.

A pull request is hostile input (style rule 11): gpo.yaml, its suite files and their case files
may name any path, so each loader passes the path through `contain` before it reads (or writes)
anything there. A path is contained when

- its real path (every symlink resolved, the way the OS will resolve it) lies inside the tree,
  so neither an absolute path, nor `../` past the top, nor a symlink that leads out is accepted;
- no part of it is `.git` (git's own files: the config holds the checkout's credential);
- where a file is expected and it exists, it is a regular file (no FIFO, device or directory).

A symlink that stays inside the tree is followed: it reads nothing the tree does not hold.

The tree (`tree_root`) is the working tree of the git repository holding the project, found by
walking up from the config root to the first directory with a `.git` entry, so a project in a
subdirectory may name files up to the repository's top (`prompt: ../shared/x.j2`). Outside any
repository (a Config built in code, a plain directory) the tree is the config root itself. The
base revision is loaded from its snapshot directory (`gitsnapshot.materialize`), which is its tree.

A violation raises the loader's own InputError subclass, naming the file, the line and the key,
before the path is opened; the message quotes the path as written, never what lies there.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from gpo_action.errors import InputError

GIT_DIR = ".git"
Expect = Literal["file", "dir", "any"]


@dataclass(frozen=True)
class Origin:
    """Where a path was written, for the error: the file as shown, its line and the key."""

    shown: str | None
    line: int | None
    key: str                                  # "" when the path is not a setting (the config file itself)
    error: type[InputError] = InputError

    @property
    def prefix(self) -> str:
        return f"{self.key}: " if self.key else ""


def tree_root(start: str | os.PathLike) -> Path:
    """The containment root for a project at `start`: the top of the git working tree holding it
    (the first directory upwards with a `.git` entry), else `start` itself; symlinks resolved."""
    here = Path(os.path.realpath(start))
    for directory in (here, *here.parents):
        if os.path.lexists(directory / GIT_DIR):
            return directory
    return here


def tree_name(tree: Path) -> str:
    """How messages call the tree."""
    return "repository" if os.path.lexists(Path(tree) / GIT_DIR) else "project directory"


def contain(value: str | os.PathLike, base: str | os.PathLike, tree: str | os.PathLike, origin: Origin, *,
            expect: Expect = "file", subject: str | None = None) -> Path:
    """The real path of `value` (relative to `base`, or absolute) once it passes the module's rules;
    a path that does not exist yet passes when its place does. `subject` replaces the quoted value
    at the start of the message (a glob names its pattern and the match)."""
    top = Path(os.path.realpath(tree))
    real = Path(os.path.realpath(os.path.join(base, value)))
    what = subject or repr(os.fspath(value))

    def refuse(problem: str, hint: str) -> InputError:
        return origin.error(f"{origin.prefix}{what} {problem}", origin.shown, origin.line, hint=hint)

    name = tree_name(top)
    if not real.is_relative_to(top):
        lexical = Path(os.path.normpath(os.path.join(os.path.realpath(base), value)))
        how = "lies outside" if not lexical.is_relative_to(top) else "is a symlink that leads outside"
        raise refuse(f"{how} the {name}", f"paths must stay inside the {name}'s working tree"
                     if name == "repository" else "paths must stay inside the directory of gpo.yaml")
    if any(part.lower() == GIT_DIR for part in real.relative_to(top).parts):
        raise refuse("lies inside .git/", "git's own files are never read or written")
    if expect != "any":
        try:
            mode = os.stat(real).st_mode
        except OSError as exc:  # missing, or its folder is a file: the reader reports that its own way
            if exc.errno == errno.ELOOP:
                raise refuse("is a symlink loop", "name a file, not a link to itself") from None
            return real
        if expect == "file" and not stat.S_ISREG(mode):
            raise refuse("is not a regular file", "name a file, not a directory, device or pipe")
        if expect == "dir" and not stat.S_ISDIR(mode):
            raise refuse("is not a directory", "remove what is in the way")
    return real


def contain_glob(pattern: str, base: str | os.PathLike, tree: str | os.PathLike, origin: Origin) -> list[Path]:
    """The regular files `pattern` (a glob relative to `base`) matches, as `base / match`, sorted by
    POSIX path; the pattern and every match checked by `contain`.

    `..` may come only before the first wildcard, whose fixed prefix must lie inside the tree; a
    recursive `**` refuses a directory symlink under that prefix that leads out of the tree or back
    onto its own parent (glob would follow it, listing what lies outside or looping)."""
    parts = PurePath(pattern).parts
    first = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    if ".." in parts[first:]:
        raise origin.error(f"{origin.prefix}{pattern!r} has '..' after a wildcard", origin.shown, origin.line,
                           hint="a glob may go up only before its first wildcard, and never out of the tree")
    prefix = os.path.join(*parts[:first]) if first else "."
    contain(prefix, base, tree, origin, expect="any", subject=repr(pattern))
    if "**" in pattern:
        _check_recursion(Path(base) / prefix, pattern, tree, origin)
    found = sorted(glob.glob(pattern, root_dir=base, recursive=True), key=lambda p: Path(p).as_posix())
    files = []
    for match in found:
        subject = f"{pattern!r} matched {Path(match).as_posix()!r}, which"
        real = contain(match, base, tree, origin, expect="any", subject=subject)
        if real.is_file():
            files.append(Path(base) / match)
    return files


def _check_recursion(start: Path, pattern: str, tree: str | os.PathLike, origin: Origin) -> None:
    """Refuse a directory symlink under `start` that `**` would follow out of the tree or into a loop
    (walked without following links; hidden names skipped, as glob's `**` skips them)."""
    top = Path(os.path.realpath(tree))
    for directory, dirs, _files in os.walk(start, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs:
            link = Path(directory) / name
            if not link.is_symlink():
                continue
            real = Path(os.path.realpath(link))
            where = Path(os.path.relpath(link, start)).as_posix()
            if not real.is_relative_to(top):
                problem = "which leads outside the " + tree_name(top)
            elif Path(os.path.realpath(directory)).is_relative_to(real):
                problem = "which loops back onto its own parent"
            else:
                continue
            raise origin.error(f"{origin.prefix}{pattern!r} would follow the directory symlink {where!r}, {problem}",
                               origin.shown, origin.line, hint="recursive globs do not leave the tree")


__all__ = ["GIT_DIR", "Origin", "contain", "contain_glob", "tree_name", "tree_root"]
