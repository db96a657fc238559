"""The `regex` assertion's patterns: JavaScript syntax, as promptfoo reads them, run by Python.

promptfoo tests `new RegExp(value).test(output)`: JavaScript syntax, no flags (so no `u`, and a
`/.../i` value is a pattern that matches its slashes). `translate(value)` gives the Python pattern
that matches the same texts, once the text is seen as JavaScript sees it (UTF-16 units:
`jsvalues.utf16_units`). What it translates:

- `\\d \\w \\s \\b` (and their capitals) as JavaScript defines them: ASCII digits and word
  characters, JavaScript's whitespace set; `.` excludes the four line terminators (\\n \\r
  \\u2028 \\u2029); `$` is the end of the text (Python's `$` also matches before a last newline);
- `(?<name>...)` and `\\k<name>`; `\\uXXXX`, `\\xHH`, `\\cX`, `\\0`; `[^]` (any character) and
  `[]` (none); `{` that does not start a quantifier is a literal brace, as in JavaScript;
- a gpo-action extension, for suites written before: leading flags `(?i)`, `(?m)`, `(?s)` (or
  a combination) apply JavaScript's i, m and s flags. promptfoo refuses such a pattern.

Refused with `JsRegexError` (a ValueError) naming the construct: `/pattern/flags` (promptfoo would
match the slashes literally), `\\u{...}` (without the u flag JavaScript reads `\\u{41}` as 41 u's),
`\\p{...}`, an escaped letter JavaScript reads as the plain letter (`\\A`, `\\Z`, `\\z`, `\\e`,
...), inline groups other than those above (`(?P<...>`, `(?#...)`, `(?>...)`, flags later on),
possessive quantifiers, octal escapes and backreferences to groups that do not exist. Anything
else JavaScript accepts and Python's `re` refuses (a variable-width lookbehind) fails to compile,
with re's message.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gpo_action.jsvalues import JS_SPACES, utf16_units


class JsRegexError(ValueError):
    """A pattern gpo-action will not translate (the message says why and what to write)."""


_WORD = "A-Za-z0-9_"
_SPACE_CLASS = "".join(f"\\u{ord(c):04x}" for c in sorted(JS_SPACES))
_TERMINATORS = "\\n\\r\\u2028\\u2029"
_SHORTHAND = {
    "d": "[0-9]", "D": "[^0-9]",
    "w": f"[{_WORD}]", "W": f"[^{_WORD}]",
    "s": f"[{_SPACE_CLASS}]", "S": f"[^{_SPACE_CLASS}]",
}
_IN_CLASS = {"d": "0-9", "w": _WORD, "s": _SPACE_CLASS}
_BOUNDARY = f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))"
_NOT_BOUNDARY = f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_CONTROL = {"n": "\\n", "r": "\\r", "t": "\\t", "f": "\\f", "v": "\\v"}
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS_PREFIX = re.compile(r"\(\?([ims]+)\)")
_SLASHED = re.compile(r"/(.*)/([dgimsuvy]+)", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _char(code: int) -> str:
    """One code unit as a Python pattern atom (escaped unless it is an ASCII letter or digit)."""
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    if ch.isascii() and 0x20 < code < 0x7F:
        return "\\" + ch
    return f"\\u{code:04x}"


class _Translator:
    def __init__(self, source: str, flags: str):
        self.src = source
        self.flags = flags
        self.i = 0
        self.out: list[str] = []
        self.groups = _count_groups(source)
        self.names = set(re.findall(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", source))
        self.quantified = 0  # the last thing written: 1 a quantifier, 2 a lazy quantifier, 0 anything else
        self.repeatable = False  # may a quantifier follow (not at the start, after | or (, nor after ^ $ \b \B (?<=)
        self.opened: list[bool] = []  # per open group: is it a lookbehind (which JavaScript does not repeat)

    def fail(self, message: str) -> JsRegexError:
        return JsRegexError(f"{message} (at position {self.i} of the pattern)")

    def run(self) -> str:
        src = self.src
        while self.i < len(src):
            ch = src[self.i]
            was_quantified, self.quantified = self.quantified, 0
            repeatable, self.repeatable = self.repeatable, True
            if ch == "\\":
                self.repeatable = src[self.i + 1:self.i + 2] not in ("b", "B")
                self.escape()
            elif ch == "[":
                self.char_class()
            elif ch == "(":
                self.group()
            elif ch in "*+?" or (ch == "{" and _QUANTIFIER.match(src, self.i)):
                if was_quantified == 1 and ch == "?":
                    self.out.append("?")  # lazy
                    self.i += 1
                    self.quantified = 2
                    continue
                if was_quantified:
                    raise self.fail(f"nothing to repeat before {ch!r} (JavaScript has no possessive or double quantifiers)")
                if not repeatable:
                    raise self.fail(f"nothing to repeat before {ch!r} (JavaScript does not repeat ^, $, \\b, \\B or a lookbehind)")
                match = _QUANTIFIER.match(src, self.i) if ch == "{" else None
                self.out.append(match.group(0) if match else ch)
                self.i = match.end() if match else self.i + 1
                self.quantified = 1
            elif ch == ".":
                self.out.append("[\\s\\S]" if "s" in self.flags else f"[^{_TERMINATORS}]")
                self.i += 1
            elif ch == "^":
                self.out.append(f"(?:^|(?<=[{_TERMINATORS}]))" if "m" in self.flags else "^")
                self.i += 1
                self.repeatable = False
            elif ch == "$":
                self.out.append(f"(?=[{_TERMINATORS}]|\\Z)" if "m" in self.flags else "\\Z")
                self.i += 1
                self.repeatable = False
            elif ch == "|":
                self.out.append(ch)
                self.i += 1
                self.repeatable = False
            elif ch == ")":
                self.out.append(ch)
                self.i += 1
                self.repeatable = not (self.opened.pop() if self.opened else False)
            else:
                self.out.append(_char(ord(ch)))
                self.i += 1
        return "".join(self.out)

    def escape(self) -> None:
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise self.fail("the pattern ends with a lone backslash")
        c = src[i + 1]
        self.i = i + 2
        if c in _SHORTHAND:
            self.out.append(_SHORTHAND[c])
        elif c == "b":
            self.out.append(_BOUNDARY)
        elif c == "B":
            self.out.append(_NOT_BOUNDARY)
        elif c.isdigit():
            self.out.append(self.number_escape(c))
        elif c == "k":
            match = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>").match(src, self.i)
            if not self.names or match is None or match.group(1) not in self.names:
                raise self.fail("\\k is a backreference only to a named group of the pattern")
            self.out.append(f"(?P={match.group(1)})")
            self.i = match.end()
        else:
            self.out.append(self.atom_escape(c))

    def number_escape(self, c: str) -> str:
        if c == "0" and not (self.i < len(self.src) and self.src[self.i].isdigit()):
            return "\\x00"
        start = self.i - 1
        while self.i < len(self.src) and self.src[self.i].isdigit():
            self.i += 1
        number = int(self.src[start:self.i])
        if c == "0" or number > self.groups:
            raise self.fail(f"\\{self.src[start:self.i]} is an octal escape in JavaScript (no group {number}); "
                            "write \\xHH or \\uXXXX")
        return f"(?:\\{number})"

    def atom_escape(self, c: str) -> str:
        """An escape that stands for one character (outside or inside a class)."""
        src = self.src
        if c in _CONTROL:
            return _CONTROL[c]
        if c == "x" and re.compile(r"[0-9A-Fa-f]{2}").match(src, self.i):
            self.i += 2
            return f"\\x{src[self.i - 2:self.i]}"
        if c == "u":
            if re.compile(r"[0-9A-Fa-f]{4}").match(src, self.i):
                self.i += 4
                return f"\\u{src[self.i - 4:self.i]}"
            if src.startswith("{", self.i):
                raise self.fail("\\u{...} needs JavaScript's u flag, which promptfoo does not set "
                                "(without it \\u{41} means 41 times 'u'); write \\uXXXX (surrogate pairs above FFFF)")
        if c == "c" and self.i < len(src) and src[self.i].isascii() and src[self.i].isalpha():
            self.i += 1
            return f"\\x{ord(src[self.i - 1]) % 32:02x}"
        if c in "pP":
            raise self.fail(f"\\{c}{{...}} needs JavaScript's u flag, which promptfoo does not set "
                            f"(without it \\{c} is the letter {c})")
        if c.isascii() and c.isalpha():
            raise self.fail(f"\\{c} is not an escape in JavaScript (it matches the letter {c!r}, which is rarely "
                            f"what was meant); write {c} for the letter")
        return _char(ord(c))

    def char_class(self) -> None:
        src = self.src
        self.i += 1
        negated = src.startswith("^", self.i)
        if negated:
            self.i += 1
        if src.startswith("]", self.i):  # JavaScript: [] matches nothing, [^] any one character
            self.i += 1
            self.out.append("[\\s\\S]" if negated else "(?!)")
            return
        items: list[tuple[str, int | None]] = []  # (pattern text, code unit or None for a set)
        dashes: set[int] = set()                  # indexes of unescaped "-" items (a range, if between two units)
        while True:
            if self.i >= len(src):
                raise self.fail("a character class is not closed with ]")
            ch = src[self.i]
            if ch == "]":
                self.i += 1
                break
            if ch == "\\":
                if self.i + 1 >= len(src):
                    raise self.fail("the pattern ends with a lone backslash")
                c = src[self.i + 1]
                self.i += 2
                if c in _IN_CLASS:
                    items.append((_IN_CLASS[c], None))
                elif c in "DWS":
                    raise self.fail(f"\\{c} inside [...] is not translated; write the class out")
                elif c == "b":
                    items.append(("\\x08", 8))
                elif c == "-":
                    items.append(("\\-", ord("-")))
                elif c.isdigit():
                    if c != "0" or (self.i < len(src) and src[self.i].isdigit()):
                        raise self.fail(f"\\{c} inside [...] is an octal escape in JavaScript; write \\xHH")
                    items.append(("\\x00", 0))
                else:
                    text = self.atom_escape(c)
                    items.append((text, _code_of(text)))
            else:
                if ch == "-":
                    dashes.add(len(items))
                items.append((_char(ord(ch)), ord(ch)))
                self.i += 1
        self.out.append("[" + ("^" if negated else "") + _class_body(items, dashes, self) + "]")

    def group(self) -> None:
        src, i = self.src, self.i
        self.repeatable = False
        behind = src.startswith(("(?<=", "(?<!"), i)
        self.opened.append(behind)
        if not src.startswith("(?", i):
            self.out.append("(")
            self.i += 1
            return
        for opener in ("(?:", "(?=", "(?!", "(?<=", "(?<!"):
            if src.startswith(opener, i):
                self.out.append(opener)
                self.i += len(opener)
                return
        if src.startswith("(?<", i):
            match = _NAME.match(src, i + 3)
            if match is None or not src.startswith(">", match.end()):
                raise self.fail("a group name must be letters, digits and _ (starting with a letter or _)")
            self.out.append(f"(?P<{match.group(0)}>")
            self.i = match.end() + 1
            return
        raise self.fail(f"{src[i:i + 4]!r}... is not a JavaScript group; only (?:...), (?=...), (?!...), "
                        "(?<=...), (?<!...) and (?<name>...) are (flags go first: (?i)...)")


def _code_of(text: str) -> int | None:
    """The code unit an escape written by `atom_escape` stands for."""
    if text.startswith("\\u") or text.startswith("\\x"):
        return int(text[2:], 16)
    if len(text) == 2 and text[0] == "\\":
        return {"n": 10, "r": 13, "t": 9, "f": 12, "v": 11}.get(text[1], ord(text[1]))
    return ord(text) if len(text) == 1 else None


def _class_body(items: list[tuple[str, int | None]], dashes: set[int], t: _Translator) -> str:
    """The items of a class, with `a-z` ranges kept (JavaScript refuses a reversed range; a `-`
    next to a set such as \\d is a literal dash there)."""
    out: list[str] = []
    k = 0
    while k < len(items):
        text, code = items[k]
        if code is not None and k + 1 in dashes and k + 2 < len(items) and items[k + 2][1] is not None:
            end = items[k + 2][1]
            if end < code:
                raise t.fail("a range in [...] goes backwards")
            out.append(f"{text}-{items[k + 2][0]}")
            k += 3
            continue
        out.append(text)
        k += 1
    return "".join(out)


def _count_groups(source: str) -> int:
    """Capturing groups in a JavaScript pattern: ( not followed by ?, or (?<name>, outside classes."""
    count, i, in_class = 0, 0, False
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if source.startswith("]", i + 1) or source.startswith("^]", i + 1):
                i += 3 if source[i + 1] == "^" else 2
                in_class = False
                continue
        elif ch == "(" and (not source.startswith("(?", i) or (source.startswith("(?<", i)
                                                              and not source.startswith(("(?<=", "(?<!"), i))):
            count += 1
        i += 1
    return count


@lru_cache(maxsize=512)
def translate(value: str) -> str:
    """The Python pattern for the JavaScript pattern `value` (see the module doc); JsRegexError."""
    if _SLASHED.fullmatch(value):
        raise JsRegexError(f"{value!r} looks like /pattern/flags, which promptfoo does not read: it would match the "
                           "slashes and letters literally; write the pattern alone, with leading flags as (?i) if needed, "
                           "or escape the slashes (\\/) to match them")
    flags = ""
    match = _FLAGS_PREFIX.match(value)
    if match:
        flags, value = match.group(1), value[match.end():]
    body = _Translator(utf16_units(value), flags).run()
    return ("(?i)" if "i" in flags else "") + body


__all__ = ["JsRegexError", "translate"]
