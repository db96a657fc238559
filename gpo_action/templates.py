"""Prompt templates: load, render (sandboxed, strict), list their variables, find frozen regions.

Two file forms:
- text (`.j2`, `.jinja`, `.txt`, `.md`): the rendered file is the content of one user message;
- chat (`.yaml`, `.yml`): `{messages: [{role, content}, ...], params: {...}}`; each `content`
  is a Jinja2 template, `params` are model parameters passed through to the task model.

Rendering runs in Jinja2's immutable sandbox with `StrictUndefined`: a template from a pull request
can read its variables but not Python internals, and a missing variable is an error, never "".
The sandbox (`gpo_action.sandbox`) also bounds loops, output, CPU time and every size-multiplying
operation, so a hostile template or case fails fast with a "render limit" error (`TemplateLimitError`)
instead of hanging. A chat file is read by `yamlsource`, with its bounds on aliases.
A source is compiled once (cached by its text). Every failure is a `TemplateError` naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping

import jinja2
import yaml
from jinja2 import StrictUndefined, meta
from jinja2.exceptions import SecurityError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpo_action.containment import Origin, contain
from gpo_action.errors import TemplateError, TemplateLimitError
from gpo_action.sandbox import (MAX_LOOP_ITERATIONS, MAX_RENDER_CHARS, MAX_RENDER_SECONDS, BoundedSandbox,
                               RenderLimitError, render_budget)
from gpo_action.yamlsource import parse_yaml

TEXT_SUFFIXES = (".j2", ".jinja", ".txt", ".md")
CHAT_SUFFIXES = (".yaml", ".yml")
_JINJA_MARKERS = ("{{", "{%", "{#")
_FROZEN_RE = re.compile(r"\{#-?\s*gpo:(freeze|end)\s*-?#\}")
_UNDEFINED_RE = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_NO_ATTRIBUTE_RE = re.compile(r"^'(?P<owner>[^']+)' has no attribute '(?P<name>[^']+)'$")

Kind = Literal["text", "chat"]


@lru_cache(maxsize=4)
def _environment(newline: str) -> BoundedSandbox:
    return BoundedSandbox(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        newline_sequence=newline,
        auto_reload=False,
    )


def _newline_of(source: str) -> str:
    """The line ending Jinja writes for this source: the most common one in it. Jinja normalizes every
    line break of template text to one sequence, so a source that mixes endings renders byte-exact only
    when it has no Jinja syntax (the verbatim path in `_render`)."""
    crlf = source.count("\r\n")
    cr, lf = source.count("\r") - crlf, source.count("\n") - crlf
    if crlf > lf and crlf >= cr:
        return "\r\n"
    if cr > lf:
        return "\r"
    return "\n"


def _is_plain(source: str) -> bool:
    return not any(marker in source for marker in _JINJA_MARKERS)


@lru_cache(maxsize=1024)
def _compile(source: str, name: str) -> jinja2.Template:
    """Compile once per (source, name); raises jinja2.TemplateSyntaxError."""
    env = _environment(_newline_of(source))
    code = env.compile(source, name=name, filename=name)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _syntax_error(exc: jinja2.TemplateSyntaxError, path: str, line_offset: int | None, where: str) -> TemplateError:
    """`line_offset` maps a template line to a file line (chat yaml); `where` names the message."""
    line = exc.lineno + line_offset if (exc.lineno and line_offset is not None) else exc.lineno
    message = f"template syntax error: {exc.message}"
    if where:
        message += f" (in {where}, template line {exc.lineno})"
    return TemplateError(message, path=path, line=line)


def _failure_line(exc: BaseException, filename: str) -> int | None:
    """The template line of a render failure: Jinja rewrites tracebacks to point into the template."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_error(exc: Exception, name: str, path: str, line_offset: int | None) -> TemplateError:
    line = _failure_line(exc, name)
    if line is not None and line_offset is not None:
        line += line_offset
    text = str(exc)
    if isinstance(exc, RenderLimitError):
        return TemplateLimitError(f"render limit: {text}", path=path, line=line,
                                  hint=f"a template renders at most {MAX_RENDER_CHARS} characters, "
                                       f"{MAX_LOOP_ITERATIONS} loop iterations and {MAX_RENDER_SECONDS:g} s "
                                       "of CPU, with its case's vars")
    if isinstance(exc, SecurityError):
        return TemplateError(f"unsafe template refused: {text}", path=path, line=line,
                             hint="templates run in a sandbox: no '_' attributes, no mutation, bounded sizes")
    if isinstance(exc, jinja2.UndefinedError):
        match = _UNDEFINED_RE.match(text)
        if match:
            return TemplateError(f"undefined variable '{match['name']}'", path=path, line=line,
                                 hint="give it in the case's vars, or use `{{ name | default('') }}`")
        match = _NO_ATTRIBUTE_RE.match(text)
        if match:
            return TemplateError(f"undefined attribute '{match['name']}' ({text})", path=path, line=line)
        return TemplateError(f"undefined value: {text}", path=path, line=line)
    return TemplateError(f"render failed: {type(exc).__name__}: {text}", path=path, line=line)


