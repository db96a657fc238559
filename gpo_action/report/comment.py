"""The sticky pull-request comment: the run's verdicts, and for each failing suite what changed,
the fix GPO found (or why none), its chart and cost, and where the fix went.

    body = pr_comment(run_result, fixes=fix_report, delivery={"sentiment": DeliveryNote(...)},
                      skipped_models={"openai/gpt-4o-mini": "OPENAI_API_KEY is not set"})

Composes `markdown.py` (its table, flipped cases and escaping rules) and `chart.py`. Everything
that comes from a prompt, a case or a model goes inside `<pre>` with HTML escaped (word diffs,
case details) or inside a fence longer than any backtick run in it (`suggestions.render_diff`),
so a case cannot inject a suggestion, a link or hidden text. The body stays under `max_chars`
(GitHub refuses comments over 65,536 characters) by leaving out, in order: flipped-case details,
the prompt diffs of suites that did not fail, the notes, the fix details (their one-line
summaries stay), then the failing suites' own prompt diffs; never the verdict table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from gpo_action.optimize.diffs import diff_stats, word_diff
from gpo_action.optimize.results import TEST_NAMES, p_text, versus_base
from gpo_action.report.chart import trajectory_chart
from gpo_action.report.fixtext import holdout_text, location_text, refinement_text
from gpo_action.report.formats import format_cost, pct
from gpo_action.report.markdown import (MARKER, VERDICT_ICON, cell, clip, code, defuse, escape_pre, flipped_section,
                                        verdict_table)

MAX_CHARS = 65_000
MAX_WORD_DIFF_CHARS = 6_000                # a word diff in the comment (delivery.MAX_FIX_DIFF_CHARS: a fix's diff)
MAX_EDIT_CHARS = 400                      # one located edit, quoted in the comment


@dataclass(frozen=True)
class DeliveryNote:
    """Where one suite's fix went: `lines` are Markdown the caller made safe (escaped with
    `markdown.cell`), `diffs` are fenced ```diff blocks (`suggestions.render_diff`)."""

    lines: tuple[str, ...] = ()
    diffs: tuple[str, ...] = ()


@dataclass
class _Part:
    text: str
    level: int = 0                 # 0: always kept; 1..5: dropped in this order to fit
    short: str | None = None       # what stays when the part is dropped (else one placeholder per level)
    kept: bool = field(default=True)


def word_diff_html(old: str, new: str, limit: int = MAX_WORD_DIFF_CHARS) -> str:
    """The word diff of old -> new in a `<pre>`, deletions in <del>, insertions in <ins>, HTML escaped,
    cut after about `limit` characters of text."""
    out, used = [], 0
    for kind, text in word_diff(old, new):
        if used + len(text) > limit:
            text = text[: max(0, limit - used)]
            out.append(_tagged(kind, text) + escape_pre(f" … (diff cut at {limit:,} characters)"))
            break
        used += len(text)
        out.append(_tagged(kind, text))
    return "<pre>" + "".join(out) + "</pre>"


def _tagged(kind: str, text: str) -> str:
    escaped = escape_pre(text)
    return escaped if kind == "equal" or not text else f"<{kind[:3]}>{escaped}</{kind[:3]}>"


def budget_text(caps: Mapping[str, float]) -> str:
    parts = []
    if caps.get("max_calls") is not None:
        parts.append(f"{int(caps['max_calls']):,} calls")
    if caps.get("max_usd") is not None:
        parts.append(f"${caps['max_usd']:.2f}")
    if caps.get("max_seconds") is not None:
        parts.append(f"{caps['max_seconds']:.0f} s")
    if caps.get("max_tokens") is not None:
        parts.append(f"{int(caps['max_tokens']):,} tokens")
    return ", ".join(parts) or "no cap"


def spent_text(spent: Mapping[str, Any]) -> str:
    n = spent.get("calls", 0)
    calls = f"{n:,} call{'s' * (n != 1)}"
    if "task_calls" in spent:
        calls += f" (task {spent.get('task_calls', 0)}, optimizer {spent.get('optimizer_calls', 0)})"
    return (f"{calls}, {spent.get('tokens', 0):,} tokens, {format_cost(spent.get('cost'))}, "
            f"{spent.get('seconds', 0.0):.0f} s")


def skipped_notice(result, skipped_models: Mapping[str, str]) -> str:
    """The plain statement of what could not be evaluated, why, and whether that fails the check
    ("" when nothing was skipped): neutral where the run says why it may pass (`skips_pass`: a fork's
    pull request, `gate.allow_skipped`), else a failure (exit 2) with the fix."""
    from gpo_action.llm.availability import fix_text
    from gpo_action.report.formats import run_counts

    counts = [(c.suite, c.base_skipped, c.head_skipped) for c in result.comparisons
              if getattr(c, "base_skipped", 0) or getattr(c, "head_skipped", 0)]
    if not skipped_models and not counts:
        return ""
    sizes = {}
    for side, results in (("base", result.base_results), ("head", result.head_results)):
        for r in results:
            if r is not None:
                sizes[(r.name, side)] = len(r.cases)
    totals = run_counts(result)
    nothing = bool(totals) and all(skipped == total for _, skipped, total in totals)
    models = "; ".join(f"{code(name)}: {cell(reason)}" for name, reason in skipped_models.items())
    passes = getattr(result, "skips_pass", None)
    what = "Nothing was evaluated" if nothing else "Not everything was evaluated"
    if passes:
        lines = ["> [!NOTE]",
                 f"> **{what}; this does not fail the check:** {cell(passes)}. No usable key for "
                 f"{models or 'some models'}; this run used what the response cache (`.gpo/`) or a replay file "
                 "holds and skipped the rest."]
    else:
        lines = ["> [!CAUTION]",
                 f"> **{what}, so the check fails (exit 2):** no usable key or model for {models or 'some models'}, "
                 "and the response cache (`.gpo/`) did not hold the answers. A check that checked nothing does not "
                 f"pass. {cell(fix_text(skipped_models))}."]
    for suite, base, head in counts:
        where = [f"{n} of {sizes.get((suite, side), '?')} cases on {side}" for side, n in (("base", base), ("head", head)) if n]
        lines.append(f"> - {cell(suite)}: skipped {', '.join(where)}")
    if passes:
        lines.append("> Suites with skipped cases get the neutral verdict *skipped*; the check does not fail for them.")
    return "\n".join(lines) + "\n"


def power_notice(result) -> str:
    """Which "unchanged" verdicts say little because the suite is too small to detect the gate's
    max_drop (`Comparison.power_note`), or ""."""
    lines = [f"> - {cell(c.suite)}: unchanged, but {cell(c.power_note)}" for c in result.comparisons
             if getattr(c, "power_note", None)]
    if not lines:
        return ""
    return "\n".join(["> [!NOTE]", "> **Too few cases to tell.** An unchanged verdict here is no evidence that "
                       "nothing got worse:"] + lines) + "\n"


def policy_notice(policy) -> str:
    """What the change sets differently from the base's policy, and whose was applied ("" when nothing)."""
    from gpo_action.policy import MAX_LISTED

    if policy is None or not policy.changes:
        return ""
    if policy.enforced:
        lines = ["> [!CAUTION]",
                 "> **This pull request changes the policy that judges it; the base's policy was applied.** "
                 "The gate, the fix budget, the cache and every model endpoint and key come from the base's "
                 "`gpo.yaml` (a workflow can opt out with the input `trust-head-config: true`)."]
    else:
        lines = ["> [!WARNING]",
                 f"> **This change sets the policy that judges it, and it was applied:** {cell(policy.why)}."]
    lines += [f"> - {cell(c.message)}" for c in policy.changes[:MAX_LISTED]]
    if len(policy.changes) > MAX_LISTED:
        lines.append(f"> - …and {len(policy.changes) - MAX_LISTED} more (see the JSON report)")
    return "\n".join(lines) + "\n"


# Reasons (basehead._identity) that change the yardstick rather than the prompt: each side is
# scored by its own suite, so a head that weakens its suite grades itself.
JUDGING_REASONS = ("cases changed", "assertions changed", "settings changed")


def judging_notice(result) -> str:
    """Which suites this change judges differently (their cases, assertions or repeats), or ""."""
    compared = {c.suite for c in result.comparisons}
    changed = [(c.name, [r for r in c.reasons if r in JUDGING_REASONS]) for c in result.changes
               if c.base is not None and c.head is not None and c.name in compared]
    changed = [(name, reasons) for name, reasons in changed if reasons]
    if not changed:
        return ""
    lines = ["> [!IMPORTANT]",
             "> **This pull request changes how it is judged.** Each side is scored by its own version of "
             "the suite, so review these changes as closely as the prompts:"]
    lines += [f"> - {cell(name)}: {', '.join(reasons)}" for name, reasons in changed]
    return "\n".join(lines) + "\n"


def change_diff(change) -> str:
    """The pull request's own prompt change of a suite (base -> head), or "" when the prompt did not change."""
    if change is None or change.base is None or change.head is None:
        return ""
    old, new = change.base.template.source, change.head.template.source
    return "" if old == new else word_diff_html(old, new)


def holdout_rule(result) -> str:
    """Why the best candidate was or was not proposed, by the significance rule ("" when it was not tested);
    for a located revert also how it compares with the base prompt."""
    if result.holdout_p is None:
        if not result.holdout_guard and result.best != result.original:
            return "Not proposed: there are no holdout cases to confirm it (the suite is too small to hold cases out)."
        return ""
    test = f"the one-sided {TEST_NAMES.get(result.holdout_test, result.holdout_test)} test at α = {result.alpha:g}"
    cases = f"{result.holdout_paired} holdout case{'s' * (result.holdout_paired != 1)}"
    beats = f"it beats the head prompt on the {cases} by {test} ({p_text(result.holdout_p)})"
    versus = versus_base(result)
    if result.proposed:
        return f"Proposed because {beats}" + (f", and is {versus}." if versus else ".")
    if result.best_holdout is not None and result.original_holdout is not None \
            and result.best_holdout > result.original_holdout:
        if result.holdout_p < result.alpha and result.located_fix:
            if versus:
                return (f"Not proposed: {beats}, but it is {versus}: reverting the located edits does not bring "
                        "back what the base prompt did, and a located revert is proposed only when it does.")
            return (f"Not proposed: {beats}, but the check against the base prompt could not run; a located "
                    "revert is proposed only when it is not significantly worse than the base.")
        return (f"Not proposed: the gain on the {cases} is not significant by {test} ({p_text(result.holdout_p)}); "
                "a fix is proposed only when it is.")
    return f"Not proposed: it does not beat the head prompt on the {cases} (a fix must, by {test})."


def fix_section(fix, delivery: DeliveryNote | None) -> tuple[str, str]:
    """(full text, one-line summary) of one suite's fix."""
    result = fix.result
    if result is None:
        line = f"**Fix:** {cell(fix.skipped or 'not attempted')}"
        return line + "\n", line + "\n"
    icon = "✅" if result.proposed else "➖"
    held = holdout_text(result)
    said = "improved" if result.proposed else cell(result.message)
    if result.proposed and result.located_fix:
        reverted = len(result.location.get("culprits") or ())
        said = f"fix proposed: it reverts {reverted} of your {result.location.get('hunks')} edits"
    summary = (f"**Fix ({cell(result.steps_done)}/{cell(result.steps)} GPO steps):** {icon} {said} "
               f"· {held} · dev {pct(result.original_dev)} → {pct(result.best_dev)} · "
               f"{result.edit_words} words changed")
    lines = [summary, ""]
    located = location_text(result.location, lambda edit: code(clip(edit, MAX_EDIT_CHARS)))
    if located:
        lines += [f"**Located:** {located}", ""]
    refined = refinement_text(result, cell)
    if refined:
        lines += [f"**Refined:** {refined}", ""]
    unproposed = "Located revert" if result.located_fix else "Best candidate"
    lines += ["| | dev | holdout |", "|---|---:|---:|",
              f"| head prompt | {pct(result.original_dev)} | {pct(result.original_holdout)} |",
              f"| {'proposed' if result.proposed else unproposed.lower()} | {pct(result.best_dev)} | "
              f"{pct(result.best_holdout)} |"]
    if result.located_fix:
        lines.append(f"| base prompt | {pct(result.location.get('base_score'))} | {pct(result.base_holdout)} |")
    lines.append("")
    rule = holdout_rule(result)
    if rule:
        lines += [rule, ""]
    if result.best != result.original:
        deleted, inserted = diff_stats(word_diff(result.original, result.best))
        label = "Proposed change" if result.proposed else f"{unproposed}, not proposed"
        lines += [f"{label}: {result.edit_words} words (−{deleted} +{inserted})", "",
                  word_diff_html(result.original, result.best), ""]
    chart = trajectory_chart(fix.points, f"{fix.suite}: dev score by step")
    if chart:
        lines += [chart, ""]
    stop = f"; stopped at {cell(result.stop_reason)}" if result.stop_reason else ""
    lines.append(f"Spent {spent_text(result.spent)} of this suite's share ({budget_text(fix.share)}){stop}.")
    if result.rejected and not refined:
        lines.append("Rejected candidates: " + ", ".join(f"{cell(k)} {v}" for k, v in sorted(result.rejected.items()))
                     + ".")
    lines += [f"Note: {cell(w)}" for w in result.warnings]
    if delivery is not None:
        lines += [""] + list(delivery.lines) + [""] + list(delivery.diffs)
    short = summary + (" " + " ".join(delivery.lines) if delivery is not None and delivery.lines else "")
    return "\n".join(lines) + "\n", short + "\n"


def pr_comment(result, fixes=None, delivery: Mapping[str, DeliveryNote] | None = None,
               skipped_models: Mapping[str, str] | None = None, notes: Sequence[str] = (),
               max_chars: int = MAX_CHARS, byline: str = "") -> str:
    """The whole comment, under `max_chars` (see the module docstring for what is cut first);
    `byline` (Markdown the caller made safe) says under the heading which command made this version."""
    delivery = delivery or {}
    head = [MARKER, "## gpo-action", ""] + ([byline, ""] if byline else [])
    notice = skipped_notice(result, skipped_models or {})
    policy = policy_notice(getattr(result, "policy", None))
    judging = judging_notice(result)
    if not result.comparisons:
        body = head + ([policy] if policy else []) + ([notice] if notice else []) + [
            "No prompt, suite or model change to evaluate."]
        body += [f"- {cell(n)}" for n in list(result.notes) + list(notes)]
        return _defused("\n".join(body)[:max_chars])
    parts = [_Part("\n".join(head + [verdict_table(result), ""]) + "\n")]
    if policy:
        parts.append(_Part(policy + "\n"))
    power = power_notice(result)
    if power:
        parts.append(_Part(power + "\n"))
    if judging:
        parts.append(_Part(judging + "\n"))
    if notice:
        parts.append(_Part(notice + "\n"))
    changes = {c.name: c for c in result.changes}
    fix_of = {f.suite: f for f in (fixes.fixes if fixes is not None else ())}
    for c in result.comparisons:
        fix = fix_of.get(c.suite)
        if not c.failed and fix is None:
            continue
        change = changes.get(c.suite)
        renamed = f" (renamed from {cell(change.base_name)})" if change is not None and change.base_name else ""
        title = (f"### {VERDICT_ICON.get(c.verdict, '')} {cell(c.suite)}{renamed}: {c.verdict}, "
                 f"{pct(c.base_score)} → {pct(c.head_score)}\n")
        diff = change_diff(change)
        parts.append(_Part(title + "\n"))
        if c.verdict == "removed":
            where = f" ({code(change.prompt)})" if change is not None else ""
            parts.append(_Part(f"The base has this suite{where} and this pull request does not. Removing a suite "
                               "fails the check unless the base's gate allows it (`gate.allow_removed: true`).\n\n"))
        if diff:
            parts.append(_Part(f"What changed in {code(change.prompt)} (base → head):\n\n{diff}\n\n", level=5,
                               short=f"*(the diff of {code(change.prompt)} was left out to fit)*\n\n"))
        if fix is not None:
            full, short = fix_section(fix, delivery.get(c.suite))
            parts.append(_Part(full + "\n", level=4, short=short + "\n"))
        elif fixes is not None and c.suite in fixes.unfixed:
            parts.append(_Part(f"**Fix:** {cell(fixes.unfixed[c.suite])}\n\n"))
    parts += [_Part(flipped_section(c) + "\n", level=1) for c in result.comparisons
              if c.verdict != "unchanged" or c.flipped]
    others = [(c, changes.get(c.suite)) for c in result.comparisons if not c.failed and c.suite not in fix_of]
    other_diffs = [f"**{cell(c.suite)}** ({code(ch.prompt)})\n\n{change_diff(ch)}\n" for c, ch in others
                   if change_diff(ch)]
    if other_diffs:
        parts.append(_Part("<details><summary>Prompt changes of the other suites</summary>\n\n"
                           + "\n".join(other_diffs) + "\n</details>\n\n", level=2))
    note_lines = [f"- {cell(c.suite)}: {cell(n)}" for c in result.comparisons for n in c.notes]
    note_lines += [f"- {cell(n)}" for n in list(result.notes) + list(fixes.notes if fixes else ()) + list(notes)]
    if note_lines:
        parts.append(_Part("**Notes**\n" + "\n".join(note_lines) + "\n\n", level=3))
    parts.append(_Part(_footer(result, fixes)))
    return _fit(parts, max_chars)


def _defused(body: str) -> str:
    """The comment with every `<!--` after its own leading marker defused (`markdown.defuse`)."""
    return MARKER + defuse(body[len(MARKER):]) if body.startswith(MARKER) else defuse(body)


def _footer(result, fixes) -> str:
    usage = result.usage or {}
    text = (f"\nEvaluation: {usage.get('calls', 0)} model calls ({usage.get('cache_hits', 0)} from cache), "
            f"{usage.get('tokens', 0):,} tokens, {format_cost(usage.get('cost'))}. "
            f"Base {code(result.base_sha[:12])}, head: {cell(result.head)}.\n")
    if fixes is not None and fixes.fixes:
        n = len(fixes.fixes)
        text += (f"Fix budget for this pull request: {budget_text(fixes.total)}, split across {n} "
                 f"suite{'s' * (n != 1)}; spent {spent_text(fixes.spent)}.\n")
    return text


_PLACEHOLDER = {1: "*(flipped-case details left out to fit)*\n\n", 2: "*(other suites' prompt diffs left out to fit)*\n\n",
                3: "*(notes left out to fit)*\n\n"}


def _render(parts: list[_Part]) -> str:
    out, placed = [], set()
    for part in parts:
        if part.kept:
            out.append(part.text)
        elif part.short is not None:
            out.append(part.short)
        elif part.level not in placed:
            placed.add(part.level)
            out.append(_PLACEHOLDER[part.level])
    return "".join(out)


def _fit(parts: list[_Part], max_chars: int) -> str:
    """The parts, defused (`_defused`: measured as sent), dropping levels until they fit."""
    text = _defused(_render(parts))
    for level in (1, 2, 3, 4, 5):
        for part in reversed([p for p in parts if p.level == level]):
            if len(text) <= max_chars:
                return text
            part.kept = False
            text = _defused(_render(parts))
    if len(text) <= max_chars:
        return text
    cut = "\n\n*(comment cut to fit GitHub's limit)*\n"
    return text[: max(0, max_chars - len(cut))] + cut
