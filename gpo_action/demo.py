"""`gpo-action demo`: the whole pull-request pipeline, offline, on the bundled model.

1. A git repository (a temporary directory, or `keep_dir`) made from the repository's example
   project, shipped inside the package (`gpo_action/example/`: gpo.yaml, prompts/, evals/), with
   `models.task` pinned to `local/smollm2` so it stays offline even when a provider key is set.
2. On a branch, a commit that rewords the sentiment prompt: a harmless-looking edit on which
   the 135M model answers "positive" to everything, so the suite regresses.
3. `action.execute` as in a pull request: base vs head, verdict, a bounded GPO run on the head
   prompt (the bundled model is the optimizer too: it rarely follows the <START>/<END> format, so
   expect "no improvement found", with the numbers and the chart), and delivery rendered to files:
   `.gpo/demo/comment.md` (the sticky comment) and `review.json` (the suggestion review, when
   there is a fix to suggest).

`quick` cuts the suite to QUICK_CASES cases and the optimizer to one step of one candidate.
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
DEGRADE = ("Is this review positive?\n      Review: {{ review }}\n      Answer with one word.",
           "Is this review positive or negative?\n      Review: {{ review }}\n      "
           "Answer with one word, positive or negative.")
QUICK_CASES = 16
MODEL_LINE = "models:\n  task: local/smollm2          # pinned by the demo: offline, no key\n"
IDENTITY = ("-c", "user.name=gpo-action demo", "-c", "user.email=demo@gpo-action.invalid")


@dataclass(frozen=True)
class DemoSettings:
    steps: int
    candidates: int
    max_calls: int
    max_seconds: float


FULL = DemoSettings(steps=3, candidates=2, max_calls=150, max_seconds=300.0)
QUICK = DemoSettings(steps=1, candidates=1, max_calls=40, max_seconds=120.0)


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *IDENTITY, *args], cwd=root, capture_output=True, text=True, check=True,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        raise GitError("git is not installed: the demo needs it (install git and run again)") from None
    except subprocess.CalledProcessError as exc:
        raise GitError(f"`git {' '.join(args)}` failed in {root}: {exc.stderr.strip()}") from None
    return done.stdout.strip()


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
    branch `prompt-edit` degrades the sentiment prompt. Returns the base commit's sha."""
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
    old, new = DEGRADE
    source = prompt.read_text(encoding="utf-8")
    if old not in source:
        raise GitError(f"the example's {PROMPT} is not the one the demo knows how to degrade")
    prompt.write_text(source.replace(old, new), encoding="utf-8")
    _git(root, "commit", "-q", "-am", "Ask for the label explicitly in the sentiment prompt")
    return base


def run_demo(keep_dir: str | None = None, *, quick: bool = False, notes: Callable[[str], None] | None = None,
             say: Callable[[str], None] | None = None, on_step=None):
    """Build the repository, run the pipeline, and return (Outcome, the text to show)."""
    from gpo_action.action import Options, execute

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
        say(f"demo repository: {root} (branch prompt-edit degrades {PROMPT}; base: main)")
        say("evaluating base and head on the bundled model, then a bounded GPO fix (the first call loads the model)")
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


def render_shown(root: Path, out: Path, outcome, seconds: float, keep: bool) -> str:
    """What the demo prints: the pull request's change, the comment, and the review (if any)."""
    base = _git(root, "show", f"main:{PROMPT}")
    head = (root / PROMPT).read_text(encoding="utf-8")
    review_path = out / "review.json"
    review = (json.dumps(json.loads(review_path.read_text(encoding="utf-8")), indent=2, ensure_ascii=False)
              if review_path.exists() else "(no review: there was no proposed fix to suggest)")
    rule = "=" * 78
    parts = [
        rule, f"The pull request: {PROMPT} (main -> prompt-edit)", rule, render_plain(word_diff(base, head)), "",
        rule, "The sticky comment gpo-action would post (comment.md)", rule, outcome.comment, "",
        rule, "The review it would post (review.json)", rule, review, "",
        f"demo finished in {seconds:.0f} s; exit code of the check: {outcome.exit_code} "
        f"({'the regression fails the check' if outcome.exit_code == 1 else 'pass'})",
    ]
    if keep:
        parts.append(f"files: {out / 'comment.md'}, {out / 'report.json'}; repository: {root}")
    return "\n".join(parts)
