"""`gpo-action demo`: the whole pull-request pipeline, offline, on the bundled model.

1. A git repository (a temporary directory, or `keep_dir`) made from the repository's example
   project, shipped inside the package (`gpo_action/example/`: gpo.yaml, prompts/, evals/), with
   `models.task` pinned to `local/smollm2` so it stays offline even when a provider key is set.
2. On a branch, a commit that makes two edits to the sentiment prompt (`EDITS`): HARMLESS
   (the system message says "customer product reviews"), on which the 135M model scores as the
   base does, and HARMFUL (the user message adds "positive or negative" to its answer format),
   on which it answers "positive" to every review, so the suite regresses.
3. `pr_pipeline.execute` as in a pull request: base vs head, verdict, the fix stage (the search for
   the edit behind the drop, `optimize.localize`, finds HARMFUL; its revert is checked on the
   holdout cases against the head and the base; then a bounded GPO refinement from it, with the
   bundled model as the optimizer too, with what is left of the budget), and delivery rendered
   to files: `.gpo/demo/comment.md` (the sticky comment) and `review.json` (the suggestion review).
4. What it found, in a few lines: the located edit, the proposed fix with its holdout figures,
   its word diff, the suggestion's lines, and what the refinement found.

Exit code (`demo_exit_code`): 0 when the demo showed what it is for (the check failed on the
regression, as CI would, and a fix was proposed); 1 when it ended otherwise (no regression, or no
fix proposed); the check's own 2 or 3 (an input error, provider errors) as they are. The check's
exit code is printed on the last line.

`quick` cuts the suite to QUICK_CASES cases (8 held out: the revert's gain is still significant,
one-sided p = 0.031 measured) and the refinement to one step of one candidate.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from gpo_action.errors import GitError
from gpo_action.optimize.diffs import render_plain, word_diff

PROMPT = "prompts/sentiment.yaml"
SUITE = "evals/sentiment.yaml"
# The pull request's two edits (base text, head text). Measured on the bundled model (30 cases):
# HARMLESS alone keeps dev at 100.0 (holdout 93.3); HARMFUL makes it answer "positive" to every review.
HARMLESS = ("You label the sentiment of product reviews.", "You label the sentiment of customer product reviews.")
HARMFUL = ("Answer with one word.", "Answer with one word, positive or negative.")
EDITS = (HARMLESS, HARMFUL)
QUICK_CASES = 16
MODEL_LINE = "models:\n  task: local/smollm2          # pinned by the demo: offline, no key\n"
IDENTITY = ("-c", "user.name=gpo-action demo", "-c", "user.email=demo@gpo-action.invalid")


@dataclass(frozen=True)
class DemoSettings:
    steps: int
    candidates: int
    max_calls: int
    max_seconds: float


FULL = DemoSettings(steps=1, candidates=2, max_calls=150, max_seconds=300.0)
QUICK = DemoSettings(steps=1, candidates=1, max_calls=40, max_seconds=120.0)


def _git(root: Path, *args: str, strip: bool = True) -> str:
    try:
        done = subprocess.run(["git", *IDENTITY, *args], cwd=root, capture_output=True, text=True, check=True,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        raise GitError("git is not installed: the demo needs it (install git and run again)") from None
    except subprocess.CalledProcessError as exc:
        raise GitError(f"`git {' '.join(args)}` failed in {root}: {exc.stderr.strip()}") from None
    return done.stdout.strip() if strip else done.stdout


def copy_example(dest: Path) -> None:
    """Write the example project shipped in the package into `dest`."""
    def copy(node, target: Path) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                copy(child, target / child.name)
            else:
                target.mkdir(parents=True, exist_ok=True)
                (target / child.name).write_bytes(child.read_bytes())

    copy(resources.files("gpo_action") / "example", dest)


def _cut_suite(path: Path, cases: int) -> None:
    """Keep the first `cases` inline cases (two lines each) of the example's sentiment suite."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("cases:") + 1
    path.write_text("\n".join(lines[:start] + lines[start:start + 2 * cases]) + "\n", encoding="utf-8")


def build_repository(root: Path, quick: bool = False) -> str:
    """The demo repository at `root` (missing or empty): `main` holds the example, the checked-out
    branch `prompt-edit` makes the two `EDITS` to the sentiment prompt. Returns the base commit's sha."""
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise GitError(f"the demo needs an empty directory, and {root} is not empty")
    copy_example(root)
    config = root / "gpo.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("suites:", MODEL_LINE + "suites:", 1), encoding="utf-8")
    if quick:
        _cut_suite(root / SUITE, QUICK_CASES)
    (root / ".gitignore").write_text(".gpo/\n", encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "checkout", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "The example project")
    base = _git(root, "rev-parse", "HEAD")
    _git(root, "checkout", "-q", "-b", "prompt-edit")
    prompt = root / PROMPT
    source = prompt.read_text(encoding="utf-8")
    for old, new in EDITS:
        if source.count(old) != 1:
            raise GitError(f"the example's {PROMPT} is not the one the demo knows how to edit")
        source = source.replace(old, new)
    prompt.write_text(source, encoding="utf-8")
    _git(root, "commit", "-q", "-am", "Sentiment prompt: name customer reviews, ask for the label explicitly")
    return base


