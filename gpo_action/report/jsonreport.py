"""Machine-readable reports: plain dicts, written atomically as JSON."""

from __future__ import annotations

import json
from typing import Any, Sequence

from gpo_action import __version__
from gpo_action.files import write_atomic
from gpo_action.results import SuiteResult


def eval_report(results: Sequence[SuiteResult], usage: dict[str, Any], exit_code: int) -> dict[str, Any]:
    return {
        "tool": "gpo-action",
        "version": __version__,
        "kind": "eval",
        "exit_code": exit_code,
        "usage": usage,
        "suites": [r.to_dict() for r in results],
    }


def write_json(path: str, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
