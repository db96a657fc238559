"""`file://` references in suites: a case var, an `expected` or an assertion value whose string
starts with `file://` is read from that file when the suite loads, as promptfoo reads it. Never a
silent literal: a reference that cannot be read is a `SuiteError` with the file and line.

    vars: {doc: file://docs/refund.txt}      -> the file's text, trimmed (JavaScript's trim)
    vars: {cfg: file://fixtures/order.yaml}  -> its data as compact JSON text (promptfoo's rule)
    assert: [{type: equals, value: file://golden.json}]   -> .json/.yaml/.yml parsed, .txt trimmed

A var may name any file with a project suffix (`gitrepo.PROJECT_SUFFIXES`: the files a base
snapshot holds), read as text unless it is YAML; a value or `expected` only .txt, .json, .yaml and
.yml (promptfoo refuses other types there). Code files (.js, .py, ...), which promptfoo runs, are
refused (nothing from a pull request is executed), and so are media and PDF files (promptfoo sends
or extracts them), globs (promptfoo makes one case per match) and a `file://` string nested inside
a var's list or mapping (promptfoo would not read it).

The path is relative to the repository root (the directory of gpo.yaml), else to the suite file,
as `prompt:` is; it stays inside the tree (`containment`: no `..` out, no symlink out, no .git),
so the base revision, loaded from its snapshot, reads the base's own file. A loaded value is a
`FileText` (a str): assertions use it as written, without rendering it as a template.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gpo_action.containment import Origin, contain
from gpo_action.errors import InputError, SuiteError
from gpo_action.gitrepo import MAX_FILE_BYTES, PROJECT_SUFFIXES

PREFIX = "file://"
MAX_REF_BYTES = MAX_FILE_BYTES      # a larger file is left out of the base snapshot
TEXT_SUFFIXES = PROJECT_SUFFIXES    # what a base snapshot holds
VALUE_SUFFIXES = (".txt", ".json", ".yaml", ".yml")
CODE_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts", ".jsx", ".tsx", ".py", ".rb")
MEDIA_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg", ".tif", ".tiff", ".ico",
                  ".avif", ".heic", ".heif", ".mp3", ".wav", ".ogg", ".flac", ".m4a", ".mp4", ".webm", ".mov")


class FileText(str):
    """Text (or a string inside data) loaded from a `file://` reference: used as written."""


@dataclass(frozen=True)
class RefPlace:
    """Where references are read from and how errors name them."""

    root: Path          # the repository root (directory of gpo.yaml)
    suite_dir: Path     # the suite file's directory
    tree: Path          # what every path stays inside
    shown: str          # the file the reference is written in, as messages show it


def is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def reads_file(value: Any) -> bool:
    """Whether loading `value` (`load_var`, `load_value`) reads a file: a `file://` string or a list
    holding one (a var's list holding one is refused when it loads)."""
    return is_ref(value) or (isinstance(value, list) and any(map(is_ref, value)))


def load_var(value: Any, key: str, line: int | None, place: RefPlace) -> Any:
    """A case var: a `file://` string read as promptfoo reads a var file; anything else as is."""
    if not is_ref(value):
        _refuse_nested(value, key, line, place)
        return value
    path, text = _read(value, key, line, place, TEXT_SUFFIXES)
    if path.suffix.lower() in (".yaml", ".yml"):
        return FileText(_json_text(_parse_yaml(text, value, key, line, place)))
    return FileText(_trim(text))


def load_value(value: Any, key: str, line: int | None, place: RefPlace) -> Any:
    """An assertion value or `expected`: `file://` strings (also the items of a list) read as
    promptfoo reads an assertion value file; anything else as is."""
    if isinstance(value, list):
        return [load_value(item, f"{key}.{i}", line, place) if is_ref(item) else item for i, item in enumerate(value)]
    if not is_ref(value):
        return value
    path, text = _read(value, key, line, place, VALUE_SUFFIXES)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return FileText(_trim(text))
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SuiteError(f"{key}: {value!r} is not valid JSON: {exc}", place.shown, line) from None
    else:
        data = _parse_yaml(text, value, key, line, place)
    return _frozen(data)


def _read(ref: str, key: str, line: int | None, place: RefPlace, suffixes: tuple[str, ...]) -> tuple[Path, str]:
    name = ref[len(PREFIX):]
    where = f"{key}: {ref!r}"
    if not name:
        raise SuiteError(f"{where} names no file", place.shown, line)
    if glob.has_magic(name):
        raise SuiteError(f"{where} is a glob; gpo-action reads one file per reference", place.shown, line,
                         hint="promptfoo makes one case per matching file: write those cases out")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in CODE_SUFFIXES:
        raise SuiteError(f"{where} is a code file, which promptfoo would run", place.shown, line,
                         hint="gpo-action never runs code from a suite (a pull request could change it)")
    if suffix not in suffixes:
        kinds = ", ".join(suffixes)
        what = "media and PDF files are not read" if suffix in MEDIA_SUFFIXES else f"{suffix or 'a file without a suffix'} is not read here"
        raise SuiteError(f"{where}: {what}", place.shown, line, hint=f"a reference here reads {kinds} files")
    origin = Origin(place.shown, line, key, SuiteError)
    refused: InputError | None = None
    for base in (place.root, place.suite_dir):
        try:
            real = contain(name, base, place.tree, origin)
        except InputError as exc:  # the other reading of the path may stay inside
            refused = refused or exc
            continue
        if real.is_file():
            return real, _text(real, where, line, place)
    if refused is not None:
        raise refused
    raise SuiteError(f"{where}: file not found", place.shown, line,
                     hint="the path is relative to the repository root (the directory of gpo.yaml) or to the suite file")


def _text(path: Path, where: str, line: int | None, place: RefPlace) -> str:
    from gpo_action.yamlsource import decode_utf8

    try:
        size = path.stat().st_size
        if size > MAX_REF_BYTES:
            raise SuiteError(f"{where}: {size / 1e6:.1f} MB is over the {MAX_REF_BYTES / 1e6:.0f} MB limit",
                             place.shown, line)
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"{where}: cannot read the file: {exc.strerror or exc}", place.shown, line) from None
    try:
        return decode_utf8(raw, where, SuiteError)
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc.message}", place.shown, line, hint=exc.hint) from None


def _parse_yaml(text: str, ref: str, key: str, line: int | None, place: RefPlace) -> Any:
    from gpo_action.yamlsource import parse_yaml

    try:
        return parse_yaml(text, ref[len(PREFIX):], error=SuiteError).data
    except SuiteError as exc:
        raise SuiteError(f"{key}: {ref!r}: {exc}", place.shown, line) from None


def _refuse_nested(value: Any, key: str, line: int | None, place: RefPlace) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif is_ref(item):
            raise SuiteError(f"{key}: holds {item!r} inside a list or mapping, where it is not read", place.shown, line,
                             hint="a file:// reference is read only as a var's whole value")


def _trim(text: str) -> str:
    from gpo_action.jsvalues import js_trim

    return js_trim(text)


def _json_text(data: Any) -> str:
    from gpo_action.jsvalues import js_json

    return js_json(data)


def _frozen(data: Any) -> Any:
    """Parsed data with every string marked as loaded (so it is never rendered as a template)."""
    if isinstance(data, str):
        return FileText(data)
    if isinstance(data, list):
        return [_frozen(item) for item in data]
    if isinstance(data, dict):
        return {key: _frozen(item) for key, item in data.items()}
    return data


__all__ = ["FileText", "PREFIX", "RefPlace", "is_ref", "load_value", "load_var"]