def run_demo(keep_dir: str | None = None, *, quick: bool = False, notes: Callable[[str], None] | None = None,
             say: Callable[[str], None] | None = None, on_step=None):
    """Build the repository, run the pipeline, and return (Outcome, the text to show)."""
    from gpo_action.action_inputs import Options
    from gpo_action.pr_pipeline import execute

    say = say or (lambda message: None)
    settings = QUICK if quick else FULL
    started = time.monotonic()
    temp = None
    if keep_dir is None:
        temp = tempfile.mkdtemp(prefix="gpo-demo-")
        root = Path(temp) / "repo"
    else:
        root = Path(keep_dir).absolute()
    try:
        build_repository(root, quick)
        say(f"demo repository: {root} (branch prompt-edit makes {len(EDITS)} edits to {PROMPT}; base: main)")
        say("evaluating base and head on the bundled model, then the fix: the search for the edit behind the drop "
            "and a bounded GPO refinement (the first call loads the model)")
        out = root / ".gpo" / "demo"
        options = Options(config=str(root / "gpo.yaml"), base="main", mode="fix", deliver=("comment", "suggestion"),
                          out_dir=str(out), report_path=str(out / "report.json"), steps=settings.steps,
                          candidates=settings.candidates,
                          limits={"max_calls": settings.max_calls, "max_seconds": settings.max_seconds})
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        outcome = execute(options, env, io.StringIO(), notes=notes, on_step=on_step)
        shown = render_shown(root, out, outcome, time.monotonic() - started, keep=keep_dir is not None)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return outcome, shown


def demo_exit_code(outcome) -> int:
    """0: the check failed on the regression (its exit 1) and a fix was proposed; the check's own
    2 or 3 as it is; 1 otherwise (see the module docstring)."""
    if outcome.exit_code not in (0, 1):
        return outcome.exit_code
    proposed = outcome.fixes is not None and bool(outcome.fixes.proposed)
    return 0 if outcome.exit_code == 1 and proposed else 1


def render_found(outcome, review: dict | None) -> list[str]:
    """The demo's conclusion in a few lines: the verdict, the located edit, the fix with its figures
    and word diff, the suggestion's lines, and what the GPO refinement found."""
    from gpo_action.optimize.results import pct
    from gpo_action.report.fixtext import location_text, refinement_text

    lines = []
    for c in outcome.result.comparisons:
        p = "" if c.p_value is None else f", p = {c.p_value:.3g}"
        lines.append(f"verdict: {c.suite} {c.verdict}, {pct(c.base_score)} -> {pct(c.head_score)} on {c.n_paired} "
                     f"cases{p}")
    for fix in outcome.fixes.fixes if outcome.fixes is not None else ():
        r = fix.result
        if r is None:
            lines.append(f"fix: {fix.skipped}")
            continue
        located = location_text(r.location, lambda edit: edit)
        if located:
            lines.append(f"located: {located}")
        lines.append(f"fix: {r.message}")
        changed = [line for line in render_plain(word_diff(r.original, r.best)).splitlines()
                   if "[-" in line or "{+" in line]
        lines += [f"  {line}" for line in changed]
        for comment in (review or {}).get("comments", ()):
            body = comment["body"].removeprefix("```suggestion\n").removesuffix("\n```")
            where = f"{comment.get('start_line')}-{comment['line']}" if comment.get("start_line") else comment["line"]
            lines.append(f"suggestion on {comment['path']} line {where}: {body.strip()}")
        refined = refinement_text(r)
        if refined:
            lines.append(f"refinement: {refined}")
    return lines


def render_shown(root: Path, out: Path, outcome, seconds: float, keep: bool) -> str:
    """What the demo prints: the pull request's change, the comment, the review (if any), and what
    it found."""
    base = _git(root, "show", f"main:{PROMPT}", strip=False)
    head = (root / PROMPT).read_text(encoding="utf-8")
    review_path = out / "review.json"
    review = json.loads(review_path.read_text(encoding="utf-8")) if review_path.exists() else None
    shown_review = (json.dumps(review, indent=2, ensure_ascii=False) if review is not None
                    else "(no review: there was no proposed fix to suggest)")
    rule = "=" * 78
    code = demo_exit_code(outcome)
    check = ("the check itself fails (exit 1 in CI: the head prompt regressed; the fix is a suggestion to accept)"
             if outcome.exit_code == 1 else f"the check's exit code: {outcome.exit_code}")
    if code == 0:
        ending = f"a fix was proposed; {check}. `gpo-action demo` exits 0: it showed what it is for."
    else:
        ending = (f"no fix was proposed; {check}. `gpo-action demo` exits {code}: it did not show what it is for "
                  "(see above).")
    parts = [
        rule, f"The pull request: {PROMPT} (main -> prompt-edit)", rule, render_plain(word_diff(base, head)), "",
        rule, "The sticky comment gpo-action would post (comment.md)", rule, outcome.comment, "",
        rule, "The review it would post (review.json)", rule, shown_review, "",
        rule, "What the demo found", rule, *render_found(outcome, review), "",
        f"demo finished in {seconds:.0f} s: {ending}",
    ]
    if keep:
        parts.append(f"files: {out / 'comment.md'}, {out / 'report.json'}; repository: {root}")
    return "\n".join(parts)
