"""What the optimizer sees of a template, and how its reply becomes a template again.

The optimizer edits text, never structure. It is shown each message's content under a header
line naming its role (a text template is one `### user` message), with every piece of template
code replaced by a placeholder; the tool puts the code back and rebuilds the file (roles,
`params`, the YAML around the contents: `chatfiles`) itself:

    source   messages: [{role: system, content: You label reviews.},
                        {role: user, content: "Is this review positive?\nReview: {{ review }}"}]
    shown    ### system
             You label reviews.
             ### user
             Is this review positive?
             Review: [1]

Placeholders (`Style`, default `[1]`, `[2]`, ...): each distinct piece of code gets one, numbered
in order of first appearance, the same in every prompt of one meta-prompt: expressions `{{ ... }}`
(every spelling of `{{ x }}` shares one), statements `{% ... %}` (a `{% raw %}` block whole),
comments `{# ... #}`, and frozen regions (`{# gpo:freeze #}` ... `{# gpo:end #}`, markers
included). A placeholder that already occurs in the template's text is skipped. Numbers, because
the bundled 135M model copies `[1]` and fills a named one (`[sentence]`) with an example instead
(bench/candidate_safety.py --styles); a case's variable is named by its placeholder in the
exemplars (`View.label`), which ties the value to its place. Putting back accepts other spacing
or case inside the brackets (`[ 1 ]`).

What a reply may do with them (`read`), and the reason when it may not:
- expression placeholders may be moved, repeated or left out: the final gate (`check_candidate`)
  rejects a candidate whose set of variables differs from the original's (`variables`), the rule
  that held before placeholders; repeating `Review: [1]` is an edit like any other.
- input slots are the tool's: where the original shows a variable's placeholder once, after a
  label on its line (`Review: [1]`), and the reply holds it nowhere but keeps a line starting with
  that label, the placeholder goes back after the label and the rest of that line goes (the small
  model writes an example input there, or another number: `Review: I loved it.`, `Review: [2]`).
- statement, comment and frozen placeholders are structure: each message must hold exactly the
  original's, once each and in the same order, else `frozen` (a frozen region) or `syntax`
  (statements or comments: control flow moved or lost). Template code the optimizer writes itself
  counts as structure the same way, so it cannot add a block either.
- a misspelt placeholder (`[12]` beside `[1]`, `[[x1]]` for `[[x]]`: a known one within a small
  edit distance): `variables` (it stands where a template value was meant to go, and would reach
  the task model as literal text). Other bracketed text (`[positive/negative]`) is text.
- the reply must hold the original's header lines in order (`roles-changed` otherwise), nothing
  but blank lines before the first; a header past the last message ends the reply there, and so
  does a markdown header line (`### END`) inside a message whose original has none (the model
  going on past the prompt in the view's own syntax). A one-message reply may omit its header.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from rapidfuzz.distance import Levenshtein

from gpo_action.errors import TemplateError
from gpo_action.optimize.chatfiles import rebuild_chat
from gpo_action.templates import PromptTemplate, parse_template, template_variables

_CODE_START = re.compile(r"\{\{|\{%|\{#")
_FREEZE = re.compile(r"\{#-?\s*gpo:freeze\s*-?#\}")
_FREEZE_END = re.compile(r"\{#-?\s*gpo:end\s*-?#\}")
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}")
_END_RAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_NAME_ONLY = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")
_HEADER = re.compile(r"^[ \t]*#{2,4}[ \t]*(system|user|assistant)[ \t]*(?:message)?[ \t]*:?[ \t]*$",
                     re.IGNORECASE | re.MULTILINE)
_MARKDOWN_HEADER = re.compile(r"^[ \t]*#{2,}", re.MULTILINE)
STRUCTURE = ("statement", "comment", "frozen")
_STEMS = {"expression": "value", "statement": "code", "comment": "note", "frozen": "fixed"}


@dataclass(frozen=True)
class Style:
    """How placeholders are written: `open` + stem + `close`; `named`: a variable's own name as the
    stem of an expression that only reads it, kind names for the rest (else all numbered 1, 2, ...)."""

    open: str = "["
    close: str = "]"
    named: bool = False

    def pattern(self) -> re.Pattern[str]:
        """Any text in placeholder form (what a reply may have mangled)."""
        inner = "".join(sorted({re.escape(c) for c in self.open + self.close}))
        return re.compile(re.escape(self.open) + f"[^{inner}\n]{{1,40}}" + re.escape(self.close))


STYLE = Style()


def header(role: str) -> str:
    return f"### {role}"


def split_code(source: str) -> list[tuple[str, str]]:
    """The source as (kind, text) pieces in order: kind "text" or one of "expression",
    "statement", "comment", "frozen". Joined, the texts give the source back."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while (found := _CODE_START.search(source, pos)) is not None:
        start, opener = found.start(), found.group()
        if opener == "{#":
            freeze = _FREEZE.match(source, start)
            closing = _FREEZE_END.search(source, freeze.end()) if freeze else None
            if closing is not None:
                kind, end = "frozen", closing.end()
            else:
                close = source.find("#}", found.end())
                kind, end = "comment", len(source) if close < 0 else close + 2
        elif opener == "{{":
            kind, end = "expression", _closing(source, found.end(), "}}")
        else:
            kind, end = "statement", _closing(source, found.end(), "%}")
            if _RAW.match(source, start) and (closing := _END_RAW.search(source, end)) is not None:
                end = closing.end()
        if start > pos:
            pieces.append(("text", source[pos:start]))
        pieces.append((kind, source[start:end]))
        pos = end
    if pos < len(source):
        pieces.append(("text", source[pos:]))
    return pieces


