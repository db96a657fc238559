"""Reading a promptfoo project: its config, the files it names (`file://`, globs), inside its tree,
and the list of what could not be converted (`Notes`)."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpo_action.containment import Origin, contain, contain_glob, tree_root
from gpo_action.errors import InputError
from gpo_action.suites import display_path
from gpo_action.yamlsource import YamlDoc, decode_utf8, parse_yaml

FILE = "file://"
CODE_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts", ".py")


@dataclass(frozen=True)
class Note:
    """One thing not converted: where it was written, what it is, why it was left out."""

    file: str
    line: int | None
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}" if self.line else f"{self.file}: {self.what}"


@dataclass
class Project:
    """The promptfoo config being imported: its directory, the tree its paths stay inside, the notes."""

    config: Path
    tree: Path
    notes: list[Note] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)   # Nunjucks constructs rewritten for Jinja2

    @classmethod
    def at(cls, config: Path) -> "Project":
        return cls(config, tree_root(config.parent))

    @property
    def base(self) -> Path:
        return self.config.parent

    def shown(self, path: Path) -> str:
        return display_path(path, self.base)

    def note(self, file: str, line: int | None, what: str) -> None:
        self.notes.append(Note(file, line, what))

    def files(self, ref: str, origin_file: str, line: int | None, base: Path | None = None) -> list[Path]:
        """The files a `file://` reference (a path or a glob; a `:function` suffix cut) names."""
        path = ref[len(FILE):] if ref.startswith(FILE) else ref
        origin = Origin(origin_file, line, "", InputError)
        base = base or self.base
        if glob.has_magic(path):
            return contain_glob(path, base, self.tree, origin)
        contain(path, base, self.tree, origin)
        if not (base / path).is_file():
            raise InputError(f"{ref!r}: file not found", origin_file, line)
        return [base / path]

    def text(self, path: Path) -> str:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror or exc}", self.shown(path)) from None
        return decode_utf8(raw, self.shown(path), InputError)

    def yaml(self, path: Path) -> YamlDoc:
        """A YAML or JSON file (JSON is read as YAML, for its line numbers)."""
        return parse_yaml(self.text(path), self.shown(path), error=InputError)


def is_code(ref: str) -> bool:
    """A reference to a script (`file://x.py:fn`, `file://gen.js`)."""
    path = ref[len(FILE):] if ref.startswith(FILE) else ref
    return Path(path.split(":", 1)[0]).suffix.lower() in CODE_SUFFIXES


def jsonl_rows(text: str, shown: str) -> list[tuple[int, Any]]:
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", shown, number) from None
    return rows


def csv_rows(text: str, shown: str) -> list[tuple[int, dict[str, str]]]:
    """Rows as {column: cell} with the line each starts on (the header trimmed, as promptfoo does)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        rows, last = [], reader.line_num
        for row in reader:
            start, last = last + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise InputError(f"row has {len(row)} fields, the header has {len(header)}", shown, start)
            rows.append((start, dict(zip(header, row))))
        return rows
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", shown, reader.line_num or None) from None


def relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()
