"""The replies a `/gpo` command gets in the pull request's conversation (`chatrun.py`), as Markdown:
everything that comes from a prompt, a case or a model is escaped as the sticky comment's is
(`markdown.py`), and the client scrubs every body for secrets before it is sent."""

from __future__ import annotations

import re

from gpo_action.report.comment import MAX_EDIT_CHARS
from gpo_action.report.fixtext import location_text
from gpo_action.report.formats import pct, verdict_label
from gpo_action.report.markdown import cell, clip, code, defuse, flipped_section

DENIED_MARKER = "<!-- gpo-action:not-allowed -->"
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\[bot\])?")
MAX_REPLY_CHARS = 60_000                 # under GitHub's 65,536


def mention(login: str) -> str:
    """@login, which GitHub links and notifies; a login GitHub would not issue is escaped instead."""
    return f"@{login}" if LOGIN.fullmatch(login) else f"@{cell(login)}"


def byline(login: str, command_text: str) -> str:
    """The sticky comment's line saying which command, by whom, made this version."""
    return f"*This version was asked for by {mention(login)} via {code(command_text)}.*"


def denied_reply(login: str) -> str:
    return (f"{mention(login)}, thank you: `/gpo` commands run with the repository's secrets, so only "
            "collaborators with write permission can give them. A maintainer can comment `/gpo check` "
            f"for you. (This is said once per pull request.)\n\n{DENIED_MARKER}")


def moved_text(evaluated: str, now: str, command_text: str) -> str:
    return (f"the pull request's head moved from {code(evaluated[:12])} to {code(now[:12])} during this run: "
            f"nothing was delivered (a verdict on an older head would be misread). Comment {code(command_text)} "
            "again to evaluate the new head")


def explain_reply(outcome, login: str, command_text: str, head_sha: str) -> str:
    """`/gpo explain`: per compared suite its verdict, the edit behind a located regression, and
    the flipped cases (input, expected, base and head outputs)."""
    result, fixes = outcome.result, outcome.fixes
    lines = [f"**gpo-action** {code(command_text)} for {mention(login)}, head {code(head_sha[:12])}:", ""]
    if not result.comparisons:
        lines.append("No prompt, suite or model change to evaluate.")
    located = {f.suite: f.result.location for f in (fixes.fixes if fixes is not None else ()) if f.result}
    sections = []
    for c in result.comparisons:
        lines.append(f"- {cell(c.suite)}: {cell(verdict_label(c))}, {pct(c.base_score)} → {pct(c.head_score)}, "
                     f"{len(c.flipped)} flipped case{'s' * (len(c.flipped) != 1)}")
        where = location_text(located.get(c.suite), lambda edit: code(clip(edit, MAX_EDIT_CHARS)))
        if where:
            lines.append(f"  - **Located:** {where}")
        elif c.verdict == "regressed":
            lines.append("  - The edit behind the drop was not located (the base's gpo.yaml sets "
                         "`optimize.localize: false`, or the budget ran out).")
        sections.append(flipped_section(c))
    if outcome.refused:
        lines += ["", f"> {outcome.refused}."]
    head = defuse("\n".join(lines))                 # no text of the pull request spells one of our markers
    body = head + "\n\n" + defuse("\n".join(s for s in sections if s))
    if len(body) <= MAX_REPLY_CHARS:
        return body
    return head[:MAX_REPLY_CHARS] + "\n\n*(the flipped cases are too long for a reply: see the JSON report)*"
