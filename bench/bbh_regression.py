"""Reproduce real prompt regressions from the BIG-Bench Hard recordings with `gpo-action run`.

Builds a git repository in a temp dir: `main` holds the chain-of-thought prompt of every task
(one suite per task); a branch replaces each with the direct-answer prompt. Both prompt versions
have real recorded completions of code-davinci-002, served by the `replay/` model. Then runs
`gpo-action run --base main` on the branch and prints, per task,
`TASK VERDICT base=XX.X head=XX.X p=P`, and `verdicts: R regressed, I improved, U unchanged`.

    python bench/bbh_regression.py --bbh-dir path/to/BIG-Bench-Hard [--cases K] [--alpha 0.05]
    python bench/bbh_regression.py --bbh-dir tests/data/bbh      # the tests' slice (3 tasks, 30 cases)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bbh_replay import find_tasks, load_mode, split_prompt, template_text  # noqa: E402

# One extraction for both prompt versions, so that only the prompt differs between base and head:
# a chain-of-thought answer follows "So the answer is"; without that phrase, the first non-blank line.
EXTRACT = r"^(?:[\s\S]*?So the answer is (.+?)(?:\.(?:\s|$)|\s*$)|\s*([^\n]*\S))"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


def write_tasks(bbh_dir: Path, root: Path, tasks: list[str], cases: int | None, mode: str) -> list[str]:
    """Write prompts/<task>.j2 for `mode`; on the first call also the suites and the replay files."""
    written = []
    for task in tasks:
        loaded = {m: load_mode(bbh_dir, task, m) for m in ("cot", "direct")}
        if any(v is None for v in loaded.values()):
            continue
        outputs = {m: loaded[m][0][:cases] for m in loaded}
        prefix = split_prompt(outputs[mode][0]["input"], mode)[0]
        (root / "prompts" / f"{task}.j2").write_text(template_text(prefix, mode), encoding="utf-8")
        written.append(task)
        if mode != "cot":
            continue
        with open(root / "replay" / f"{task}.jsonl", "w", encoding="utf-8") as replay:
            for m in ("cot", "direct"):
                for o in outputs[m]:
                    replay.write(json.dumps({"prompt": o["input"], "completion": o["prediction"]}) + "\n")
        with open(root / "evals" / f"{task}.jsonl", "w", encoding="utf-8") as f:
            for i, (c, d) in enumerate(zip(outputs["cot"], outputs["direct"])):
                question = split_prompt(c["input"], "cot")[1]
                if question != split_prompt(d["input"], "direct")[1]:
                    raise SystemExit(f"{task}: example {i} differs between the cot and direct recordings")
                f.write(json.dumps({"id": f"{i:04d}", "vars": {"input": question}, "expected": c["target"]}) + "\n")
        suite = {
            "name": task,
            "prompt": f"prompts/{task}.j2",
            "model": f"replay/replay/{task}.jsonl",
            "assert": [{"type": "equals", "value": "{{ expected }}", "extract": EXTRACT, "normalize": ["strip"]}],
            "cases": [{"file": f"{task}.jsonl"}],
        }
        (root / "evals" / f"{task}.yaml").write_text(json.dumps(suite, indent=1), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bbh-dir", required=True, type=Path)
    parser.add_argument("--cases", type=int, default=None, help="first K examples of each task (default: all)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--max-drop", type=float, default=0.02)
    parser.add_argument("--tasks", nargs="*")
    args = parser.parse_args(argv)
    bbh_dir = args.bbh_dir.resolve()
    tasks = args.tasks or find_tasks(bbh_dir)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpo-bbh-regression-") as tmp:
        root = Path(tmp)
        for sub in ("prompts", "evals", "replay"):
            (root / sub).mkdir()
        (root / "gpo.yaml").write_text(
            f"suites:\n  - eval: evals/*.yaml\ngate: {{max_drop: {args.max_drop}, alpha: {args.alpha}}}\n"
            "concurrency: 64\ncache: {enabled: false}\n",
            encoding="utf-8",
        )
        git(root, "-c", "init.defaultBranch=main", "init", "-q")
        for key, value in (("user.email", "bench@example.com"), ("user.name", "bench")):
            git(root, "config", key, value)
        tasks = write_tasks(bbh_dir, root, tasks, args.cases, "cot")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "chain-of-thought prompts")
        git(root, "checkout", "-qb", "direct")
        write_tasks(bbh_dir, root, tasks, args.cases, "direct")
        git(root, "commit", "-qam", "direct-answer prompts")
        proc = subprocess.run(
            [sys.executable, "-m", "gpo_action", "run", "--base", "main", "--json", "run.json"],
            cwd=root, capture_output=True, text=True, timeout=1800,
        )
        if proc.returncode not in (0, 1):
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        report = json.loads((root / "run.json").read_text(encoding="utf-8"))
    counts: Counter[str] = Counter()
    for c in sorted(report["comparisons"], key=lambda c: c["suite"]):
        counts[c["verdict"]] += 1
        p = "-" if c["p_value"] is None else f"{c['p_value']:.3g}"
        print(f"{c['suite']} {c['verdict']} base={100 * c['base_score']:.1f} head={100 * c['head_score']:.1f} p={p}")
    print(f"# {len(tasks)} tasks, gpo-action run exit {proc.returncode}, {time.perf_counter() - started:.1f}s")
    print(f"verdicts: {counts['regressed']} regressed, {counts['improved']} improved, {counts['unchanged']} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
