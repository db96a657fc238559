"""promptfoo's `tests:` and `defaultTest:` -> gpo-action cases and suite defaults.

Tests come inline, from `file://` CSV (`__expected` via `gpo_action.expected`), YAML, JSON or
JSONL files, or globs of them. Vars given as `file://` are loaded now (text as a string, JSON/YAML
parsed), inside the project's tree; a list-valued var expands into one case per value, as promptfoo
expands it. Assertions keep promptfoo's field names; a type the registry does not know, code,
`transform`, `rubricPrompt` or a per-assertion `provider` is listed and left out."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpo_action.expected import parse_expected
from gpo_action.importers.promptfoo.reading import FILE, Project, csv_rows, is_code, jsonl_rows

_KEPT = ("type", "value", "threshold", "weight", "metric")
_TEST_KEYS = {"description", "vars", "assert", "threshold", "metric", "options", "metadata", "providers", "prompts"}


@dataclass
class Case:
    vars: dict[str, Any]
    asserts: list[dict[str, Any]]
    description: str = ""
    threshold: float | None = None
    providers: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


def known_type(kind: str) -> bool:
    from gpo_action.assertions import get_checker, split_type

    try:
        get_checker(split_type(kind)[0])
        return True
    except ValueError:
        return False


def convert_assert(project: Project, item: Any, shown: str, line: int | None) -> dict[str, Any] | None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        project.note(shown, line, "an assertion without a `type`: not converted")
        return None
    kind = item["type"]
    for key in ("transform", "rubricPrompt", "provider", "contextTransform", "config"):
        if key in item:
            project.note(shown, line, f"assertion {kind!r} with `{key}`: not converted")
            return None
    if kind == "assert-set" or not known_type(kind):
        project.note(shown, line, f"assertion type {kind!r}: gpo-action has no such type (or never runs it): not converted")
        return None
    value = item.get("value")
    if isinstance(value, str) and value.startswith(FILE):
        if is_code(value):
            project.note(shown, line, f"assertion {kind!r} value {value}: a script: not converted")
            return None
        value = project.text(project.files(value, shown, line)[0]).strip()
    out = {key: item[key] for key in _KEPT if key in item}
    if value is not None:
        out["value"] = value
    return out


def load_vars(project: Project, vars: Any, shown: str, line: int | None) -> dict[str, Any] | None:
    if vars is None:
        return {}
    if not isinstance(vars, dict):
        project.note(shown, line, "`vars` that are not a mapping (a file of vars): not converted")
        return None
    out = {}
    for name, value in vars.items():
        if isinstance(value, str) and value.startswith(FILE):
            if is_code(value):
                project.note(shown, line, f"var {name!r} = {value}: a script: this test is not converted")
                return None
            path = project.files(value, shown, line)[0]
            suffix = path.suffix.lower()
            if suffix in (".json", ".yaml", ".yml"):
                out[name] = project.yaml(path).data
            elif suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".mp4"):
                project.note(shown, line, f"var {name!r} = {value}: media files are not supported: test not converted")
                return None
            else:
                out[name] = project.text(path)
        else:
            out[name] = value
    return out


def _expand(vars: dict[str, Any]) -> list[dict[str, Any]]:
    """promptfoo runs one case per combination of list-valued vars."""
    lists = {k: v for k, v in vars.items() if isinstance(v, list)}
    if not lists:
        return [vars]
    keys = list(lists)
    return [{**vars, **dict(zip(keys, combo))} for combo in itertools.product(*(lists[k] for k in keys))]


def convert_test(project: Project, test: Any, shown: str, line: int | None) -> list[Case]:
    if not isinstance(test, dict):
        project.note(shown, line, "a test that is not a mapping: not converted")
        return []
    for key in sorted(set(test) - _TEST_KEYS):
        project.note(shown, line, f"test key `{key}`: not converted")
    options = test.get("options") or {}
    for key in sorted(options):
        project.note(shown, line, f"test option `{key}`: not converted (the case is kept without it)")
    vars = load_vars(project, test.get("vars"), shown, line)
    if vars is None:
        return []
    asserts = [a for a in (convert_assert(project, item, shown, line) for item in test.get("assert") or []) if a]
    threshold = test.get("threshold")
    return [Case(v, list(asserts), str(test.get("description") or ""),
                 threshold if isinstance(threshold, (int, float)) else None,
                 list(test.get("providers") or []), list(test.get("prompts") or [])) for v in _expand(vars)]


def _csv_test(project: Project, row: dict[str, str], shown: str, line: int) -> dict[str, Any]:
    test: dict[str, Any] = {"vars": {}, "assert": []}
    configs: dict[int, dict[str, float]] = {}
    for column, cell in row.items():
        if column.startswith("__expected"):
            parsed = parse_expected(cell)
            if parsed.refused:
                project.note(shown, line, f"column {column}: {parsed.refused}: not converted")
            elif parsed.assertion is not None:
                test["assert"].append(parsed.assertion)
        elif column == "__description":
            test["description"] = cell
        elif column == "__threshold" and cell.strip():
            test["threshold"] = float(cell)
        elif column == "__metric" and cell.strip():
            test["metric"] = cell
        elif column.startswith("__config:__expected"):
            target, _, key = column[len("__config:"):].partition(":")
            index = int(target[len("__expected"):] or 1) - 1
            if key == "threshold" and cell.strip():
                configs.setdefault(index, {})["threshold"] = float(cell)
        elif column.startswith("__metadata"):
            continue  # filters promptfoo's report; no verdict depends on it
        elif column.startswith("__"):
            project.note(shown, line, f"column {column}: not converted")
        else:
            test["vars"][column] = cell
    for index, config in configs.items():
        if index < len(test["assert"]):
            test["assert"][index].update(config)
    if "metric" in test:
        for item in test["assert"]:
            item["metric"] = test["metric"]
        del test["metric"]
    return test


def read_tests(project: Project, raw: Any, shown: str, line_of) -> list[Case]:
    """Every case `tests:` names, in order."""
    items = raw if isinstance(raw, list) else [raw]
    cases: list[Case] = []
    for i, item in enumerate(items):
        line = line_of(("tests", i) if isinstance(raw, list) else ("tests",))
        if isinstance(item, str):
            cases.extend(_file_tests(project, item, shown, line))
        elif isinstance(item, dict) and set(item) <= {"path", "config"} and "path" in item:
            project.note(shown, line, f"tests from {item['path']}: a generator script: not converted")
        else:
            cases.extend(convert_test(project, item, shown, line))
    return cases


def _file_tests(project: Project, ref: str, shown: str, line: int | None) -> list[Case]:
    if is_code(ref):
        project.note(shown, line, f"tests from {ref}: a generator script: not converted")
        return []
    if not ref.startswith(FILE):
        project.note(shown, line, f"tests from {ref}: only file:// CSV, YAML, JSON and JSONL files are converted")
        return []
    cases: list[Case] = []
    for path in project.files(ref, shown, line):
        here, suffix = project.shown(path), path.suffix.lower()
        if suffix == ".csv":
            rows = csv_rows(project.text(path), here)
            for number, row in rows:
                cases.extend(convert_test(project, _csv_test(project, row, here, number), here, number))
        elif suffix == ".jsonl":
            for number, test in jsonl_rows(project.text(path), here):
                cases.extend(convert_test(project, test, here, number))
        elif suffix in (".yaml", ".yml", ".json"):
            doc = project.yaml(path)
            tests = doc.data if isinstance(doc.data, list) else [doc.data]
            for j, test in enumerate(tests):
                cases.extend(convert_test(project, test, here, doc.line_of((j,)) if isinstance(doc.data, list) else 1))
        else:
            project.note(here, None, f"tests file {Path(here).name}: not a CSV, YAML, JSON or JSONL file: not converted")
    return cases
