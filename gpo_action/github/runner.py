"""What a run leaves on the GitHub Actions runner: outputs, the job summary and annotations."""

from __future__ import annotations

from typing import IO, Mapping

from gpo_action.github.commands import MAX_ERROR_ANNOTATIONS, annotation, set_outputs, write_summary
from gpo_action.report.formats import pct


def first_changed_line(old: str | None, new: str) -> int:
    """1-based line of the first difference between two texts (1 when there is no old text)."""
    if old is None:
        return 1
    for number, (a, b) in enumerate(zip(old.splitlines(), new.splitlines()), start=1):
        if a != b:
            return number
    return min(len(old.splitlines()), len(new.splitlines())) + 1


def annotate_failures(result, stream: IO[str]) -> int:
    """`::error file=...,line=...::` on each failing suite's prompt, within GitHub's per-step limit."""
    prefix = "" if result.project_dir == "." else f"{result.project_dir}/"
    written = 0
    changes = {c.name: c for c in result.changes}
    for comparison in result.comparisons:
        if not comparison.failed or written >= MAX_ERROR_ANNOTATIONS:
            continue
        change = changes.get(comparison.suite)
        if comparison.verdict == "removed":          # no file of the head to point at
            annotation("error", f"suite {comparison.suite} removed: the base's gate does not allow removing a suite",
                       stream, title="gpo-action")
            written += 1
            continue
        if change is None or change.head is None:
            continue
        old = change.base.template.source if change.base is not None else None
        line = first_changed_line(old, change.head.template.source)
        annotation(
            "error", f"suite {comparison.suite} {comparison.verdict}: {pct(comparison.base_score)} -> "
            f"{pct(comparison.head_score)}", stream,
            file=f"{prefix}{change.prompt}", line=line, title="gpo-action",
        )
        written += 1
    return written


def publish_internal_error(code: int, stream: IO[str], env: Mapping[str, str]) -> None:
    """In GitHub Actions, after gpo-action itself failed: an annotation saying the failure is not
    a verdict on the change, and the `exit-code` output. Nothing outside Actions."""
    if not env.get("GITHUB_ACTIONS"):
        return
    annotation("error", f"gpo-action failed with an internal error (exit {code}), not a verdict on this change; "
               "the traceback is in the log", stream, title="gpo-action internal error")
    try:
        set_outputs({"exit-code": str(code)}, env)
    except OSError:  # best effort: the log has the traceback already
        pass


def publish_run(result, report_path: str | None, stream: IO[str], env: Mapping[str, str], *,
                markdown: str, outputs: Mapping[str, str] | None = None) -> None:
    """Outputs, summary and annotations; each is skipped quietly outside Actions. `markdown` is
    the summary, `outputs` adds outputs."""
    set_outputs(
        {
            "regressed": "true" if any(c.verdict == "regressed" for c in result.comparisons) else "false",
            "improved": "true" if any(c.verdict == "improved" for c in result.comparisons) else "false",
            "removed": "true" if any(c.verdict == "removed" for c in result.comparisons) else "false",
            "verdicts": ",".join(f"{c.suite}={c.verdict}" for c in result.comparisons),
            "exit-code": str(result.exit_code),
            "report-path": report_path or "",
            **(outputs or {}),
        },
        env,
    )
    write_summary(markdown, env)
    if env.get("GITHUB_ACTIONS"):
        annotate_failures(result, stream)
        unevaluated = sum(1 for c in result.comparisons if c.verdict == "skipped")
        if unevaluated and not getattr(result, "skips_pass", None):
            annotation("error", f"{unevaluated} suite{'s' * (unevaluated != 1)} could not be evaluated here (a "
                       "model without its key, or not installed): the check fails until it can be; the job "
                       "summary names the model and the fix", stream, title="gpo-action: not evaluated")
        for change in result.policy.changes:
            annotation("warning", change.message, stream, title="gpo-action policy")
