"""Case files: the `.jsonl` and `.csv` files a suite names with `cases: [{file: ...}]`.

The readers turn a file into `CaseRecord`s, lazily and in file order: the line a case starts on and
the case as a mapping in the structured form (`id`, `description`, `vars`, `expected`, `assert`).
Checking a record against the suite schema (`suites.CaseSpec`) is left to `suites`; this module only
knows the file formats, and raises `SuiteError` with the file and line when one is malformed.

JSONL: one JSON object per line, blank lines skipped. A record whose `vars` is a mapping is taken
as written; otherwise it is flat: `id`, `expected`, `assert` and `description` keep their meaning
and every other key is a var.

CSV: the header names the columns. `id`, `expected` and `description` (or `__description`) are
what they say; `__expected` (and `__expected1`, `__expected2`, ...) hold promptfoo's assertion
shorthand (`contains:x`, `regex:...`, `grade:...`, a plain value = equals; `gpo_action.expected`),
each cell one assertion of its row, never a literal; any other `__` column is refused; the rest
are vars (strings).
A row's line is the line it starts on (a quoted cell may span lines).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from gpo_action.containment import Origin, contain, contain_glob, tree_root
from gpo_action.errors import SuiteError
from gpo_action.expected import parse_expected
from gpo_action.yamlsource import decode_utf8

CASE_FILE_SUFFIXES = (".jsonl", ".csv")
MAX_DEPTH = 100  # JSON nesting a case record may have (deeper data would overflow the stack later on)

_EXPECTED_COLUMN = re.compile(r"^__expected\d*$")   # promptfoo's shorthand columns: __expected, __expected2, ...
_RESERVED = frozenset({"id", "expected", "assert", "description"})   # JSONL keys that are not vars


@dataclass(frozen=True)
class CaseRecord:
    """One case as read from a case file, not yet checked against the suite schema."""

    line: int
    data: dict[str, Any]


def find_case_files(pattern: str, base: Path, tree: str | os.PathLike | None = None,
                    origin: Origin | None = None) -> list[Path]:
    """The files `pattern` names, relative to `base`: a glob sorted by POSIX path, or one existing file.

    Every path stays inside `tree` (default: the repository holding `base`, see `containment`);
    a violation raises `origin.error` (default SuiteError) naming `origin`'s file, line and key."""
    tree = tree if tree is not None else tree_root(base)
    origin = origin or Origin(None, None, "file", SuiteError)
    if glob.has_magic(pattern):
        return contain_glob(pattern, base, tree, origin)
    path = base / pattern
    return [path] if contain(pattern, base, tree, origin).is_file() else []


def read_case_file(path: Path, shown: str) -> Iterator[CaseRecord]:
    """The records of a `.jsonl` or `.csv` file; `shown` is the path used in messages."""
    yield from case_records(read_case_bytes(path, shown), path.suffix, shown)


def read_case_bytes(path: Path, shown: str) -> bytes:
    """The bytes of a `.jsonl` or `.csv` case file; a SuiteError naming `shown` for another suffix or
    a failed read."""
    if path.suffix.lower() not in CASE_FILE_SUFFIXES:
        raise SuiteError(f"cannot read {path.name!r} as cases", shown, hint="case files are .jsonl or .csv")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"cannot read the case file: {exc.strerror or exc}", shown) from None


def case_records(raw: bytes, suffix: str, shown: str) -> Iterator[CaseRecord]:
    """The records in the bytes of a case file with `suffix` (".jsonl", else CSV)."""
    text = decode_utf8(raw, shown, SuiteError)
    yield from read_jsonl(text, shown) if suffix.lower() == ".jsonl" else read_csv(text, shown)


def read_jsonl(text: str, shown: str) -> Iterator[CaseRecord]:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"invalid JSON: {exc.msg} (column {exc.colno})", shown, number) from None
        except RecursionError:
            raise _too_deep(shown, number) from None
        # each container nests inside one more `{` or `[` of the line: with no more of them than
        # MAX_DEPTH it cannot nest deeper, and the walk is left out (a 10,000-case file's lines)
        if line.count("{") + line.count("[") > MAX_DEPTH and _depth(record) > MAX_DEPTH:
            raise _too_deep(shown, number)
        if not isinstance(record, dict):
            raise SuiteError(f"each line must be a JSON object, found {type(record).__name__}", shown, number)
        if not isinstance(record.get("vars"), dict):  # flat (a non-mapping `vars` is then a variable too)
            record = {
                **{k: record[k] for k in _RESERVED if k in record},
                "vars": {k: v for k, v in record.items() if k not in _RESERVED},
            }
        yield CaseRecord(number, record)


def _too_deep(shown: str, line: int) -> SuiteError:
    return SuiteError(f"the record is nested more than {MAX_DEPTH} levels deep", shown, line, hint="flatten the case's vars")


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: the value may be hostile)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_csv(text: str, shown: str) -> Iterator[CaseRecord]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = [name.strip() for name in header]
        roles = _csv_roles(columns, shown)
        last = reader.line_num
        for row in reader:
            start, last = last + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(columns):
                raise SuiteError(f"row has {len(row)} fields, the header has {len(columns)}", shown, start)
            values: dict[str, Any] = {}
            case_id = expected = None
            description = ""
            asserts: list[dict[str, Any]] = []
            for name, role, cell in zip(columns, roles, row):
                if role == "var":
                    values[name] = cell
                elif role == "id":
                    case_id = cell.strip() or None
                elif role == "expected":
                    expected = cell if cell != "" else None
                elif role == "shorthand":
                    asserts.extend(_shorthand(cell, name, shown, start))
                else:
                    description = cell
            record = {"id": case_id, "description": description, "vars": values, "expected": expected}
            if asserts:
                record["assert"] = asserts
            yield CaseRecord(start, record)
    except csv.Error as exc:
        raise SuiteError(f"malformed CSV: {exc}", shown, reader.line_num or None) from None


def _csv_roles(columns: list[str], shown: str) -> list[str]:
    roles = []
    for name in columns:
        if not name:
            raise SuiteError("the header has an empty column name", shown, 1)
        if columns.count(name) > 1:
            raise SuiteError(f"column {name!r} appears twice in the header", shown, 1)
        if name == "id":
            roles.append("id")
        elif name == "expected":
            roles.append("expected")
        elif _EXPECTED_COLUMN.match(name):
            roles.append("shorthand")
        elif name in ("description", "__description"):
            roles.append("description")
        elif name.startswith("__"):
            raise SuiteError(f"column {name!r} is not supported", shown, 1,
                             hint="columns are vars, plus id, expected, __expected (promptfoo's shorthand) and description")
        else:
            roles.append("var")
    return roles


def _shorthand(cell: str, column: str, shown: str, line: int) -> list[dict[str, Any]]:
    """A `__expected` cell as promptfoo reads it (`expected.parse_expected`), never as a literal."""
    parsed = parse_expected(cell)
    if parsed.refused:
        raise SuiteError(f"column {column}: {parsed.refused}", shown, line,
                         hint="use a declarative type (contains:, regex:, grade:, ...) or a plain value (equals)")
    return [parsed.assertion] if parsed.assertion is not None else []


__all__ = ["CASE_FILE_SUFFIXES", "MAX_DEPTH", "CaseRecord", "case_records", "find_case_files", "read_case_bytes",
           "read_case_file", "read_csv", "read_jsonl"]
