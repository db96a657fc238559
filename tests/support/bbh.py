"""The BIG-Bench Hard slice vendored in tests/data/bbh (see its README): its recorded
code-davinci-002 completions, and whether each is right, read here without the benches' code."""

from __future__ import annotations

import json
from pathlib import Path

SLICE = Path(__file__).resolve().parents[1] / "data" / "bbh"
TASKS = ("multistep_arithmetic_two", "snarks", "word_sorting")
COT, DIRECT = "cot", "direct"
ANSWER_MARKER = "So the answer is "


def records(task: str, mode: str) -> list[dict]:
    """The recorded outputs of `task` in `mode`: `{"input": prompt, "prediction": ..., "target": ...}`."""
    path = SLICE / "code-davinci-002-outputs" / f"code-davinci-002-{mode}" / f"{task}_few_shot_template_0-255000.json"
    return json.loads(path.read_text(encoding="utf-8"))["outputs"]


def answer(prediction: str, mode: str) -> str:
    """A chain-of-thought answer follows the last "So the answer is" (its period dropped); a direct
    answer is the first non-blank line."""
    if mode == COT:
        at = prediction.rfind(ANSWER_MARKER)
        if at < 0:
            return ""
        text = prediction[at + len(ANSWER_MARKER):].strip()
        return text[:-1] if text.endswith(".") else text
    lines = [line for line in prediction.splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def outcomes(task: str, mode: str) -> list[bool]:
    """Per recorded example, in order: is the completion's answer exactly the target?"""
    return [answer(r["prediction"], mode) == r["target"] for r in records(task, mode)]


def question(record: dict) -> str:
    """The question of a recorded prompt (`prefix + "\\n\\nQ: " + question + "\\nA:..."`)."""
    return record["input"].rsplit("\n\nQ: ", 1)[1].rsplit("\nA:", 1)[0]
