"""`/gpo` commands in a pull request's conversation: from a comment's body to a `Command`, pure.

    parse_command("LGTM, but\n/gpo fix budget=$0.50 steps=2")
    # Command(name="fix", budget_usd=0.5, steps=2, text="/gpo fix budget=$0.50 steps=2")

Only a line of the comment itself that starts with `/gpo` is a command: a quoted line (`> /gpo`, or
a line GitHub shows inside the quote above it), a line inside a fenced code block or an indented
one, inside an HTML comment or a `<pre>` (hidden, or shown as text) is text, and so is everything the pull request
itself holds (a prompt, a case, a commit message): those never reach this parser. The first command
line counts; a `/gpo` line with an unknown word, or a known one with arguments it does not take, is
`Command("unknown")`, which is answered with `help_text()`.

A command can lower the base's fix budget and steps, never raise them (`clamp`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMANDS = {
    "check": "compare the base and the head (no fix)",
    "fix": "compare, then search a fix within the base's budget; `budget=$N` and `steps=N` can lower it",
    "apply": "commit the proposed fix to the head branch (a fork's pull request gets the suggestion review)",
    "explain": "reply with the flipped cases and, for a located regression, the edit behind it",
}
PREFIX = "/gpo"
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_QUOTE = re.compile(r"^(?: {0,3}(?:(?:[-*+]|\d{1,9}[.)]) +)?>)+")  # also a quote that opens a list item
_TAG_OPEN = re.compile(r"<[a-z][a-z0-9-]*(?:\s[^>]*)?$")             # a tag whose attributes go on below
_REF_TITLE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+\s+([\"'(])(.*)$")   # a link definition's title
_OPENS = re.compile(r"<!--|<(pre|textarea|script|style)(?=[\s>/]|$)")
_BUDGET = re.compile(r"budget=\$?(\d+(?:\.\d+)?)", re.IGNORECASE)
_STEPS = re.compile(r"steps=(\d+)", re.IGNORECASE)
MAX_TEXT = 200                 # of the command line echoed back in a reply


@dataclass(frozen=True)
class Command:
    name: str                              # one of COMMANDS, or "unknown"
    budget_usd: float | None = None        # fix: asked for (clamped to the base's later)
    steps: int | None = None
    text: str = ""                         # the command line as written (cut at MAX_TEXT)
    problem: str = ""                      # unknown: what was wrong with it


def command_lines(body: str) -> list[str]:
    """The comment's own lines that start with `/gpo` and show as such: not quoted (a `>` line, or
    a lazy continuation of a quoted paragraph, which GitHub shows inside the quote), not in a
    fenced code block (closed only by a line of nothing but the fence) or indented as code (4
    spaces or a tab), not inside an HTML comment (hidden), a `<pre>`, `<textarea>`, `<script>` or
    `<style>` element (shown as text, or hidden), a tag whose attributes run on to later lines, or
    a link definition's title that does."""
    found: list[str] = []
    fence: str | None = None
    hidden = _Hidden()
    quoted = False                          # the line before was a quoted paragraph's
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if hidden.inside:
            hidden.scan(line)
            continue
        opened = _FENCE.match(line)
        if fence is not None:  # only a line of nothing but the fence closes it (CommonMark)
            if opened and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
                fence = None
            continue
        if opened:
            fence, quoted = opened.group(1), False
            continue
        stripped = line.strip()
        if _QUOTE.match(line):
            quoted = bool(_QUOTE.sub("", line).strip())
        elif quoted and stripped:            # lazy continuation: still the quote's paragraph
            pass
        elif not line.startswith(("    ", "\t")) and _is_command(stripped):
            found.append(stripped)
        if not stripped:
            quoted = False
        hidden.scan(line)
        title = _REF_TITLE.match(line)
        if title and not hidden.inside and {'"': '"', "'": "'", "(": ")"}[title.group(1)] not in title.group(2):
            hidden.closer = {'"': '"', "'": "'", "(": ")"}[title.group(1)]  # the title goes on below: hidden
    return found


def _is_command(stripped: str) -> bool:
    return stripped == PREFIX or stripped.startswith(PREFIX + " ") or stripped.startswith(PREFIX + "\t")


class _Hidden:
    """Whether the text so far leaves an HTML comment or a raw-text element (`_RAW`) open."""

    def __init__(self) -> None:
        self.closer: str | None = None       # what ends the open one: "-->" or "</pre", ...

    @property
    def inside(self) -> bool:
        return self.closer is not None

    def scan(self, line: str) -> None:
        low, pos = line.lower(), 0
        while True:
            if self.closer is not None:
                end = low.find(self.closer, pos)
                if end < 0:
                    return
                pos, self.closer = end + len(self.closer), None
            match = _OPENS.search(low, pos)
            if match is None:
                if _TAG_OPEN.search(low, pos):
                    self.closer = ">"  # a tag left open: what follows is its attributes, not text
                return
            self.closer = "-->" if match.group(0) == "<!--" else f"</{match.group(1)}"
            pos = match.end()


def parse_command(body: str) -> Command | None:
    """The first command of a comment's body, or None when it holds none."""
    lines = command_lines(body or "")
    if not lines:
        return None
    text = lines[0][:MAX_TEXT]
    words = lines[0].split()[1:]
    if not words:
        return Command("unknown", text=text, problem="no command given")
    name, args = words[0].lower(), words[1:]
    if name not in COMMANDS:
        return Command("unknown", text=text, problem=f"unknown command {name[:40]!r}")
    if name != "fix":
        return Command(name, text=text) if not args else Command("unknown", text=text,
                                                                 problem=f"/gpo {name} takes no arguments")
    budget = steps = None
    for arg in args:
        if match := _BUDGET.fullmatch(arg):
            budget = float(match.group(1))
        elif (match := _STEPS.fullmatch(arg)) and int(match.group(1)) >= 1:
            steps = int(match.group(1))
        else:
            return Command("unknown", text=text, problem=f"/gpo fix does not take {arg[:40]!r}")
    return Command("fix", budget, steps, text)


def help_text(problem: str = "") -> str:
    """The reply to an unknown command: what was wrong, and the known commands."""
    lines = [f"gpo-action did not understand that: {problem}." if problem else "gpo-action commands:", ""]
    lines += [f"- `{PREFIX} {name}`: {what}" for name, what in COMMANDS.items()]
    lines += ["", "Write the command at the start of a line of your comment (`/gpo fix budget=$0.50 steps=2`)."]
    return "\n".join(lines)


def clamp(asked_usd: float | None, asked_steps: int | None, max_usd: float, max_steps: int
          ) -> tuple[float, int, tuple[str, ...]]:
    """(dollars, steps, notes): what was asked, never above the base's caps; a note for each cap
    that was asked to rise."""
    notes = []
    usd, steps = max_usd, max_steps
    if asked_usd is not None:
        usd = min(asked_usd, max_usd)
        if asked_usd > max_usd:
            notes.append(f"budget=${asked_usd:g} asked; the base's gpo.yaml allows at most ${max_usd:g}, so "
                         f"${max_usd:g} was used (a command can lower the budget, never raise it)")
    if asked_steps is not None:
        steps = min(asked_steps, max_steps)
        if asked_steps > max_steps:
            notes.append(f"steps={asked_steps} asked; the base's gpo.yaml allows at most {max_steps}, so at most "
                         f"{max_steps} ran (a command can lower the steps, never raise them)")
    return usd, steps, tuple(notes)
