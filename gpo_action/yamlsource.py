"""YAML with source positions, and pydantic errors turned into `file:line: key: message`.

`load_yaml(path, error=ConfigError)` parses one document with the safe loader (the libyaml
`CSafeLoader` when PyYAML has it) and keeps the node tree, so that a pydantic location such as
`("models", "task", "temperature")` can be mapped back to the line it came from
(`YamlDoc.line_of`). Malformed YAML, duplicate keys, python tags and undecodable bytes raise the
caller's `InputError` subclass with the file and the 1-based line.

A file may come from a pull request, so what it costs to read is bounded before it is built:
aliases may expand the document to at most `max(MAX_ALIAS_EXPANSION, ALIAS_FACTOR x its own
nodes)` values (a 1 KB "billion laughs" file would otherwise expand to a billion), an alias may
not refer to the value that contains it, and an integer may not have more digits than Python
converts. The check walks the composed node graph once, each shared node counted once.

`validation_error(exc, ...)` turns one pydantic `ValidationError` into one `InputError` that lists
every problem, one per line, sorted by line:

    gpo.yaml:7: models.taks: unknown key (allowed: task, optimizer, judge, embedding)
    gpo.yaml:9: concurrency: Input should be less than or equal to 1024 (got 5000)

The error's own `line` is the first problem's; `error.problems` holds `(line, key, message)`.
"""

from __future__ import annotations

import difflib
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from gpo_action.errors import InputError

Loc = tuple[str | int, ...]

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
MAX_ALIAS_EXPANSION = 100_000  # values aliases may expand a small document to
ALIAS_FACTOR = 10              # ... or this many times a larger document's own nodes
# Parts of a location whose input value must never be echoed in a message (it may be a secret).
_SECRET_WORDS = ("key", "token", "secret", "password")


@dataclass(frozen=True)
class YamlDoc:
    """One parsed YAML document: plain python `data` plus the node tree for line lookups."""

    path: str                    # the file as shown in messages
    data: Any
    node: yaml.Node | None = None

    def line_of(self, loc: Loc) -> int | None:
        """1-based line of the node at `loc` (mapping keys / sequence indices).

        For a mapping entry the line of its key is returned. When a part of `loc` is not in the
        document (a missing key, a pydantic-internal part) the nearest parent's line is returned;
        `None` only for an empty document.
        """
        node = self.node
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            line, node = found
        return line


def _child(node: yaml.Node, part: str | int) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        wanted = str(part)
        for key_node, value_node in reversed(node.value):   # the last duplicate wins, as in construction
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == wanted:
                return key_node.start_mark.line + 1, value_node
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


def load_yaml(path: str | Path, *, error: type[InputError] = InputError, display: str | None = None) -> YamlDoc:
    """Parse the YAML file at `path` (safe loading only) into a `YamlDoc`.

    `display` is the path shown in messages (default: `path` as given). Every problem (missing
    file, bad bytes, bad syntax, duplicate key, python tag) raises `error` with file and line.
    """
    shown = display if display is not None else str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error("file not found", shown) from None
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", shown) from None
    text = decode_utf8(raw, shown, error)
    return parse_yaml(text, shown, error=error)


def parse_yaml(text: str, display: str, *, error: type[InputError] = InputError) -> YamlDoc:
    """Parse YAML source text; `display` names it in messages."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(display, None, None)
        _check_nodes(node, display, error)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, text, display, error) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        raise error(f"invalid YAML: unacceptable character #x{exc.character:04x}", display, line) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every parser error above carries a mark
        raise error(f"invalid YAML: {exc}", display) from None
    except RecursionError:  # PyYAML composes recursively: a hostile file nests thousands deep
        raise error("invalid YAML: nested too deeply", display, loader.line + 1,
                    hint="flatten the data; nesting this deep cannot be read") from None
    finally:
        loader.dispose()
    return YamlDoc(display, data, node)


def decode_utf8(raw: bytes, display: str, error: type[InputError]) -> str:
    """Decode UTF-8 (a leading BOM is dropped); bad bytes raise `error` with their line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", display, line,
                    hint="save the file as UTF-8") from None


def _yaml_error(exc: yaml.MarkedYAMLError, text: str, display: str, error: type[InputError]) -> InputError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    lines = text.split("\n")
    source_line = lines[line - 1] if line is not None and line <= len(lines) else ""
    problem = exc.problem or "malformed document"
    message = f"invalid YAML: {exc.context}: {problem}" if exc.context else f"invalid YAML: {problem}"
    hint = None
    indent = source_line[: len(source_line) - len(source_line.lstrip())]
    if "tab character" in problem or "\t" in problem or "'\\t'" in problem or "\t" in indent:
        hint = "indent YAML with spaces, not tabs"
    elif "python/" in str(exc):
        hint = "python tags are not allowed; only plain YAML values"
    return error(message, display, line, hint=hint)


