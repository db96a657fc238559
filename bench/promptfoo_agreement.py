"""promptfoo's own verdicts on tests/data/promptfoo_agreement/cases.json (fixed outputs, deterministic
assertions), for the agreement test (tests/test_promptfoo_semantics.py).

Each case becomes one promptfoo test: the `echo` provider returns the prompt `{{ out_b64 }}`, a
test-level `transform` decodes it (base64, so whitespace, newlines and any character reach the
assertions byte for byte; promptfoo strips a var's trailing newline), and the case's assertions and
threshold are written as they are. promptfoo is the version the speed bench uses
(vs_promptfoo.PROMPTFOO_VERSION), installed into ~/.cache/gpo-action-bench/promptfoo on first use
(`npm install --prefix ~/.cache/gpo-action-bench/promptfoo promptfoo@<version>`), run offline with
vs_promptfoo's environment (telemetry, updates and sharing off; proxies pointing at a closed port).

    python bench/promptfoo_agreement.py            # run promptfoo, print where gpo-action disagrees
    python bench/promptfoo_agreement.py --record   # also write tests/data/promptfoo_agreement/verdicts.json
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = REPO / "tests" / "data" / "promptfoo_agreement"
CASES = DATA / "cases.json"
VERDICTS = DATA / "verdicts.json"
TRANSFORM = "Buffer.from(output, 'base64').toString('utf8')"
INSTALL_HINT = "npm install --prefix ~/.cache/gpo-action-bench/promptfoo promptfoo@{version}"

sys.path.insert(0, str(BENCH))
from vs_promptfoo import INSTALL_DIR, PROMPTFOO_VERSION, promptfoo_env  # noqa: E402


def load_cases(path: Path = CASES) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cases"]


def installed_promptfoo(version: str = PROMPTFOO_VERSION) -> Path | None:
    """The promptfoo executable of `version` if it is installed already (never installs)."""
    binary = INSTALL_DIR / "node_modules" / ".bin" / "promptfoo"
    package = INSTALL_DIR / "node_modules" / "promptfoo" / "package.json"
    if shutil.which("node") and binary.exists() and package.exists() \
            and json.loads(package.read_text())["version"] == version:
        return binary
    return None


def promptfoo_config(cases: list[dict]) -> dict:
    tests = []
    for case in cases:
        test = {
            "description": case["id"],
            "vars": {"out_b64": base64.b64encode(case["output"].encode("utf-8")).decode("ascii")},
            "options": {"transform": TRANSFORM},
            "assert": case["assert"],
        }
        if "threshold" in case:
            test["threshold"] = case["threshold"]
        tests.append(test)
    return {"description": "gpo-action agreement cases", "prompts": ["{{ out_b64 }}"], "providers": ["echo"],
            "tests": tests}


def run_promptfoo(binary: Path, cases: list[dict], work: Path) -> dict[str, dict]:
    """promptfoo's verdict per case id: pass, score, namedScores and reason."""
    work.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: numbers keep their JSON spelling (1.0 stays a float to both readers)
    (work / "promptfooconfig.yaml").write_text(json.dumps(promptfoo_config(cases), ensure_ascii=False, indent=1),
                                             encoding="utf-8")
    env = {"PATH": str(Path(shutil.which("node") or "node").parent) + ":/usr/bin:/bin",
           "HOME": str(work), **promptfoo_env(work, work)}
    proc = subprocess.run([str(binary), "eval", "-c", "promptfooconfig.yaml", "-o", "out.json", "--no-table",
                           "--no-progress-bar", "--no-write", "--no-cache", "-j", "1"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    out = work / "out.json"
    if not out.exists():
        raise RuntimeError(f"promptfoo wrote no results (exit {proc.returncode}): {proc.stderr[-2000:]}")
    results = json.loads(out.read_text(encoding="utf-8"))["results"]["results"]
    verdicts = {}
    for row in results:
        grading = row.get("gradingResult") or {}
        verdicts[row["testCase"]["description"]] = {
            "pass": bool(row["success"]),
            "score": row.get("score"),
            "named_scores": row.get("namedScores") or {},
            "reason": grading.get("reason") or row.get("error") or "",
        }
    missing = [c["id"] for c in cases if c["id"] not in verdicts]
    if missing:
        raise RuntimeError(f"promptfoo gave no verdict for {missing}")
    return verdicts


def node_version() -> str:
    node = shutil.which("node")
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help=f"write {VERDICTS.relative_to(REPO)}")
    args = parser.parse_args(argv)
    from vs_promptfoo import promptfoo_bin

    binary = promptfoo_bin(PROMPTFOO_VERSION)
    if binary is None:
        print(f"npm (or node) is not installed: {INSTALL_HINT.format(version=PROMPTFOO_VERSION)} needs them")
        return 2
    cases = load_cases()
    with tempfile.TemporaryDirectory(prefix="gpo-pf-agree-") as tmp:
        verdicts = run_promptfoo(binary, cases, Path(tmp))
    if args.record:
        doc = {
            "about": "promptfoo's per-case verdicts on cases.json, recorded by bench/promptfoo_agreement.py --record",
            "command": "python bench/promptfoo_agreement.py --record",
            "promptfoo_version": PROMPTFOO_VERSION,
            "node_version": node_version(),
            "provider": "echo, with a test-level transform decoding the base64 output",
            "verdicts": verdicts,
        }
        VERDICTS.write_text(json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {VERDICTS.relative_to(REPO)} ({len(verdicts)} verdicts, promptfoo {PROMPTFOO_VERSION})")
    passed = sum(v["pass"] for v in verdicts.values())
    print(f"promptfoo {PROMPTFOO_VERSION}: {passed} of {len(verdicts)} cases pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