def _closing(source: str, pos: int, close: str) -> int:
    """The end of a tag opened before `pos`: the first `close` outside string literals and brackets."""
    depth, quote, i = 0, "", pos
    while i < len(source):
        char = source[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif depth == 0 and source.startswith(close, i):
            return i + len(close)
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        i += 1
    return len(source)


def structure(source: str) -> tuple[tuple[str, str], ...]:
    """The pieces of code a candidate must keep: statements, comments and frozen regions, in order."""
    return tuple(piece for piece in split_code(source) if piece[0] in STRUCTURE)


@dataclass(frozen=True)
class Reading:
    """A reply turned back into template source, or the reason it cannot be. `marked`: the text
    came from between the markers (see `candidates.extract_text`), not from the fallback rule."""

    source: str | None
    reason: str | None = None
    marked: bool = True


class View:
    """How one template, and prompts derived from it, are shown to the optimizer and read back.

    Built from the original and the other prompts one meta-prompt shows (`prompts`), so every code
    piece among them has a token, the original's first: the same texts give the same tokens."""

    def __init__(self, original: PromptTemplate, prompts: Iterable[str] = (), style: Style = STYLE):
        self.original, self._any = original, style.pattern()
        self.headers = tuple(header(m.role) for m in original.messages)
        texts = [m.source for m in original.messages]
        for prompt in prompts:
            texts.extend(self._contents(prompt) or ())
        self._tokens: dict[str, str] = {}        # code -> token
        self._codes: dict[str, str] = {}         # token key (lower case, no spaces) -> code
        self._named: dict[str, str] = {}         # variable -> token of `{{ variable }}` (any spacing)
        plain = "".join(text for source in texts for kind, text in split_code(source) if kind == "text")
        self._literal = {_key(token) for token in self._any.findall(plain)}  # text that looks like a token
        self._style, self._plain, self._counts = style, plain, Counter()
        for source in texts:
            for kind, code in split_code(source):
                if kind == "text" or code in self._tokens:
                    continue
                named = _NAME_ONLY.fullmatch(code) if kind == "expression" else None
                if named and named[1] in self._named:
                    self._tokens[code] = self._named[named[1]]
                    continue
                token = self._new_token(named[1] if named and style.named else _STEMS[kind])
                self._tokens[code], self._codes[_key(token)] = token, code
                if named:
                    self._named[named[1]] = token

    def _new_token(self, stem: str) -> str:
        """A token unused so far and absent from the templates' text: a variable's name as it is,
        kind stems numbered (numbered style: one count over all)."""
        style = self._style
        counter = stem if style.named else ""
        while True:
            named_variable = style.named and stem not in _STEMS.values() and not self._counts[counter]
            self._counts[counter] += 1
            name = stem if named_variable else f"{stem if style.named else ''}{self._counts[counter]}"
            token = style.open + name + style.close
            if token not in self._plain and _key(token) not in self._codes:
                return token

    def label(self, variable: str) -> str:
        """How a case's variable is named beside its value in a meta-prompt: its placeholder when
        the template reads it as `{{ variable }}`, else its name."""
        return self._named.get(variable, variable)

    # ---- showing ------------------------------------------------------------------------------
    def show(self, prompt: str) -> str:
        """A prompt (a template source derived from the original) as the optimizer sees it."""
        contents = self._contents(prompt)
        if contents is None:  # not of the original's form (never for a checked candidate): as it is
            return prompt.rstrip("\n")
        return "\n".join(f"{head}\n{self._shown(c).rstrip()}" for head, c in zip(self.headers, contents))

    def _shown(self, content: str) -> str:
        return "".join(self._tokens.get(code, code) if kind != "text" else code for kind, code in split_code(content))

    def tokens(self, prompt: str | None = None, kinds: Sequence[str] | None = None, *,
               reading: bool = False) -> list[str]:
        """The tokens a prompt (default: the original) shows, in order of first appearance: those of
        code of `kinds` (default: all); with `reading`, only expressions that read a variable."""
        found: list[str] = []
        for content in self._contents(prompt if prompt is not None else self.original.source) or ():
            for kind, code in split_code(content):
                if kind == "text" or (kinds is not None and kind not in kinds):
                    continue
                if reading and (kind != "expression" or not _reads_variables(code)):
                    continue
                token = self._tokens.get(code)
                if token is not None and token not in found:
                    found.append(token)
        return found

    # ---- reading back -------------------------------------------------------------------------
    def read(self, text: str) -> Reading:
        """The template source a reply's text (markers already removed) stands for."""
        parts = self._parts(text)
        if parts is None:
            return Reading(None, "roles-changed")
        parts = self._refill(parts)
        contents = []
        for part, message in zip(parts, self.original.messages):
            content, why = self._restore(part)
            if why is not None:
                return Reading(None, why)
            if structure(content) != structure(message.source):
                frozen = [c for k, c in structure(content) if k == "frozen"]
                wanted = [c for k, c in structure(message.source) if k == "frozen"]
                return Reading(None, "frozen" if frozen != wanted else "syntax")
            trailing = message.source[len(message.source.rstrip("\r\n")):]
            contents.append(content.rstrip() + trailing)
        if self.original.kind == "text":
            return Reading(contents[0])
        return Reading(*rebuild_chat(self.original, contents))

    def _parts(self, text: str) -> list[str] | None:
        """The reply's text of each message, or None when its header lines do not match."""
        found = list(_HEADER.finditer(text))
        if not found and len(self.headers) == 1:  # one message: a reply without its header is that message
            return [_cut(text, self.original.messages[0].source).strip("\n")]
        roles = [m[1].lower() for m in found]
        wanted = [m.role for m in self.original.messages]
        if roles[:len(wanted)] != wanted or text[:found[0].start()].strip():
            return None
        ends = [m.start() for m in found[1:]] + [len(text)]  # a header past the last message ends it
        return [_cut(text[m.end():end], message.source).strip("\n")
                for m, end, message in zip(found, ends, self.original.messages)]

    def _refill(self, parts: list[str]) -> list[str]:
        """The parts with each input slot put back that the reply filled with text of its own: a
        variable's placeholder the original shows once, on a line that starts with a label
        (`Review: [1]`), and the reply nowhere holds, goes back after that label on the one reply
        line that starts with it; the rest of that line (an example input) goes."""
        present = {_key(token) for part in parts for token in self._any.findall(part)}
        shown = [self._shown(m.source) for m in self.original.messages]
        parts = list(parts)
        for token in self.tokens(kinds=("expression",), reading=True):
            if _key(token) in present or sum(text.count(token) for text in shown) != 1:
                continue
            index = next(i for i, text in enumerate(shown) if token in text)
            line = next(line for line in shown[index].split("\n") if token in line)
            label, tail = line.split(token, 1)
            parts[index] = _put_in_slot(parts[index], label, token, tail)
        return parts

    @property
    def lead(self) -> str:
        """The header a reply starts with, when no other message has its role (so a second one can
        only mean the reply started over: a stop string); "" otherwise."""
        roles = [m.role for m in self.original.messages]
        return self.headers[0] if roles.count(roles[0]) == 1 else ""

    def _restore(self, text: str) -> tuple[str, str | None]:
        unknown: list[str] = []

        def put_back(match: re.Match) -> str:
            key = _key(match.group())
            code = self._codes.get(key)
            if code is None and key not in self._literal and self._mangled(key):
                unknown.append(match.group())
            return match.group() if code is None else code

        pieces = split_code(text)  # code the optimizer wrote itself stays as it is
        restored = "".join(self._any.sub(put_back, piece) if kind == "text" else piece for kind, piece in pieces)
        return restored, ("variables" if unknown else None)

    def _mangled(self, key: str) -> bool:
        """Whether an unknown token is a known one misspelt ([reviews], [Review1]), not ordinary
        bracketed text ([positive/negative]), which stays as written."""
        inner = _stem(key)
        return any(Levenshtein.distance(inner, _stem(known)) <= max(1, len(_stem(known)) // 4) for known in self._codes)

    def _contents(self, prompt: str) -> list[str] | None:
        """The message contents of a prompt of the original's form, or None if it is not one."""
        if self.original.kind == "text":
            return [prompt]
        try:
            return [m.source for m in parse_template(prompt, self.original.path, "chat").messages]
        except TemplateError:
            return None


def _cut(text: str, original: str) -> str:
    """A message's text up to a markdown header line ("### END", "## Next prompt"): the model
    going on past the prompt in the view's own syntax; kept when the original has such lines."""
    if _MARKDOWN_HEADER.search(original):
        return text
    found = _MARKDOWN_HEADER.search(text)
    return text if found is None else text[:found.start()]


def _put_in_slot(text: str, label: str, token: str, tail: str) -> str:
    """`text` with the rest of its one line that starts with `label` (stripped; it must hold a
    letter) replaced by `token`, and by `tail` after it when the reply's line ends with that too
    (`Review: [1].`); `text` as it is without exactly one such line."""
    name, space = label.strip(), label[len(label.rstrip()):]
    if not re.search(r"[^\W\d_]", name):  # a label names the input ("Review:"); "-" or "1." does not
        return text
    lines = text.split("\n")
    found = [i for i, line in enumerate(lines) if line.lstrip().startswith(name)]
    if len(found) != 1:
        return text
    line = lines[found[0]]
    cut = line.index(name) + len(name)
    keep = tail if tail.strip() and line.rstrip().endswith(tail.strip()) else ""
    lines[found[0]] = line[:cut] + space + token + keep
    return "\n".join(lines)


def _key(token: str) -> str:
    return re.sub(r"\s+", "", token).lower()


def _stem(key: str) -> str:
    """A token's name without brackets, spaces, underscores or dashes."""
    return re.sub(r"[\W_]+", "", key)


def _reads_variables(code: str) -> bool:
    try:
        return bool(template_variables(code))
    except TemplateError:
        return False