def _render(source: str, variables: Mapping[str, Any], name: str, path: str, line_offset: int | None = None) -> str:
    if _is_plain(source):  # no Jinja syntax: the text is the output, byte for byte
        if len(source) > MAX_RENDER_CHARS:
            raise TemplateError(f"template text is longer than {MAX_RENDER_CHARS} characters", path=path)
        return source
    try:
        template = _compile(source, name)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc, path, line_offset, "" if name == path else name) from None
    try:
        with render_budget():
            return _generate(template, variables, path)
    except TemplateError:
        raise
    except Exception as exc:  # any failure inside template code is the template's fault
        raise _render_error(exc, name, path, line_offset) from None


def _generate(template: jinja2.Template, variables: Mapping[str, Any], path: str) -> str:
    """The rendered text, refused as soon as it grows past MAX_RENDER_CHARS."""
    parts: list[str] = []
    total = 0
    for chunk in template.generate(variables):
        total += len(chunk)
        if total > MAX_RENDER_CHARS:
            raise TemplateLimitError(f"rendered text is longer than {MAX_RENDER_CHARS} characters",
                                     path=path, hint="a loop or filter produces runaway output")
        parts.append(chunk)
    return "".join(parts)


def render_text(source: str, vars: Mapping[str, Any], name: str = "<string>") -> str:
    """Render one template string in the sandbox with StrictUndefined; errors are TemplateError."""
    return _render(source, vars, name, name)


@lru_cache(maxsize=1024)
def template_variables(source: str) -> frozenset[str]:
    """Variables the template reads and does not define itself (loop and `set` names excluded)."""
    if _is_plain(source):
        return frozenset()
    env = _environment("\n")
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc, "<string>", None, "") from None
    return frozenset(meta.find_undeclared_variables(ast) - env.globals.keys())


def frozen_regions(source: str, path: str = "<string>") -> tuple[str, ...]:
    """Texts between `{# gpo:freeze #}` and `{# gpo:end #}` markers, verbatim, in order."""
    regions: list[str] = []
    start: int | None = None
    for match in _FROZEN_RE.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        if match[1] == "freeze":
            if start is not None:
                raise TemplateError("nested `{# gpo:freeze #}` marker", line=line, path=path)
            start = match.end()
        else:
            if start is None:
                raise TemplateError("`{# gpo:end #}` without a `{# gpo:freeze #}`", line=line, path=path)
            regions.append(source[start:match.start()])
            start = None
    if start is not None:
        raise TemplateError("`{# gpo:freeze #}` without a closing `{# gpo:end #}`", path=path)
    return tuple(regions)


@dataclass(frozen=True)
class MessageTemplate:
    role: str
    source: str
    line: int | None = None  # file line where `source` starts (chat yaml block scalars); None if unknown


@dataclass(frozen=True)
class PromptTemplate:
    path: str
    source: str  # the whole file text
    kind: Kind
    messages: tuple[MessageTemplate, ...]
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def variables(self) -> frozenset[str]:
        """Undeclared variables over all messages (what a case's vars must provide)."""
        found: frozenset[str] = frozenset()
        for message in self.messages:
            found |= template_variables(message.source)
        return found

    def render(self, vars: Mapping[str, Any]) -> tuple[dict, ...]:
        """Messages `{"role", "content"}` with every content rendered; raises TemplateError."""
        if self.kind == "text":
            return ({"role": "user", "content": _render(self.source, vars, self.path, self.path)},)
        return tuple(
            {"role": m.role, "content": _render(m.source, vars, f"{self.path}:messages[{i}]", self.path,
                                                 None if m.line is None else m.line - 1)}
            for i, m in enumerate(self.messages)
        )


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"] = Field(description="who speaks")
    content: str = Field(description="a Jinja2 template")


