"""Reproduce the published BIG-Bench Hard accuracies of code-davinci-002 through gpo-action.

For every task in --bbh-dir (laid out as the public BBH release) and both prompt modes
(chain-of-thought and direct answer), build a prompt template and an eval suite in the product's
own formats, evaluate them with the `replay/` model over the recorded completions, and print
`TASK MODE ours=XX.X published=XX.X`, then `matched N/M` (to 0.1 points, over the tasks whose
`_eval_metrics.jsonl` is present; without one, the line is `TASK MODE ours=XX.X`).

    python bench/bbh_replay.py --bbh-dir path/to/BIG-Bench-Hard
    python bench/bbh_replay.py --bbh-dir tests/data/bbh      # the tests' slice: no published figures
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpo_action.workspace import Workspace  # noqa: E402

OUTPUTS = "code-davinci-002-outputs/code-davinci-002-{mode}/{task}_few_shot_template_0-255000{suffix}"
# What follows the question in each mode's prompt, as the BBH release builds it.
SUFFIX = {"cot": "\nA: Let's think step by step.", "direct": "\nA:"}
# How the answer is read from a completion: chain-of-thought ends "So the answer is X." (the period
# may be missing when the completion was cut off); a direct answer is the first non-blank line.
EXTRACT = {"cot": r"So the answer is (.+?)(?:\.(?:\s|$)|\s*$)", "direct": r"^\s*([^\n]*\S)"}
JINJA_DELIMITERS = re.compile(r"\{\{|\{%|\{#|\}\}|%\}|#\}")


def find_tasks(bbh_dir: Path) -> list[str]:
    return sorted(p.stem for p in (bbh_dir / "bbh").glob("*.json"))


def load_mode(bbh_dir: Path, task: str, mode: str) -> tuple[list[dict], float | None] | None:
    """The recorded outputs and the published accuracy (None without the metrics file: a slice)."""
    out = bbh_dir / OUTPUTS.format(mode=mode, task=task, suffix=".json")
    metrics = bbh_dir / OUTPUTS.format(mode=mode, task=task, suffix="_eval_metrics.jsonl")
    if not out.exists():
        return None
    outputs = json.loads(out.read_text(encoding="utf-8"))["outputs"]
    if not metrics.exists():
        return outputs, None
    published = json.loads(metrics.read_text(encoding="utf-8").splitlines()[0])["accuracy"]
    return outputs, published


def split_prompt(full: str, mode: str) -> tuple[str, str]:
    """A recorded prompt is `prefix + "\\n\\nQ: " + question + suffix`: return (prefix, question)."""
    cut = full.rfind("\n\nQ: ")
    question = full[cut + len("\n\nQ: ") :]
    if not question.endswith(SUFFIX[mode]):
        raise ValueError(f"recorded prompt does not end with {SUFFIX[mode]!r}")
    return full[:cut], question[: -len(SUFFIX[mode])]


def template_text(prefix: str, mode: str) -> str:
    static = f"{{% raw %}}{prefix}{{% endraw %}}" if JINJA_DELIMITERS.search(prefix) else prefix
    return static + "\n\nQ: {{ input }}" + SUFFIX[mode]


def build_project(bbh_dir: Path, root: Path, tasks: list[str]) -> tuple[dict[tuple[str, str], float | None], list[str]]:
    """Write gpo.yaml, prompts/, evals/ and replay/ for every task and mode; return published scores."""
    published: dict[tuple[str, str], float | None] = {}
    notes: list[str] = []
    for sub in ("prompts", "evals", "replay"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for task in tasks:
        examples = json.loads((bbh_dir / "bbh" / f"{task}.json").read_text(encoding="utf-8"))["examples"]
        for mode in ("cot", "direct"):
            loaded = load_mode(bbh_dir, task, mode)
            if loaded is None:
                notes.append(f"{task} {mode}: no recorded outputs, skipped")
                continue
            outputs, published[(task, mode)] = loaded
            prefixes = {split_prompt(o["input"], mode)[0] for o in outputs}
            if len(prefixes) != 1:
                raise SystemExit(f"{task} {mode}: recorded prompts do not share one prefix")
            name = f"{task}-{mode}"
            (root / "prompts" / f"{name}.j2").write_text(template_text(prefixes.pop(), mode), encoding="utf-8")
            differing = 0
            with open(root / "replay" / f"{name}.jsonl", "w", encoding="utf-8") as replay, open(
                root / "evals" / f"{name}.jsonl", "w", encoding="utf-8"
            ) as cases:
                for i, o in enumerate(outputs):
                    question = split_prompt(o["input"], mode)[1]
                    # The recording is what the model saw; the data file may differ (it is counted).
                    if i < len(examples) and examples[i]["input"] != question:
                        differing += 1
                    replay.write(json.dumps({"prompt": o["input"], "completion": o["prediction"]}) + "\n")
                    cases.write(json.dumps({"id": f"{i:04d}", "vars": {"input": question}, "expected": o["target"]}) + "\n")
            if differing:
                notes.append(f"{task} {mode}: {differing} example(s) in bbh/{task}.json differ from the recorded prompt; the recorded question was used")
            suite = {
                "name": name,
                "prompt": f"prompts/{name}.j2",
                "model": f"replay/replay/{name}.jsonl",
                "assert": [{"type": "equals", "value": "{{ expected }}", "extract": EXTRACT[mode], "normalize": ["strip"]}],
                "cases": [{"file": f"{name}.jsonl"}],
            }
            (root / "evals" / f"{name}.yaml").write_text(json.dumps(suite, indent=1), encoding="utf-8")
    (root / "gpo.yaml").write_text(
        "suites:\n  - eval: evals/*.yaml\nconcurrency: 64\ncache: {enabled: false}\n", encoding="utf-8"
    )
    return published, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--bbh-dir", required=True, type=Path)
    parser.add_argument("--tasks", nargs="*", help="only these tasks (default: every task found)")
    args = parser.parse_args(argv)
    tasks = args.tasks or find_tasks(args.bbh_dir)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpo-bbh-") as tmp:
        root = Path(tmp)
        published, notes = build_project(args.bbh_dir, root, tasks)
        ws = Workspace.open(root / "gpo.yaml")
        results = {r.name: r for r in ws.evaluate(ws.suites())}
    for note in notes:
        print(f"note: {note}")
    matched = errors = 0
    for task in tasks:
        for mode in ("cot", "direct"):
            if (task, mode) not in published:
                continue
            r = results[f"{task}-{mode}"]
            ours, figure = 100 * (r.score or 0.0), published[(task, mode)]
            errors += r.errors
            line = f"{task} {mode} ours={ours:.1f}"
            if figure is not None:
                ok = f"{ours:.1f}" == f"{figure:.1f}" and r.errors == 0
                matched += ok
                line += f" published={figure:.1f}" + ("" if ok else f"  MISMATCH (errors={r.errors})")
            elif r.errors:
                line += f"  ERRORS={r.errors}"
            print(line)
    cases = sum(len(r.cases) for r in results.values())
    known = sum(figure is not None for figure in published.values())
    print(f"# {cases} cases in {time.perf_counter() - started:.1f}s")
    print(f"matched {matched}/{known}")
    return 0 if matched == known and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
