"""The BBH benches on real recorded completions (../shared/benchmarks/bbh), on a few tasks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BBH = REPO.parent / "shared" / "benchmarks" / "bbh"

pytestmark = pytest.mark.skipif(not BBH.is_dir(), reason=f"BBH data not found at {BBH}")


def bench(script: str, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--bbh-dir", str(BBH), *args],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_replay_reproduces_published_accuracy():
    lines = bench("bbh_replay.py", "--tasks", "dyck_languages", "snarks", "multistep_arithmetic_two")
    assert "dyck_languages cot ours=56.8 published=56.8" in lines
    assert "snarks cot ours=59.6 published=59.6" in lines
    assert "multistep_arithmetic_two direct ours=1.2 published=1.2" in lines
    assert lines[-1] == "matched 6/6"


def test_regression_verdicts_on_real_prompt_versions():
    lines = bench("bbh_regression.py", "--tasks", "multistep_arithmetic_two", "snarks", "word_sorting")
    verdicts = {line.split()[0]: line.split()[1] for line in lines if not line.startswith(("#", "verdicts"))}
    assert verdicts == {"multistep_arithmetic_two": "regressed", "snarks": "unchanged", "word_sorting": "improved"}
    assert "multistep_arithmetic_two regressed base=47.6 head=1.2" in " ".join(lines)
    assert lines[-1] == "verdicts: 1 regressed, 1 improved, 1 unchanged"