def _check_nodes(root: yaml.Node, display: str, error: type[InputError]) -> None:
    """One walk over the composed graph (iterative: a hostile file nests deeply; a node shared by
    aliases is walked once), before anything is built. Refused: a key written twice in one mapping
    (PyYAML would silently keep the last), an alias to the value that contains it, an integer with
    more digits than Python converts, and aliases that expand the document past its bound."""
    digits = sys.get_int_max_str_digits()  # 0: no limit
    size: dict[int, int] = {}      # id of a collection -> the values it expands to, itself included
    order: list[yaml.Node] = []    # collections, each after the collections it holds
    expanding: set[int] = set()    # the collections on the path from the root
    written = 0                    # nodes as written: each collection once, each value in it once
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        if children is not None:   # every collection in it is sized now
            expanding.discard(id(node))
            size[id(node)] = 1 + sum(size.get(id(child), 1) for child in children)
            order.append(node)
            continue
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, digits, display, error)
            written += 1
            continue
        if id(node) in size:
            continue
        if id(node) in expanding:
            raise error("a YAML alias refers to the value that contains it", display, node.start_mark.line + 1,
                        hint="recursive data cannot be read; write the value out")
        if isinstance(node, yaml.MappingNode):
            _check_keys(node)
            children = [part for pair in node.value for part in pair]
        else:
            children = list(node.value)
        written += 1
        expanding.add(id(node))
        stack.append((node, children))
        stack.extend((child, None) for child in children)
    limit = max(MAX_ALIAS_EXPANSION, ALIAS_FACTOR * written)
    if isinstance(root, yaml.CollectionNode) and size[id(root)] > limit:
        first = next(node for node in order if size[id(node)] > limit)
        raise error(f"YAML aliases expand this value to more than {limit} values", display,
                    first.start_mark.line + 1, hint="write the values out, or refer to them fewer times")


def _check_scalar(node: yaml.ScalarNode, digits: int, display: str, error: type[InputError]) -> None:
    if digits and node.tag == _INT_TAG and len(node.value) > digits:
        raise error(f"an integer with more than {digits} digits", display, node.start_mark.line + 1,
                    hint="quote it to keep it as text")


def _check_keys(node: yaml.MappingNode) -> None:
    keys: dict[tuple[str, str], int] = {}
    for key_node, _value in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        ident = (key_node.tag, key_node.value)
        if ident in keys:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key_node.value!r} (first written at line {keys[ident]})",
                key_node.start_mark,
            )
        keys[ident] = key_node.start_mark.line + 1


# --- pydantic errors -> one InputError ---------------------------------------------------------


def validation_error(
    exc: ValidationError,
    *,
    path: str,
    error: type[InputError] = InputError,
    model: type[BaseModel] | None = None,
    line_of: Callable[[Loc], int | None] | None = None,
    line: int | None = None,
    prefix: Loc = (),
    hints: Mapping[str, str] | None = None,
) -> InputError:
    """One `error` listing every problem of `exc` as `path:line: key: message`.

    `model` is the validated class (used to list the allowed keys of an unknown key), `line_of`
    maps a full location to a line (`YamlDoc.line_of`), `line` is a fixed line for sources that
    are one line each (a JSONL record), `prefix` is prepended to every location (validating one
    item of a larger document), and `hints` replaces the message for an unknown key by name.
    """
    problems: list[tuple[int | None, str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"])
        full = prefix + loc
        where = line_of(full) if line_of is not None else line
        key = ".".join(str(p) for p in full) or "(top level)"
        problems.append((where, key, _message(err, loc, model, hints)))
    problems.sort(key=lambda p: p[0] or 0)
    first_line, first_key, first_msg = problems[0]
    rest = [f"{path}:{ln}: {k}: {m}" if ln else f"{path}: {k}: {m}" for ln, k, m in problems[1:]]
    message = "\n".join([f"{first_key}: {first_msg}", *rest])
    result = error(message, path, first_line)
    result.problems = problems  # type: ignore[attr-defined]
    return result


def _message(err: Mapping[str, Any], loc: Loc, model: type[BaseModel] | None, hints: Mapping[str, str] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        name = str(loc[-1])
        if hints and name in hints:
            return hints[name]
        allowed = _allowed_keys(model, loc[:-1]) if model is not None else None
        if not allowed:
            return "unknown key"
        text = f"unknown key (allowed: {', '.join(allowed)})"
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.75)
        return f"{text}; did you mean {close[0]!r}?" if close else text
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        return msg.split(", ", 1)[1] if ", " in msg else msg
    value = err.get("input")
    secret = any(w in str(p).lower() for p in loc for w in _SECRET_WORDS)
    if not secret and (value is None or isinstance(value, (str, int, float, bool))):
        shown = repr(value)
        if len(shown) <= 60:
            msg += f" (got {shown})"
    return msg


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """The keys a mapping at `loc` inside `model` accepts (aliases first), or None if unknown."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items() if not f.exclude]
    return None


def _unwrap(annotation: Any) -> Any:
    """Optional[X] / Annotated[X, ...] -> X (the first model or container among union members)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            structured = [a for a in members if typing.get_origin(a) is not None
                          or (isinstance(a, type) and issubclass(a, BaseModel))]
            annotation = (structured or members)[0]
            continue
        return annotation
