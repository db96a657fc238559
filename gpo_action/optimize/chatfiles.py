"""New message contents written into a chat template file, everything else byte for byte.

The optimizer returns message text only (`views`); this puts each changed content where the
original's stood (its YAML node's span), so `params`, roles, comments, key order and the other
messages stay as the author wrote them, and a diff shows only the text that changed. A changed
content is written as a plain scalar (a one-line text, where the original was plain and the text
reads back unchanged), else as a literal block at the key's indentation, else JSON-quoted; the
file is parsed again and kept only if every message reads back exactly as intended.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from gpo_action.errors import TemplateError
from gpo_action.templates import PromptTemplate, parse_template
from gpo_action.yamlsource import parse_yaml


def rebuild_chat(original: PromptTemplate, contents: Sequence[str]) -> tuple[str | None, str | None]:
    """The original chat file with each message's content replaced, everything else byte for byte;
    (None, "syntax") when the new contents cannot be written so that they read back unchanged."""
    doc = parse_yaml(original.source, original.path, error=TemplateError)
    messages = next(v for k, v in doc.node.value if k.value == "messages").value
    nodes = [next(v for k, v in m.value if k.value == "content") for m in messages]
    for quoted in (False, True):
        source = original.source
        for node, message, content in sorted(zip(nodes, original.messages, contents),
                                             key=lambda item: item[0].start_mark.index, reverse=True):
            if content != message.source:
                start, end = node.start_mark.index, node.end_mark.index
                source = source[:start] + _scalar(content, node, original.source, quoted) + source[end:]
        try:
            if [m.source for m in parse_template(source, original.path, "chat").messages] == list(contents):
                return source, None
        except TemplateError:
            pass
    return None, "syntax"


def _scalar(content: str, node: Any, source: str, quoted: bool) -> str:
    """`content` as YAML where `node` stood (its span: a block's span ends after its line breaks)."""
    if quoted:
        text = json.dumps(content, ensure_ascii=False)
    elif node.style in (None, "") and "\n" not in content and _plain_ok(content):
        text = content
    else:
        line_start = source.rfind("\n", 0, node.start_mark.index) + 1
        key_indent = len(source[line_start:]) - len(source[line_start:].lstrip(" -"))
        indent = " " * (key_indent + 2)
        body = content.rstrip("\n")
        breaks = len(content) - len(body)
        lines = "\n".join(indent + line if line else "" for line in body.split("\n"))
        text = f"|{'-' if breaks == 0 else '' if breaks == 1 else '+'}\n{lines}" + "\n" * breaks
    if source[node.end_mark.index - 1:node.end_mark.index] == "\n" and not text.endswith("\n"):
        text += "\n"
    return text


def _plain_ok(text: str) -> bool:
    """Whether `text` reads back as itself, a string, when written unquoted after a key."""
    try:
        return parse_yaml(f"k: {text}", "<content>", error=TemplateError).data == {"k": text}
    except TemplateError:
        return False
