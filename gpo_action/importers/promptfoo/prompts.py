"""promptfoo's `prompts:` -> templates: inline strings, `file://` paths and globs (`.txt` trimmed,
several prompts per file split on `---` lines, as promptfoo splits them), chat JSON/YAML (a list of
{role, content}) -> gpo-action's chat form; code prompts are listed, not converted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from gpo_action.errors import InputError
from gpo_action.importers.promptfoo.nunjucks import to_jinja
from gpo_action.importers.promptfoo.reading import FILE, Project, is_code
from gpo_action.yamlsource import YamlDoc

_SEPARATOR = re.compile(r"^---$", re.MULTILINE)
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Prompt:
    label: str
    stem: str                          # file name stem for prompts/
    text: str | None = None            # text form
    messages: tuple[dict, ...] = ()    # chat form

    def file_text(self) -> tuple[str, str]:
        """(suffix, content) of the template file."""
        if self.text is not None:
            return ".j2", self.text
        return ".yaml", yaml.safe_dump({"messages": [dict(m) for m in self.messages]}, sort_keys=False,
                                       allow_unicode=True, width=1000)


def read_prompts(project: Project, doc: YamlDoc) -> list[Prompt]:
    raw = doc.data.get("prompts")
    shown = doc.path
    if raw is None:
        raise InputError("the config has no `prompts`", shown, doc.line_of(()))
    entries: list[tuple[Any, str | None, tuple]] = []
    if isinstance(raw, dict):  # {file://a.txt: label}
        entries = [(key, label, ("prompts", key)) for key, label in raw.items()]
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                entries.append((item.get("raw", item.get("id")), item.get("label"), ("prompts", i)))
            else:
                entries.append((item, None, ("prompts", i)))
    else:
        entries = [(raw, None, ("prompts",))]
    prompts: list[Prompt] = []
    for value, label, loc in entries:
        line = doc.line_of(loc)
        if not isinstance(value, str):
            project.note(shown, line, "a prompt that is not a string or a `file://` path: not converted")
            continue
        if value.startswith(FILE):
            prompts.extend(_file_prompts(project, value, label, shown, line))
        else:
            prompts.extend(_converted(project, _inline(value, label, len(prompts)), shown, line))
    return _unique(prompts)


def _inline(value: str, label: str | None, index: int) -> Prompt:
    name = label or f"prompt{index + 1}"
    messages = _chat(value)
    return Prompt(label or value[:40], name, None if messages else value, messages or ())


def _chat(text: str) -> tuple[dict, ...] | None:
    """A JSON list of {role, content} messages, else None."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(data, list) and data and all(isinstance(m, dict) and "role" in m for m in data):
        return tuple(data)
    return None


def _file_prompts(project: Project, ref: str, label: str | None, shown: str, line: int | None) -> list[Prompt]:
    if is_code(ref):
        project.note(shown, line, f"prompt {ref}: a code prompt (a script builds it): not converted")
        return []
    out: list[Prompt] = []
    for path in project.files(ref, shown, line):
        here = project.shown(path)
        suffix = path.suffix.lower()
        if suffix == ".json" or suffix in (".yaml", ".yml"):
            data = project.yaml(path).data
            messages = tuple(data) if isinstance(data, list) and all(isinstance(m, dict) for m in data) else None
            if not messages:
                project.note(here, 1, "a structured prompt file that is not a list of chat messages: not converted")
                continue
            found = [Prompt(label or here, path.stem, None, messages)]
        else:
            parts = [part.strip() for part in _SEPARATOR.split(project.text(path))]  # promptfoo trims each
            parts = [p for p in parts if p]
            found = [Prompt(label or (here if len(parts) == 1 else f"{here}#{i + 1}"),
                            path.stem if len(parts) == 1 else f"{path.stem}-{i + 1}",
                            None if _chat(p) else p, _chat(p) or ()) for i, p in enumerate(parts)]
        for prompt in found:
            out.extend(_converted(project, prompt, here, 1))
    return out


def _converted(project: Project, prompt: Prompt, shown: str, line: int | None) -> list[Prompt]:
    """The prompt with its Nunjucks made Jinja2 (each change noted); none when it cannot be."""
    from gpo_action.templates import parse_template

    def convert(text: str) -> str | None:
        new, changes, missing = to_jinja(text)
        for change in changes:
            project.changes.append(f"{shown}: {change}")
        if missing:
            project.note(shown, line, f"prompt {prompt.label!r} uses {', '.join(missing)}: not converted")
            return None
        return new

    if prompt.text is not None:
        text = convert(prompt.text)
        result = Prompt(prompt.label, prompt.stem, text) if text is not None else None
    else:
        messages = []
        for message in prompt.messages:
            content = message.get("content")
            if message.get("role") not in _ROLES or not isinstance(content, str):
                project.note(shown, line, f"prompt {prompt.label!r}: a message with role {message.get('role')!r} "
                             "or non-text content (images, parts): not converted")
                return []
            text = convert(content)
            if text is None:
                return []
            messages.append({"role": message["role"], "content": text})
        result = Prompt(prompt.label, prompt.stem, None, tuple(messages))
    if result is None:
        return []
    suffix, content = result.file_text()
    try:
        parse_template(content, f"x{suffix}")
    except InputError as exc:
        project.note(shown, line, f"prompt {prompt.label!r} does not read as Jinja2 ({exc.message}): not converted")
        return []
    return [result]


def _unique(prompts: list[Prompt]) -> list[Prompt]:
    seen: dict[str, int] = {}
    out = []
    for prompt in prompts:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", prompt.stem).strip("-.") or "prompt"
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:
            stem = f"{stem}-{seen[stem]}"
        out.append(Prompt(prompt.label, stem, prompt.text, prompt.messages))
    return out
