"""End to end on the bundled model: `gpo-action eval` as a process, offline, no key (structure, not quality)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local_model

REPO = Path(__file__).resolve().parents[1]
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def make_project(root: Path, cache: bool = True) -> Path:
    """Five cases of the repository's own sentiment suite, with its real prompt."""
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "sentiment.yaml").write_text((REPO / "prompts" / "sentiment.yaml").read_text())
    suite = (REPO / "evals" / "sentiment.yaml").read_text().splitlines()
    head = suite[: suite.index("cases:") + 1]
    cases = suite[len(head) : len(head) + 10]  # 5 cases of two lines each
    (root / "evals" / "sentiment.yaml").write_text("\n".join(head + cases) + "\n")
    (root / "gpo.yaml").write_text(f"suites: [evals/*.yaml]\ncache: {{enabled: {str(cache).lower()}}}\n")
    return root


def eval_json(root: Path, name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    proc = subprocess.run(
        [sys.executable, "-m", "gpo_action", "eval", "--json", name],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,  # two a test: below pytest's 300 s
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "local/smollm2" in proc.stderr  # the default model is announced
    return json.loads((root / name).read_text())


def test_eval_runs_the_bundled_model_and_caches(tmp_path):
    root = make_project(tmp_path / "p")
    first = eval_json(root, "first.json")
    suite = first["suites"][0]
    assert suite["model"] == "local/smollm2" and suite["errors"] == 0
    outputs = [c["samples"][0]["output"] for c in suite["cases"]]
    assert len(outputs) == 5 and all(isinstance(o, str) and o.strip() for o in outputs)
    assert all(c["samples"][0]["completion_tokens"] > 0 and c["samples"][0]["prompt_tokens"] > 0 for c in suite["cases"])
    assert first["usage"]["calls"] == 5
    second = eval_json(root, "second.json")
    assert second["usage"]["calls"] == 0 and second["usage"]["cache_hits"] == 5
    assert [c["samples"][0]["output"] for c in second["suites"][0]["cases"]] == outputs


def test_temperature_zero_is_deterministic_across_processes(tmp_path):
    runs = [eval_json(make_project(tmp_path / name, cache=False), "out.json") for name in ("a", "b")]
    a, b = ([c["samples"][0]["output"] for c in r["suites"][0]["cases"]] for r in runs)
    assert runs[0]["usage"]["calls"] == runs[1]["usage"]["calls"] == 5  # both really ran the model
    assert a == b