class _ChatFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[_ChatMessage] = Field(min_length=1, description="the conversation, in order")
    params: dict[str, Any] = Field(default_factory=dict, description="model parameters (temperature, max_tokens, ...)")


def _node_at(node: yaml.Node, loc: tuple) -> yaml.Node:
    """The deepest YAML node along a pydantic error location, for its line."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == key), None)
            if child is None:
                child = next((k for k, _ in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
        else:
            child = None
        if child is None:
            break
        node = child
    return node


def _content_line(node: yaml.Node) -> int:
    """1-based file line of a scalar's first content line (block scalars start below `|`/`>`)."""
    return node.start_mark.line + (2 if node.style in ("|", ">") else 1)


def _parse_chat(source: str, path: str) -> tuple[tuple[MessageTemplate, ...], Mapping[str, Any]]:
    doc = parse_yaml(source, path, error=TemplateError)  # the one YAML reader, with its bounds
    root, data = doc.node, doc.data
    if not isinstance(data, dict) or root is None:
        raise TemplateError("a chat template is a mapping with `messages` (and optional `params`)", path=path, line=1)
    try:
        chat = _ChatFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        node = _node_at(root, tuple(error["loc"]))
        where = ".".join(str(p) for p in error["loc"])
        raise TemplateError(f"{where}: {error['msg']}", path=path, line=node.start_mark.line + 1,
                            hint="chat form: {messages: [{role: system|user|assistant, content: str}], params: {...}}") from None
    nodes = _node_at(root, ("messages",)).value
    messages = tuple(
        MessageTemplate(m.role, m.content, _content_line(_node_at(nodes[i], ("content",))))
        for i, m in enumerate(chat.messages)
    )
    return messages, MappingProxyType(dict(chat.params))


def _infer_kind(path: str) -> Kind:
    suffix = Path(path).suffix.lower()
    if suffix in CHAT_SUFFIXES:
        return "chat"
    if suffix in TEXT_SUFFIXES or suffix == "" or path.startswith("<"):
        return "text"
    raise TemplateError(f"unknown template suffix {suffix!r}", path=path,
                        hint=f"use one of {', '.join(TEXT_SUFFIXES + CHAT_SUFFIXES)}")


def parse_template(source: str, path: str = "<string>", kind: Kind | None = None) -> PromptTemplate:
    """Build a PromptTemplate from text; `kind` defaults to what the path's suffix says.
    Syntax errors are reported here, at load time, with the file line."""
    kind = kind or _infer_kind(path)
    if kind == "text":
        template = PromptTemplate(path, source, "text", (MessageTemplate("user", source, 1),))
    elif kind == "chat":
        messages, params = _parse_chat(source, path)
        template = PromptTemplate(path, source, "chat", messages, params)
    else:
        raise TemplateError(f"unknown template kind {kind!r}", path=path, hint="text or chat")
    for index, message in enumerate(template.messages):
        if _is_plain(message.source):
            continue
        try:
            _compile(message.source, path if kind == "text" else f"{path}:messages[{index}]")
        except jinja2.TemplateSyntaxError as exc:
            offset = None if message.line is None else message.line - 1
            where = "" if kind == "text" else f"messages[{index}]"
            raise _syntax_error(exc, path, offset, where) from None
    return template


def load_template(path: str | Path, *, tree: str | Path | None = None) -> PromptTemplate:
    """Read and parse a template file (UTF-8; line endings kept as written). With `tree`, a path
    that leaves that directory (through a symlink, say) is refused before it is read."""
    name = str(path)
    if tree is not None:
        contain(path, os.getcwd(), tree, Origin(name, None, "", TemplateError), subject="the template file")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TemplateError("template file not found", path=name) from None
    except OSError as exc:
        raise TemplateError(f"cannot read template: {exc.strerror or exc}", path=name) from None
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template is not UTF-8 ({exc.reason} at byte {exc.start})", path=name) from None
    return parse_template(source, name)


__all__ = [
    "MAX_RENDER_CHARS",
    "MessageTemplate",
    "PromptTemplate",
    "frozen_regions",
    "load_template",
    "parse_template",
    "render_text",
    "template_variables",
]
